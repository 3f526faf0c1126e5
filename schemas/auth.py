"""Log in, refresh, log out, patient invitations and account activation on the wire."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from schemas.common import Instant, StrictSchema, text
from service.accounts.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    MIN_STAFF_PASSWORD_LENGTH,
)

REFRESH_TOKEN_MAX = 200


def new_password(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH),
        metadata={
            "description": f"{MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
            f" ({MIN_STAFF_PASSWORD_LENGTH} or more for staff); common or easily guessed"
            " passwords are refused"
        },
        **kwargs,
    )


class TokenRequestSchema(StrictSchema):
    username = text(254, min_length=1, required=True, metadata={"description": "The e-mail"})
    password = text(MAX_PASSWORD_LENGTH, min_length=1, required=True, load_only=True)


class RefreshRequestSchema(StrictSchema):
    refresh_token = text(REFRESH_TOKEN_MAX, min_length=1, required=True)


class LogoutSchema(StrictSchema):
    refresh_token = text(
        REFRESH_TOKEN_MAX,
        min_length=1,
        metadata={"description": "End this token's family; without it, every refresh token"},
    )


class TokenPairSchema(StrictSchema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"description": "Always Bearer"})
    expires_in = fields.Integer(
        required=True, metadata={"description": "Seconds the access token lives"}
    )
    refresh_expires_in = fields.Integer(
        required=True, metadata={"description": "Seconds the refresh token lives, if unused"}
    )


class InvitationSchema(StrictSchema):
    code = fields.String(
        dump_only=True,
        metadata={"description": "One-time activation code, e.g. K7QM2-X9HTD; shown only once"},
    )
    expires_at = Instant(dump_only=True)
    email = fields.String(dump_only=True, metadata={"description": "The login the code sets up"})
    patient_id = fields.Integer(dump_only=True)


class ActivationSchema(StrictSchema):
    code = text(32, min_length=1, required=True, metadata={"description": "Dashes optional"})
    password = new_password(required=True, load_only=True)
