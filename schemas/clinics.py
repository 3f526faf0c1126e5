"""The clinic, its settings and its staff accounts on the wire."""

from __future__ import annotations

from marshmallow import fields, validate

from schemas.auth import new_password
from schemas.common import PageArgsSchema, PartialMixin, StrictSchema, TimeZoneField, text
from service.models.user import ROLES, STAFF_ROLES


class ClinicSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    name = text(200, min_length=1, required=True)
    time_zone = TimeZoneField(required=True)
    settings = fields.Dict(
        keys=text(64, min_length=1),
        values=fields.Dict(keys=text(64, min_length=1)),
        metadata={
            "description": "Regimen code -> {setting name -> option name} (see GET /regimens), "
            "and `reminders`: the clinic's reminder defaults. A PATCH replaces the whole object.",
            "example": {"ocrelizumab-iv": {"min_interval": "five_months"}},
        },
    )
    created_at = fields.DateTime(dump_only=True)


class ClinicUpdateSchema(PartialMixin, ClinicSchema):
    pass


class UserSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    clinic_id = fields.Integer(dump_only=True)
    email = fields.Email(required=True, validate=validate.Length(max=254))
    # Patients' app accounts are listed too; only staff accounts are made here (UserCreateSchema).
    role = fields.String(dump_only=True, metadata={"enum": list(ROLES)})
    patient_id = fields.Integer(dump_only=True, allow_none=True)
    is_active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class UserCreateSchema(UserSchema):
    role = fields.String(required=True, validate=validate.OneOf(STAFF_ROLES))
    password = new_password(required=True, load_only=True)


class UserUpdateSchema(StrictSchema):
    is_active = fields.Boolean()
    role = fields.String(validate=validate.OneOf(STAFF_ROLES))


class UserQueryArgsSchema(PageArgsSchema):
    role = fields.String(
        validate=validate.OneOf(ROLES),
        metadata={"description": "Only this role (default: staff, i.e. admin and clinician)"},
    )
