"""A client generated from the live /openapi.json runs the whole app flow, as a mobile or
integration team would build one: openapi-python-client generates a Python package from the
document a real server on localhost serves, and every call below goes through that package
only (no raw HTTP): log in, enrol, preview, create a plan, record every screening result with
If-Match, book the first dose, read the chair schedule, invite and activate the patient, the
patient's reads (and a 304 on a poll), device registration, and the error `code` of two refusals
(each error response its own model, `code` an enum of its codes). A body that does
not match its documented schema fails inside the generated parsing (a missing required key, a
null where the document promised a value, an unknown enum value)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from service.accounts.passwords import hash_password
from service.db import get_engine
from service.models import Clinic, User
from tests.api.test_idempotency import own_database  # noqa: F401 (a fixture)

PACKAGE = "cd20_generated_client"
STAFF_EMAIL = "nurse@generated-client.example.org"
STAFF_PASSWORD = "correct horse battery staple 42"
PATIENT_PASSWORD = "a long passphrase for the app 7"
BERLIN = ZoneInfo("Europe/Berlin")
# A result for each checklist item that clears it (vzv_igg: positive means immune). The two
# hepatitis B pathway items apply only after a positive anti-HBc.
CLEARING_RESULTS = {
    "hbsag": "negative",
    "anti_hbc": "negative",
    "ig_quant": "normal",
    "lft": "normal",
    "vaccines_live": "negative",
    "vaccines_nonlive": "negative",
    "active_infection": "negative",
    "pregnancy": "negative",
    "hcv": "negative",
    "hiv": "negative",
    "vzv_igg": "positive",
    "tb_igra": "negative",
}
HBV_PATHWAY = {"hbv_dna", "hepatology_consult"}
LIVER_TESTS = [
    ("alt", 22, "U/L", 7, 56),
    ("ast", 25, "U/L", 8, 48),
    ("alp", 80, "U/L", 40, 129),
    ("bilirubin", 10, "umol/L", 3, 21),
]


@pytest.fixture
def server(own_database: str, settings: Any) -> Iterator[str]:  # noqa: F811
    from service.app import create_app

    app = create_app(settings, database_url=own_database)
    with Session(get_engine()) as setup:
        clinic = Clinic(name="Generated client clinic", time_zone="Europe/Berlin")
        setup.add(clinic)
        setup.flush()
        setup.add(
            User(
                clinic_id=clinic.id,
                email=STAFF_EMAIL,
                password_hash=hash_password(settings, STAFF_PASSWORD),
                role="clinician",
            )
        )
        setup.commit()
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def generated(server: str, tmp_path: Path) -> Iterator[ModuleType]:
    """The client package, generated from the server's own document and imported."""
    output = tmp_path / PACKAGE
    subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--url",
            f"{server}/openapi.json",
            "--meta",
            "none",
            "--output-path",
            str(output),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(package: ModuleType, path: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{path}")


def test_the_generated_client_runs_the_whole_flow(server: str, generated: ModuleType) -> None:
    models = _module(generated, "models")
    auth = _module(generated, "api.authentication")
    staff_ops = _module(generated, "api.clinic_staff")
    app_ops = _module(generated, "api.patient_app")
    for name in ("login", "activate_account"):
        importlib.import_module(f"{auth.__name__}.{name}")
    for name in (
        "enrol_patient",
        "preview_plan",
        "create_plan",
        "get_screening_checklist",
        "get_screening_item",
        "record_screening_result",
        "get_dose",
        "update_dose",
        "get_staff_schedule",
        "invite_patient",
    ):
        importlib.import_module(f"{staff_ops.__name__}.{name}")
    for name in (
        "get_me",
        "list_my_plans",
        "list_my_inbox",
        "list_upcoming_reminders",
        "register_device",
    ):
        importlib.import_module(f"{app_ops.__name__}.{name}")
    anonymous = generated.Client(base_url=server, raise_on_unexpected_status=True)

    # A refused login: the problem's stable code, parsed by the client.
    refused = auth.login.sync(
        client=anonymous,
        body=models.TokenRequest(username=STAFF_EMAIL, password="not the password"),
    )
    # Each error response has its own model, `code` an enum of exactly the codes it can carry.
    assert isinstance(refused, models.ProblemInvalidCredentialsOrAccountLocked), refused
    assert refused.code == models.ProblemInvalidCredentialsOrAccountLockedCode.INVALID_CREDENTIALS
    assert refused.code == "invalid_credentials"

    pair = auth.login.sync(
        client=anonymous, body=models.TokenRequest(username=STAFF_EMAIL, password=STAFF_PASSWORD)
    )
    assert isinstance(pair, models.TokenPair), pair
    staff = generated.AuthenticatedClient(
        base_url=server, token=pair.access_token, raise_on_unexpected_status=True
    )

    patient = staff_ops.enrol_patient.sync(
        client=staff,
        body=models.PatientInput(
            mrn="GEN-1",
            given_name="Ada",
            family_name="Generated",
            birth_date=date(1986, 3, 14),
            time_zone="Europe/Berlin",
            email="ada@generated-client.example.org",
        ),
    )
    assert isinstance(patient, models.Patient), patient

    start = date.today() + timedelta(days=21)
    request = models.PlanCreate(regimen="ocrelizumab-iv", start_date=start)
    preview = staff_ops.preview_plan.sync(patient.id, client=staff, body=request)
    assert isinstance(preview, models.PlanPreview), preview
    assert preview.id is None
    assert preview.doses[0].id is None
    assert preview.doses[0].due_date == start
    # The same preview through the older query flag parses as the same type.
    flagged = staff_ops.create_plan.sync(patient.id, client=staff, body=request, preview=True)
    assert isinstance(flagged, models.PlanPreview), flagged
    assert [d.due_date for d in flagged.doses] == [d.due_date for d in preview.doses]

    plan = staff_ops.create_plan.sync(patient.id, client=staff, body=request)
    assert isinstance(plan, models.Plan), plan
    assert plan.status == models.PlanStatus.SCREENING
    assert [d.due_date for d in plan.doses] == [d.due_date for d in preview.doses]

    recorded = []
    yesterday = date.today() - timedelta(days=1)
    for item in plan.screening.items:
        if item.code in HBV_PATHWAY:
            continue
        read = staff_ops.get_screening_item.sync_detailed(plan.id, item.code, client=staff)
        extra: dict[str, Any] = {}
        if item.code == "lft":
            extra["values"] = [
                models.LiverTest(
                    code=models.LiverTestCode(code),
                    value=value,
                    unit=unit,
                    ref_low=low,
                    ref_high=high,
                )
                for code, value, unit, low, high in LIVER_TESTS
            ]
        answer = staff_ops.record_screening_result.sync(
            plan.id,
            item.code,
            client=staff,
            body=models.ScreeningResult(
                result=models.ScreeningResultResult(CLEARING_RESULTS[item.code]),
                result_date=yesterday,
                **extra,
            ),
            if_match=read.headers["etag"],
        )
        assert isinstance(answer, models.ScreeningItem), (item.code, answer)
        recorded.append(answer.code)
    assert set(recorded) == set(CLEARING_RESULTS)
    checklist = staff_ops.get_screening_checklist.sync(plan.id, client=staff)
    assert checklist.outcome == models.ScreeningOutcome.CLEARED
    assert checklist.passes_gate is True

    first = plan.doses[0]
    appointment = datetime.combine(first.due_date, time(9, 30), BERLIN)
    read = staff_ops.get_dose.sync_detailed(first.id, client=staff)
    booked = staff_ops.update_dose.sync(
        first.id,
        client=staff,
        body=models.DoseUpdate(appointment_at=appointment, location="Chair 3"),
        if_match=read.headers["etag"],
    )
    assert isinstance(booked, models.DoseChange), booked
    assert booked.status == models.DoseStatus.BOOKED
    assert booked.appointment_at == appointment

    schedule = staff_ops.get_staff_schedule.sync(client=staff, date=first.due_date)
    assert isinstance(schedule, models.Schedule), schedule
    assert [entry.dose.id for entry in schedule.items] == [first.id]

    # A reschedule that breaks the minimum interval: the refusal's code and its earliest date.
    maintenance = plan.doses[2]
    read = staff_ops.get_dose.sync_detailed(maintenance.id, client=staff)
    too_soon = staff_ops.update_dose.sync(
        maintenance.id,
        client=staff,
        body=models.DoseUpdate(due_date=maintenance.earliest_date - timedelta(days=10)),
        if_match=read.headers["etag"],
    )
    assert isinstance(too_soon, models.UpdateDoseProblem409), too_soon
    assert too_soon.code == models.UpdateDoseProblem409Code.MINIMUM_INTERVAL
    assert too_soon.status == 409
    assert too_soon["earliest_date"] == maintenance.earliest_date.isoformat()

    invitation = staff_ops.invite_patient.sync(patient.id, client=staff)
    assert isinstance(invitation, models.Invitation), invitation
    tokens = auth.activate_account.sync(
        client=anonymous,
        body=models.Activation(code=invitation.code, password=PATIENT_PASSWORD),
    )
    assert isinstance(tokens, models.TokenPair), tokens
    phone = generated.AuthenticatedClient(
        base_url=server, token=tokens.access_token, raise_on_unexpected_status=True
    )

    me = app_ops.get_me.sync(client=phone)
    assert isinstance(me, models.Me), me
    assert (me.role, me.patient_id) == (models.Role.PATIENT, patient.id)
    read = app_ops.list_my_plans.sync_detailed(client=phone)
    my_plans = read.parsed
    assert [p.id for p in my_plans.items] == [plan.id]
    assert my_plans.items[0].doses[0].status == models.DoseStatus.BOOKED
    # Polling: with the ETag it holds, the phone gets a 304 the client returns without a body.
    etag = read.headers["etag"]
    unchanged = app_ops.list_my_plans.sync_detailed(client=phone, if_none_match=etag)
    assert (unchanged.status_code, unchanged.parsed, unchanged.content) == (304, None, b"")
    assert unchanged.headers["etag"] == etag
    assert app_ops.list_my_plans.sync(client=phone, if_none_match=etag) is None
    # Another page is another answer: 200 again.
    second = app_ops.list_my_plans.sync_detailed(client=phone, if_none_match=etag, page=2)
    assert second.status_code == 200
    assert second.parsed.items == []
    inbox = app_ops.list_my_inbox.sync(client=phone)
    assert isinstance(inbox, models.InboxChanges), inbox
    again = app_ops.list_my_inbox.sync(client=phone, since=inbox.next_)
    assert again.items == []
    upcoming = app_ops.list_upcoming_reminders.sync(client=phone)
    assert isinstance(upcoming, models.Upcoming), upcoming
    assert upcoming.items, "a booked first dose three weeks ahead has reminders to come"
    device = app_ops.register_device.sync(
        client=phone,
        body=models.DeviceInput(platform=models.Platform.ANDROID, token="fcm-token-" + "x" * 40),
    )
    assert isinstance(device, models.Device), device
    assert device.platform == models.Platform.ANDROID
