"""Set-based seeding of a clinic at registry scale for the staff-view and API benchmarks.

Five template patients get real plans through the use cases, one per regimen: checklist
cleared, plan made ready, first dose booked and its infection check answered. Every other
patient is a copy of one of them, made by one INSERT ... SELECT per table over the copies
(generate_series), with the plan moved by 0..booking_days-1 days: 100,000 patients take well
under a minute, and every row is one the application itself wrote, stored states included.

On top come a fixed handful of worklist entries, the same at any size (see `add_worklist`),
and a fixed day (`Registry.fixed_day`) with exactly `fixed_day_doses` booked first doses, so
the day's schedule holds the same list at 1,000 and at 100,000 patients. PostgreSQL only; the
caller's session owns the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, text
from sqlalchemy.orm import Session

from service.core.access import Actor
from service.models import (
    Clinic,
    Dose,
    DoseCheck,
    MonitoringTask,
    Patient,
    ScreeningItem,
    StaffAlert,
    TreatmentPlan,
    User,
)

REGISTRY_CLINIC = "cd20 registry bench"
ZONE = "Europe/Berlin"
REGIMENS = ("ocrelizumab-iv", "ocrelizumab-sc", "ofatumumab-sc", "rituximab-iv", "ublituximab-iv")
# Results stay current for the whole booking window.
PLAN_SETTINGS = {"screening_validity_days": "one_hundred_eighty_days"}
# Ublituximab's checklist holds a pregnancy test current for days only: its copies start
# within that many days, so that every copy's checklist is cleared as its template's is.
NEAR_REGIMENS = ("ublituximab-iv",)
NEAR_DAYS = 5
# Appointments from 08:00 local, every half hour over the day.
SLOTS = 16


@dataclass(frozen=True)
class Registry:
    clinic_id: int
    staff_id: int
    patients: int
    fixed_day: date
    fixed_day_doses: int

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.staff_id, role="clinician", clinic_id=self.clinic_id)


def seed_registry(
    session: Session,
    *,
    patients: int,
    today: date,
    booking_days: int = 60,
    fixed_day_doses: int = 33,
    clinic_size: int | None = None,
) -> Registry:
    """`patients` patients, each with a plan ready and its first dose booked between tomorrow
    and `booking_days` days ahead (and `fixed_day_doses` of them on the day after the window).

    All in one clinic, or with `clinic_size` in clinics of that many patients; the first one
    (`Registry.clinic_id`) holds the templates, the fixed day and the worklist entries."""
    clinic = Clinic(name=REGISTRY_CLINIC, time_zone=ZONE)
    session.add(clinic)
    session.flush()
    staff = User(
        clinic_id=clinic.id,
        email=f"registry-staff-{clinic.id}@example.org",
        password_hash=None,
        role="clinician",
    )
    session.add(staff)
    session.flush()
    actor = Actor(user_id=staff.id, role="clinician", clinic_id=clinic.id)
    first_day = today + timedelta(days=1)
    templates = [
        _template_plan(session, actor, clinic, regimen, first_day, f"REGT{k}")
        for k, regimen in enumerate(REGIMENS)
    ]
    session.flush()
    fixed_day = first_day + timedelta(days=booking_days)
    copies = max(patients - len(templates), 0)
    size = clinic_size or patients
    clinic_ids = [clinic.id, *_more_clinics(session, -(-patients // size) - 1)]
    _copy_plans(
        session.connection(),
        clinic_ids,
        size,
        [plan.id for plan in templates],
        copies=copies,
        booking_days=booking_days,
        fixed=min(fixed_day_doses, copies),
        fixed_shift=booking_days,
        near_ids=[p.id for p in templates if p.regimen_code in NEAR_REGIMENS],
    )
    _store_copied_states(session)
    session.expire_all()
    return Registry(
        clinic_id=clinic.id,
        staff_id=staff.id,
        patients=len(templates) + copies,
        fixed_day=fixed_day,
        fixed_day_doses=min(fixed_day_doses, copies),
    )


def _more_clinics(session: Session, count: int) -> list[int]:
    if count <= 0:
        return []
    return list(
        session.execute(
            text(
                "INSERT INTO clinic (name, time_zone, settings, created_at)"
                " SELECT :name || ' ' || k, :zone, '{}'::json, now()"
                " FROM generate_series(2, :last) AS k ORDER BY k RETURNING id"
            ),
            {"name": REGISTRY_CLINIC, "zone": ZONE, "last": count + 1},
        ).scalars()
    )


def _patient(session: Session, clinic: Clinic, mrn: str, **fields: Any) -> Patient:
    patient = Patient(
        clinic_id=clinic.id,
        mrn=mrn,
        given_name="Registry",
        family_name=f"Patient {mrn}",
        birth_date=date(1985, 3, 14),
        time_zone=ZONE,
        email=f"{mrn.lower()}@example.org",
        can_become_pregnant=False,
        **fields,
    )
    session.add(patient)
    session.flush()
    return patient


def _plan(
    session: Session,
    actor: Actor,
    patient: Patient,
    regimen: str,
    start: date,
    *,
    cleared: bool = True,
    ready: bool = True,
) -> TreatmentPlan:
    from service.treatment.plans import PlanRequest, create_plan, update_plan
    from service.treatment.screening import record_screening_result
    from tests.factories import NORMAL_LIVER_TESTS

    plan = create_plan(
        session,
        actor,
        patient.id,
        PlanRequest(regimen=regimen, start_date=start, settings=PLAN_SETTINGS),
    )
    if not cleared:
        return plan
    result_date = min(date.today(), start) - timedelta(days=2)
    for item in plan.screening_items:
        rule = item.rule
        if not item.is_required or rule is None:
            continue
        if item.code == "lft":
            record_screening_result(
                session, actor, item, result_date=result_date, values=NORMAL_LIVER_TESTS
            )
            continue
        result = next(r for r in rule.allowed_results if rule.outcome_for(r) == "cleared")
        record_screening_result(session, actor, item, result=result, result_date=result_date)
    if ready:
        update_plan(session, actor, plan, {"status": "ready"})
    return plan


def _book_first(session: Session, plan: TreatmentPlan, day: date, slot: int = 0) -> Dose:
    dose = plan.doses[0]
    local = datetime.combine(day, time(8, 0), ZoneInfo(ZONE)) + timedelta(minutes=30 * slot)
    dose.status, dose.booking = "booked", "confirmed"
    dose.appointment_at = local.astimezone(UTC)
    dose.location = "Infusion unit 1"
    session.flush()
    return dose


def _answer_infection_check(session: Session, actor: Actor, dose: Dose) -> None:
    from service.treatment.readiness import record_readiness_answer

    record_readiness_answer(
        session,
        actor,
        dose.id,
        "active_infection",
        result="negative",
        result_date=date.today() - timedelta(days=1),
    )


def _template_plan(
    session: Session, actor: Actor, clinic: Clinic, regimen: str, start: date, mrn: str
) -> TreatmentPlan:
    plan = _plan(session, actor, _patient(session, clinic, mrn), regimen, start)
    dose = _book_first(session, plan, start)
    _answer_infection_check(session, actor, dose)
    return plan


def _columns(table: Table, overrides: Mapping[str, str], alias: str = "t") -> tuple[str, str]:
    """The column list of an INSERT copying `table` row by row, and its SELECT list."""
    names = [c.name for c in table.columns if c.name != "id"]
    return ", ".join(names), ", ".join(overrides.get(n, f"{alias}.{n}") for n in names)


def _copy(
    conn: Connection,
    table: Table,
    overrides: Mapping[str, str],
    source: str,
    params: Mapping[str, Any],
) -> None:
    into, select_list = _columns(table, overrides)
    conn.execute(
        text(f"INSERT INTO {table.name} ({into}) SELECT {select_list} FROM {source}"), params
    )


def _copy_plans(
    conn: Connection,
    clinic_ids: list[int],
    clinic_size: int,
    template_ids: list[int],
    *,
    copies: int,
    booking_days: int,
    fixed: int,
    fixed_shift: int,
    near_ids: list[int],
) -> None:
    """Copy the template plans (round robin) to `copies` new patients, table by table."""
    if copies == 0:
        return
    conn.execute(
        text(
            """
            CREATE TEMPORARY TABLE registry_copy ON COMMIT DROP AS
            SELECT i, (CAST(:templates AS integer[]))[1 + i % :n] AS template_plan_id,
                CASE WHEN i <= :fixed THEN :fixed_shift
                    WHEN (CAST(:templates AS integer[]))[1 + i % :n] = ANY(CAST(:near AS integer[]))
                        THEN i % :near_days
                    ELSE i % :days END AS shift,
                (CAST(:clinics AS integer[]))[1 + (i + :n - 1) / :size] AS clinic_id,
                NULL::integer AS patient_id, NULL::integer AS plan_id
            FROM generate_series(1, :copies) AS i
            """
        ),
        {
            "clinics": clinic_ids,
            "size": clinic_size,
            "templates": template_ids,
            "n": len(template_ids),
            "fixed": fixed,
            "fixed_shift": fixed_shift,
            "days": booking_days,
            "copies": copies,
            "near": near_ids,
            "near_days": NEAR_DAYS,
        },
    )
    params: dict[str, Any] = {}
    mrn = "'REG' || lpad(c.i::text, 7, '0')"
    _copy(
        conn,
        Patient.__table__,  # type: ignore[arg-type]
        {
            "clinic_id": "c.clinic_id",
            "mrn": mrn,
            "family_name": "'Patient ' || c.i",
            "email": "'registry' || c.i || '@example.org'",
        },
        "registry_copy c JOIN treatment_plan tp ON tp.id = c.template_plan_id"
        " JOIN patient t ON t.id = tp.patient_id",
        params,
    )
    conn.execute(
        text(
            f"UPDATE registry_copy c SET patient_id = p.id FROM patient p"
            f" WHERE p.clinic_id = c.clinic_id AND p.mrn = {mrn}"
        ),
        params,
    )
    _copy(
        conn,
        TreatmentPlan.__table__,  # type: ignore[arg-type]
        {
            "clinic_id": "c.clinic_id",
            "patient_id": "c.patient_id",
            "start_date": "t.start_date + c.shift",
        },
        "registry_copy c JOIN treatment_plan t ON t.id = c.template_plan_id",
        params,
    )
    conn.execute(
        text(
            "UPDATE registry_copy c SET plan_id = p.id FROM treatment_plan p"
            " WHERE p.patient_id = c.patient_id"
        )
    )
    conn.execute(text("CREATE INDEX ON registry_copy (template_plan_id)"))
    conn.execute(text("ANALYZE registry_copy"))
    _copy(
        conn,
        ScreeningItem.__table__,  # type: ignore[arg-type]
        {"plan_id": "c.plan_id"},
        "registry_copy c JOIN screening_item t ON t.plan_id = c.template_plan_id",
        params,
    )
    _copy(
        conn,
        Dose.__table__,  # type: ignore[arg-type]
        {
            "plan_id": "c.plan_id",
            "due_date": "t.due_date + c.shift",
            "earliest_date": "t.earliest_date + c.shift",
            "appointment_at": "t.appointment_at"
            f" + make_interval(days => c.shift, mins => (c.i % {SLOTS}) * 30)",
        },
        "registry_copy c JOIN dose t ON t.plan_id = c.template_plan_id",
        params,
    )
    _copy(
        conn,
        DoseCheck.__table__,  # type: ignore[arg-type]
        {"dose_id": "nd.id"},
        "registry_copy c JOIN dose td ON td.plan_id = c.template_plan_id"
        " JOIN dose_check t ON t.dose_id = td.id"
        " JOIN dose nd ON nd.plan_id = c.plan_id AND nd.sequence = td.sequence",
        params,
    )
    _copy(
        conn,
        MonitoringTask.__table__,  # type: ignore[arg-type]
        {
            "plan_id": "c.plan_id",
            "due_date": "t.due_date + c.shift",
            "rule_date": "t.rule_date + c.shift",
            "dose_id": "nd.id",
        },
        "registry_copy c JOIN monitoring_task t ON t.plan_id = c.template_plan_id"
        " LEFT JOIN dose td ON td.id = t.dose_id"
        " LEFT JOIN dose nd ON nd.plan_id = c.plan_id AND nd.sequence = td.sequence",
        params,
    )


def _store_copied_states(session: Session) -> None:
    """The stored gate, checklist and readiness of the copies, as the application works them
    out: copies of one template moved by the same number of days share them, so one of each is
    worked out through the models and the rest take its values (no-op before the states
    existed)."""
    try:
        from service.models.stored_state import store_states
    except ImportError:
        return
    session.execute(
        text(
            "CREATE TEMPORARY TABLE registry_rep ON COMMIT DROP AS"
            " SELECT DISTINCT ON (template_plan_id, shift) template_plan_id, shift, plan_id"
            " FROM registry_copy ORDER BY template_plan_id, shift, i"
        )
    )
    for plan_id in session.execute(text("SELECT plan_id FROM registry_rep")).scalars():
        store_states(session, session.get_one(TreatmentPlan, plan_id), doses=True)
    session.flush()
    plan_states = ["gate_open"]
    if "checklist_outcome" in TreatmentPlan.__table__.c:  # not before the checklist was stored
        plan_states += ["checklist_outcome", "checklist_blocking", "checklist_overridden"]
    assignments = ", ".join(f"{name} = rp.{name}" for name in plan_states)
    session.execute(
        text(
            f"UPDATE treatment_plan p SET {assignments} FROM registry_copy c"
            " JOIN registry_rep r USING (template_plan_id, shift)"
            " JOIN treatment_plan rp ON rp.id = r.plan_id WHERE p.id = c.plan_id"
        )
    )
    dose_states = ["ready", "observation_short"]
    if "readiness_blocking" in Dose.__table__.c:  # not before the blocking items were stored
        dose_states.append("readiness_blocking")
    assignments = ", ".join(f"{name} = rd.{name}" for name in dose_states)
    session.execute(
        text(
            f"UPDATE dose d SET {assignments}"
            " FROM registry_copy c JOIN registry_rep r USING (template_plan_id, shift)"
            " JOIN dose rd ON rd.plan_id = r.plan_id"
            " WHERE d.plan_id = c.plan_id AND d.sequence = rd.sequence"
        )
    )


def add_resolved_alerts(session: Session, registry: Registry, count: int) -> None:
    """Alerts staff dealt with long ago: they pile up, and the worklist must not read them."""
    session.execute(
        text(
            """
            INSERT INTO staff_alert (clinic_id, patient_id, kind, subject_type, subject_id,
                details, created_at, resolved_at, resolved_by_id)
            SELECT :clinic_id, NULL, 'lab_low', 'lab_result', i, '{}'::json,
                now() - make_interval(days => 30 + i % 300), now() - make_interval(days => 29),
                :staff_id
            FROM generate_series(1, :count) AS i
            """
        ),
        {"clinic_id": registry.clinic_id, "staff_id": registry.staff_id, "count": count},
    )


def add_worklist(session: Session, registry: Registry, today: date) -> dict[str, int]:
    """The same handful of worklist entries at any size, made through the use cases: checklists
    not cleared, plans cleared but not made ready, overdue doses, doses whose readiness is
    open, open alerts. Returns how many of each were made."""
    clinic = session.get_one(Clinic, registry.clinic_id)
    actor = registry.actor
    made = {"checklists": 0, "not_made_ready": 0, "overdue_doses": 0, "readiness_open": 0}
    for k in range(3):
        patient = _patient(session, clinic, f"REGW-C{k}")
        _plan(session, actor, patient, REGIMENS[k], today + timedelta(days=5), cleared=False)
        made["checklists"] += 1
    for k in range(2):
        patient = _patient(session, clinic, f"REGW-R{k}")
        _plan(session, actor, patient, REGIMENS[k], today + timedelta(days=7), ready=False)
        made["not_made_ready"] += 1
    for k in range(3):
        patient = _patient(session, clinic, f"REGW-O{k}")
        _plan(session, actor, patient, REGIMENS[k], today - timedelta(days=3 + k))
        made["overdue_doses"] += 1
    for k in range(2):
        patient = _patient(session, clinic, f"REGW-I{k}")
        plan = _plan(session, actor, patient, REGIMENS[k], today + timedelta(days=1))
        _book_first(session, plan, today + timedelta(days=1), slot=k)
        made["readiness_open"] += 1
    for k in range(3):
        patient = session.get_one(Patient, _template_patient_id(session, registry, k))
        session.add(
            StaffAlert(
                clinic_id=clinic.id,
                patient_id=patient.id,
                kind="lab_low",
                subject_type="lab_result",
                subject_id=k + 1,
                details={"code": "igg", "flag": "low"},
            )
        )
    made["alerts"] = 3
    session.flush()
    return made


def _template_patient_id(session: Session, registry: Registry, k: int) -> int:
    return int(
        session.execute(
            text("SELECT id FROM patient WHERE clinic_id = :c AND mrn = :mrn"),
            {"c": registry.clinic_id, "mrn": f"REGT{k}"},
        ).scalar_one()
    )
