"""FHIR on the wire: the resource received (an Observation or a Bundle, validated in full by
fhir.resources in the use case) and the outcome of an Observation import."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from marshmallow import fields, validate, validates_schema
from marshmallow.exceptions import ValidationError

RESOURCE_TYPES = {"Observation": Observation, "Bundle": Bundle}


def _elements(model: Any) -> frozenset[str]:
    return frozenset(field.alias or name for name, field in model.model_fields.items())


ELEMENTS = {name: _elements(model) for name, model in RESOURCE_TYPES.items()}


class FhirResourceSchema(ma.Schema):
    """A FHIR Observation or Bundle as JSON. Its top-level elements are checked here, so a field
    that is no element of the resource is named in the problem; the rest is fhir.resources'."""

    class Meta:
        unknown = ma.INCLUDE

    resourceType = fields.String(required=True, validate=validate.OneOf(sorted(RESOURCE_TYPES)))

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _known_elements(self, data: dict[str, Any], original: Any, **_kwargs: Any) -> None:
        if not isinstance(original, dict):
            return
        kind = original.get("resourceType")
        allowed = ELEMENTS.get(kind) if isinstance(kind, str) else None
        allowed = allowed if allowed is not None else ELEMENTS["Observation"] | ELEMENTS["Bundle"]
        errors: dict[str, list[str]] = {}
        for name, value in original.items():
            if name == "resourceType":
                continue
            if name not in allowed:
                errors[name] = [f"Not an element of a FHIR {kind or 'Observation or Bundle'}."]
            elif name in ("id", "status") and not isinstance(value, str):
                errors[name] = ["Must be a string."]
        if errors:
            raise ValidationError(errors)


class ImportIdentifierSchema(ma.Schema):
    system = fields.String()
    value = fields.String()


class ImportTargetSchema(ma.Schema):
    type = fields.String(metadata={"description": "lab_result or screening_item"})
    id = fields.Integer()
    code = fields.String()


class ImportedItemSchema(ma.Schema):
    index = fields.String(metadata={"description": "observation, or entry[N] of the Bundle"})
    identifier = fields.Nested(ImportIdentifierSchema)
    outcome = fields.String(metadata={"description": "created or unchanged (a resend)"})
    target = fields.Nested(ImportTargetSchema)


class ObservationImportSchema(ma.Schema):
    created = fields.Integer()
    unchanged = fields.Integer()
    items = fields.List(fields.Nested(ImportedItemSchema))
