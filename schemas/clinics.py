"""The clinic, its settings and its staff accounts on the wire."""

from __future__ import annotations

import json
from typing import Any

from marshmallow import ValidationError, fields, validate

from schemas.auth import new_password
from schemas.common import (
    Instant,
    PageArgsSchema,
    PartialMixin,
    StrictSchema,
    TimeZoneField,
    Vocabulary,
    text,
)
from service.clinics.settings import public_settings
from service.vocabulary import STAFF_ROLES, Role, values

MAX_SETTINGS_JSON = 20_000


class ClinicSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    name = text(200, min_length=1, required=True)
    time_zone = TimeZoneField(required=True)
    settings = fields.Method(
        "_settings",
        "_load_settings",
        metadata={
            "type": "object",
            "description": "Regimen code -> {setting name -> option name} (see GET /regimens); "
            "`reminders`: the clinic's reminder defaults; `webhook`: {url, secret} (the secret "
            "is shown masked; send the mask back to keep it). A PATCH replaces the whole object.",
            "example": {"ocrelizumab-iv": {"min_interval": "five_months"}},
        },
    )
    created_at = Instant(dump_only=True)

    def _settings(self, clinic: Any) -> dict[str, Any]:
        return public_settings(clinic.settings or {})

    def _load_settings(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or len(json.dumps(value)) > MAX_SETTINGS_JSON:
            raise ValidationError(f"An object of at most {MAX_SETTINGS_JSON} characters of JSON.")
        return value


class ClinicUpdateSchema(PartialMixin, ClinicSchema):
    pass


class UserSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    clinic_id = fields.Integer(dump_only=True)
    email = fields.Email(required=True, validate=validate.Length(max=254))
    # Patients' app accounts are listed too; only staff accounts are made here (UserCreateSchema).
    role = fields.String(dump_only=True, metadata={"enum": list(values(Role))})
    patient_id = fields.Integer(dump_only=True, allow_none=True)
    is_active = fields.Boolean(dump_only=True)
    created_at = Instant(dump_only=True)


class UserCreateSchema(UserSchema):
    role = fields.String(required=True, validate=validate.OneOf(STAFF_ROLES))
    password = new_password(required=True, load_only=True)


class UserUpdateSchema(StrictSchema):
    is_active = fields.Boolean()
    role = fields.String(validate=validate.OneOf(STAFF_ROLES))


class UserQueryArgsSchema(PageArgsSchema):
    role = fields.String(
        validate=Vocabulary(Role),
        metadata={"description": "Only this role (default: staff, i.e. admin and clinician)"},
    )
