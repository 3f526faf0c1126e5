"""The regimen catalog on the wire: top-level keys explicit, nested rules as in the catalog."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields

from schemas.common import PageArgsSchema

_STATEMENT = "{text, status, source}: text is null when the reference could not confirm it"


class RegimenSchema(ma.Schema):
    class Meta:
        ordered = True

    code = fields.String(metadata={"description": "e.g. ocrelizumab-iv"})
    drug = fields.String()
    brand = fields.String()
    route = fields.String()
    label_status = fields.String(metadata={"enum": ["approved", "off_label"]})
    default_variant = fields.String()
    variants = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(),
        metadata={"description": "Variant code -> {code, label, source, doses: [dose rules]}"},
    )
    premedications = fields.List(
        fields.Dict(),
        metadata={"description": "{drug, required, source, dose_mg, route, minutes_before, note}"},
    )
    screening = fields.List(
        fields.Dict(),
        metadata={"description": "Checklist rules: {code, label, required, outcomes, source, ...}"},
    )
    monitoring = fields.List(
        fields.Dict(),
        metadata={"description": "Monitoring rules: {kind, label, schedule, source, ...}"},
    )
    settings = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(),
        metadata={"description": "Where sources conflict: {label, kind, status, default, options}"},
    )
    sources = fields.List(fields.String())
    administration = fields.Dict(metadata={"description": _STATEMENT})
    premedication_note = fields.Dict(allow_none=True, metadata={"description": _STATEMENT})
    observation = fields.Dict(
        metadata={"description": "{first_doses, first_minutes, later_minutes, status, source}"}
    )
    delayed_reaction = fields.Dict(metadata={"description": "{hours, status, source, note}"})
    contraindications = fields.List(fields.Dict())
    missed_dose = fields.Dict(metadata={"description": _STATEMENT})


class RegimenQueryArgsSchema(PageArgsSchema):
    pass
