"""Monitoring tasks on the wire."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from schemas.common import (
    MAX_INT_ID,
    Instant,
    PageArgsSchema,
    StrictSchema,
    Vocabulary,
    etag_field,
    text,
)
from service.vocabulary import FollowUpEnd, HbvPath, TaskStatus, values

MAX_NOTES = 2000


class MonitoringTaskSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    plan_id = fields.Integer(dump_only=True)
    patient_id = fields.Function(lambda task: task.plan.patient_id, dump_only=True)
    kind = fields.String(dump_only=True, metadata={"description": "Catalog monitoring kind"})
    due_date = fields.Date(dump_only=True)
    rule_date = fields.Date(
        dump_only=True,
        metadata={"description": "The date the catalog rule gives; staff may move due_date"},
    )
    status = fields.String(dump_only=True, metadata={"enum": list(values(TaskStatus))})
    dose_id = fields.Integer(
        dump_only=True, allow_none=True, metadata={"description": "The dose this task precedes"}
    )
    done_at = Instant(dump_only=True, allow_none=True)
    completed_by_id = fields.Integer(dump_only=True, allow_none=True)
    notes = fields.String(dump_only=True, allow_none=True)
    lab_result_id = fields.Integer(dump_only=True, allow_none=True)
    after_treatment = fields.Boolean(
        dump_only=True, metadata={"description": "Monitoring that continues after the plan ended"}
    )
    updated_at = Instant(dump_only=True)
    version = fields.Integer(dump_only=True, allow_none=True)
    etag = etag_field("monitoring_task")


class FollowUpSchema(StrictSchema):
    """Monitoring that goes on after a plan ended, and why."""

    id = fields.Integer(dump_only=True)
    plan_id = fields.Integer(dump_only=True)
    regimen = fields.Function(lambda f: f.plan.regimen_code, dump_only=True)
    kind = fields.String(dump_only=True, metadata={"description": "Catalog monitoring kind"})
    reason = fields.String(
        dump_only=True,
        metadata={"description": "until_b_cell_repletion | until_end_date"},
    )
    label = fields.Function(lambda f: f.label, dump_only=True)
    source = fields.Function(lambda f: f.source, dump_only=True)
    every_months = fields.Integer(dump_only=True)
    last_dose_date = fields.Date(attribute="anchor_date", dump_only=True)
    started_on = fields.Date(dump_only=True)
    until = fields.Date(dump_only=True, allow_none=True)
    next_due = fields.Date(dump_only=True, allow_none=True)
    ended_at = Instant(dump_only=True, allow_none=True)
    end_reason = fields.String(validate=Vocabulary(FollowUpEnd), dump_only=True, allow_none=True)
    end_notes = fields.String(dump_only=True, allow_none=True)


class HepatitisBFollowUpSchema(StrictSchema):
    """The hepatitis B pathway's tests that go on after a plan ended, up to the planned stop."""

    plan_id = fields.Integer(dump_only=True)
    kinds = fields.List(fields.String(), dump_only=True, metadata={"description": "hbv_dna, alt"})
    path = fields.String(
        validate=validate.OneOf(values(HbvPath.ANTI_HBC_POSITIVE, HbvPath.HBSAG_POSITIVE)),
        dump_only=True,
        metadata={"description": "anti_hbc_positive | hbsag_positive"},
    )
    reason = fields.String(dump_only=True)
    planned_stop = fields.Date(dump_only=True)
    planned_stop_source = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "consult | hbv_prophylaxis_after_last_dose"},
    )
    every_months = fields.Integer(dump_only=True, allow_none=True)
    next_due = fields.Date(dump_only=True)


class FollowUpEndSchema(StrictSchema):
    reason = fields.String(required=True, validate=Vocabulary(FollowUpEnd))
    notes = text(MAX_NOTES, allow_none=True)


class MonitoringTaskUpdateSchema(StrictSchema):
    """Complete (done), waive (with the reason in notes), reopen (due) or move a task."""

    status = fields.String(validate=validate.OneOf(["done", "waived", "due"]))
    due_date = fields.Date()
    notes = text(MAX_NOTES, allow_none=True)
    lab_result_id = fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_INT_ID),
        metadata={"description": "A lab result of the same patient that completes the task"},
    )

    @validates_schema
    def _check(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data:
            raise ValidationError("Nothing to change.", "_body")
        if data.get("status") == "waived" and "notes" in data and not (data["notes"] or "").strip():
            raise ValidationError("Give the reason for waiving the task.", "notes")


class MonitoringQueryArgsSchema(PageArgsSchema):
    status = fields.String(validate=Vocabulary(TaskStatus))
