"""Audit events on the wire (read-only, for clinic admins)."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from schemas.common import MAX_INT_ID, Instant, PageArgsSchema, StrictSchema, Vocabulary
from service.vocabulary import AuditAction, AuditOutcome, Role, values

ACTIONS = values(AuditAction)
OUTCOMES = values(AuditOutcome)


class AuditEventSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    occurred_at = Instant(dump_only=True)
    request_id = fields.String(dump_only=True)
    actor_id = fields.Integer(dump_only=True, allow_none=True)
    actor_role = fields.String(validate=Vocabulary(Role), dump_only=True, allow_none=True)
    clinic_id = fields.Integer(dump_only=True, allow_none=True)
    action = fields.String(
        validate=Vocabulary(AuditAction),
        dump_only=True,
        metadata={"description": f"One of {', '.join(ACTIONS)}"},
    )
    resource_type = fields.String(dump_only=True)
    resource_id = fields.String(dump_only=True, allow_none=True)
    patient_id = fields.Integer(dump_only=True, allow_none=True)
    outcome = fields.String(
        validate=Vocabulary(AuditOutcome),
        dump_only=True,
        metadata={"description": f"One of {', '.join(OUTCOMES)}"},
    )
    status_code = fields.Integer(dump_only=True)
    source_address = fields.String(dump_only=True, allow_none=True)
    method = fields.String(dump_only=True)
    path_template = fields.String(
        dump_only=True, allow_none=True, metadata={"description": "The URL rule, not the path"}
    )
    details = fields.Dict(
        dump_only=True, metadata={"description": "Codes and ids only, never free text"}
    )


class AuditQueryArgsSchema(PageArgsSchema):
    patient_id = fields.Integer(validate=validate.Range(min=1, max=MAX_INT_ID))
    actor_id = fields.Integer(validate=validate.Range(min=1, max=MAX_INT_ID))
    since = Instant(metadata={"description": "Events at or after this instant"})
    until = Instant(metadata={"description": "Events before this instant"})
    action = fields.String(validate=Vocabulary(AuditAction))
    outcome = fields.String(validate=Vocabulary(AuditOutcome))

    @validates_schema
    def _since_before_until(self, data: dict[str, Any], **_kwargs: Any) -> None:
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and since >= until:
            raise ValidationError("Must be after since.", field_name="until")
