"""FHIR on the wire: the resource received (validated by fhir.resources in the use case) and the
outcome of an Observation import."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate


class FhirResourceSchema(ma.Schema):
    """Any FHIR resource as JSON; the use case validates it as an Observation or a Bundle."""

    class Meta:
        unknown = ma.INCLUDE

    resourceType = fields.String(required=True, validate=validate.OneOf(["Observation", "Bundle"]))


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
