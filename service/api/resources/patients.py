"""Patients of the caller's clinic."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.common import page_of, row_version
from schemas.patients import PatientQueryArgsSchema, PatientSchema, PatientUpdateSchema
from service.api.context import actor, caller, db, login_required
from service.api.contract import PATIENT_APP, STAFF, operation
from service.api.middleware import conditional, rendered
from service.patients import freshness, records

blp = Blueprint("patients", __name__, url_prefix="/patients", description="Patients")


@blp.route("")
class Patients(MethodView):
    decorators = [login_required]

    @operation("listPatients", STAFF)
    @blp.arguments(PatientQueryArgsSchema(), location="query")
    @blp.response(200, page_of(PatientSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """List the clinic's patients."""
        return records.list_patients(db(), actor(), **args)

    @operation("enrolPatient", STAFF, refusals={409: ("already_exists",)})
    @blp.arguments(PatientSchema())
    @blp.response(201, PatientSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Enrol a patient."""
        patient = records.enrol_patient(db(), actor(), **data)
        db().commit()
        return patient


@blp.route("/<int:patient_id>")
class PatientItem(MethodView):
    decorators = [login_required]

    @operation("getPatient", STAFF, PATIENT_APP)
    @blp.etag
    @blp.response(200, PatientSchema)
    def get(self, patient_id: int) -> Any:
        """Read a patient."""
        stamp = freshness.visible_patient_stamp(db(), caller(), patient_id)
        validator = conditional.strong(blp, stamp)
        return rendered.kept(validator) or records.get_patient(db(), actor(), patient_id)

    @operation("updatePatient", STAFF, refusals={409: ("already_exists",)})
    @blp.etag
    @blp.arguments(PatientUpdateSchema())
    @blp.response(200, PatientSchema)
    def patch(self, changes: dict[str, Any], patient_id: int) -> Any:
        """Change a patient's details or reminder preferences."""
        patient = records.get_patient(db(), actor(), patient_id)
        stamp = freshness.patient_stamp(db(), patient)
        conditional.check_if_match(blp, row_version("patient", patient), stamp)
        records.update_patient(db(), actor(), patient, changes)
        db().commit()
        blp.set_etag(freshness.patient_stamp(db(), patient))
        return patient
