"""On PostgreSQL, two writers holding the same version of a row: exactly one wins."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from service.models import Clinic, Patient


@pytest.fixture
def committed_patient(requires_postgres):
    with Session(requires_postgres) as setup:
        clinic = Clinic(name="Concurrency clinic", time_zone="Europe/Berlin")
        setup.add(clinic)
        setup.flush()
        patient = Patient(
            clinic_id=clinic.id,
            mrn="RACE-1",
            given_name="Ada",
            family_name="Race",
            birth_date=date(1980, 1, 1),
            time_zone="Europe/Berlin",
        )
        setup.add(patient)
        setup.commit()
        ids = clinic.id, patient.id
    yield ids
    with Session(requires_postgres) as cleanup:
        cleanup.execute(delete(Patient).where(Patient.id == ids[1]))
        cleanup.execute(delete(Clinic).where(Clinic.id == ids[0]))
        cleanup.commit()


def test_concurrent_updates_of_one_version_give_one_success(requires_postgres, committed_patient):
    _, patient_id = committed_patient
    both_loaded = threading.Barrier(2)
    outcomes: list[str] = []

    def edit(phone: str) -> None:
        with Session(requires_postgres) as session:
            patient = session.get(Patient, patient_id)
            assert patient is not None
            both_loaded.wait(timeout=10)
            patient.phone = phone
            try:
                session.commit()
                outcomes.append("saved")
            except StaleDataError:
                session.rollback()
                outcomes.append("stale")

    threads = [threading.Thread(target=edit, args=(f"+49 {n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["saved", "stale"]
    with Session(requires_postgres) as check:
        stored = check.get(Patient, patient_id)
        assert stored is not None
        assert stored.version == 2
