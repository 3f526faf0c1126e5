"""FHIR R4B: a patient's record as a Bundle out, lab and screening Observations in."""

from __future__ import annotations

import json
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.fhir import FhirResourceSchema, ObservationImportSchema
from service.api.context import actor, db, login_required
from service.api.contract import INTEGRATIONS, PATIENT_APP, STAFF, operation
from service.exports import fhir, fhir_import

blp = Blueprint("fhir", __name__, description="FHIR R4B export and lab import")

BUNDLE = {"type": "object", "description": "A FHIR R4B Bundle of type collection"}


def fhir_response(data: dict[str, Any]) -> Response:
    return Response(json.dumps(data), mimetype=fhir.MEDIA_TYPE)


@blp.route("/patients/<int:patient_id>/fhir")
class PatientFhir(MethodView):
    decorators = [login_required]

    @operation("exportPatientFhir", INTEGRATIONS, STAFF)
    @blp.response(200, BUNDLE, content_type=fhir.MEDIA_TYPE)
    def get(self, patient_id: int) -> Any:
        """Export a patient's plan, doses, labs and screening as a FHIR Bundle."""
        return fhir_response(fhir.patient_bundle(db(), actor(), patient_id))


@blp.route("/me/fhir")
class MyFhir(MethodView):
    decorators = [login_required]

    @operation("exportMyFhir", PATIENT_APP)
    @blp.response(200, BUNDLE, content_type=fhir.MEDIA_TYPE)
    def get(self) -> Any:
        """Export my own record as a FHIR Bundle."""
        return fhir_response(fhir.my_bundle(db(), actor()))


@blp.route("/patients/<int:patient_id>/fhir/observations")
class PatientObservations(MethodView):
    decorators = [login_required]

    @operation(
        "importFhirObservations",
        INTEGRATIONS,
        STAFF,
        refusals={422: ("fhir_observations_rejected",)},
    )
    @blp.arguments(FhirResourceSchema(), content_type=fhir.MEDIA_TYPE)
    @blp.response(200, ObservationImportSchema)
    def post(self, resource: dict[str, Any], patient_id: int) -> Any:
        """Import lab and screening results from a FHIR Observation or a Bundle of them."""
        outcome = fhir_import.import_observations(db(), actor(), patient_id, resource)
        db().commit()
        return outcome
