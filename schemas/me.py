"""The caller's own account on the wire."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, post_dump

from schemas.auth import new_password
from schemas.common import SOMETIMES_ABSENT, StrictSchema, Vocabulary, text
from service.accounts.passwords import MAX_PASSWORD_LENGTH
from service.vocabulary import Role


class MeSchema(StrictSchema):
    user_id = fields.Integer(attribute="id", dump_only=True)
    role = fields.String(validate=Vocabulary(Role), dump_only=True)
    clinic_id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    patient_id = fields.Integer(
        dump_only=True, metadata={"description": "Patients only", **SOMETIMES_ABSENT}
    )

    @post_dump
    def _patient_id_for_patients_only(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        if data.get("patient_id") is None:
            data.pop("patient_id", None)
        return data


class PasswordChangeSchema(StrictSchema):
    current_password = text(MAX_PASSWORD_LENGTH, min_length=1, required=True, load_only=True)
    new_password = new_password(required=True, load_only=True)
