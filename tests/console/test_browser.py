"""The staff console in Debian's Chromium: a clinician's day from enrolment to the first dose,
an admin's settings, and the refusals (a patient's sign-in, another clinic, a missing token).

Every page visited is checked with axe-core (no "serious" or "critical" violation) and
photographed at 1280 px; Today and the patient's page are also checked at 768 px (a tablet).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.console.conftest import Console

SERIOUS = ("serious", "critical")
# The required items of the ocrelizumab checklist and a result that clears each.
CLEARING_RESULTS = {
    "hbsag": "negative",
    "anti_hbc": "negative",
    "ig_quant": "normal",
    "vaccines_live": "negative",
    "active_infection": "negative",
}
LIVER_TESTS = {
    "alt": (22, 7, 56),
    "ast": (25, 8, 48),
    "alp": (80, 40, 129),
    "bilirubin": (10.5, 3, 21),  # decimals are accepted (step="any")
}

_axe = Axe()


def check(page: Any, artifacts: Path, name: str) -> None:
    """axe-core finds nothing serious, and the page is photographed at its current width."""
    results = _axe.run(page)
    serious = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in SERIOUS
    ]
    assert not serious, f"{name}: {serious}"
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def tablet(page: Any, artifacts: Path, name: str) -> None:
    """At 768 px nothing is cut off: the page does not scroll sideways."""
    page.set_viewport_size({"width": 768, "height": 1024})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 768, f"{name} is {width} px wide at 768 px"
    check(page, artifacts, f"{name}-768")
    page.set_viewport_size({"width": 1280, "height": 900})


def open_every_form(page: Any) -> None:
    page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")


def sign_in(page: Any, email: str, password: str) -> None:
    page.goto("/console/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_a_clinician_takes_a_patient_from_enrolment_to_the_first_dose(
    page: Any, console: Console, artifacts: Path
) -> None:
    zone = ZoneInfo(console.zone)
    now = datetime.now(zone)
    today = now.date()

    page.goto("/console/login")
    check(page, artifacts, "login")
    sign_in(page, console.clinician, console.password)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Chairs on")
    expect(page.get_by_text(console.zone).first).to_be_visible()
    check(page, artifacts, "today-empty")

    # Enrol.
    page.get_by_role("link", name="Patients").click()
    check(page, artifacts, "patients")
    page.get_by_label("MRN", exact=True).fill("CONSOLE-001")
    page.get_by_label("Given name", exact=True).fill("Robin")
    page.get_by_label("Family name", exact=True).fill("Console")
    page.get_by_label("Birth date", exact=True).fill("1984-05-06")
    page.get_by_label("Patient email").fill("robin@console.test")
    page.get_by_role("button", name="Enrol patient").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Robin Console")
    patient_url = page.url

    # Search finds the patient by MRN.
    page.get_by_role("link", name="Patients").click()
    page.get_by_label("Search by name or MRN").fill("CONSOLE-0")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Console, Robin").click()

    # Preview, then start, an ocrelizumab plan.
    page.get_by_label("Regimen").select_option("ocrelizumab-iv")
    page.get_by_label("Start date").fill(today.isoformat())
    page.get_by_role("button", name="Preview the schedule").click()
    preview = page.locator("section[aria-labelledby=preview-heading]")
    expect(preview).to_contain_text(today.isoformat())
    expect(preview).to_contain_text((today + timedelta(days=14)).isoformat())
    check(page, artifacts, "plan-preview")
    page.get_by_role("button", name="Start this plan").click()
    expect(page.locator("#plan-status")).to_have_text("screening")
    expect(page.locator("#checklist-outcome")).to_contain_text("pending")

    # Making it ready now is refused, with the API's explanation.
    page.get_by_role("button", name="Make the plan ready").click()
    refusal = page.get_by_role("alert")
    expect(refusal).to_contain_text("screening_not_cleared")
    expect(refusal).to_contain_text("hbsag")
    check(page, artifacts, "refusal-not-cleared")

    # The results, one by one: each clears its item from the blocking list.
    for code, result in CLEARING_RESULTS.items():
        expect(page.locator("#blocking-items")).to_contain_text(code)
        row = page.locator(f"#item-{code}")
        row.get_by_text(f"Record {code}").click()
        row.get_by_label(f"Result for {code}").select_option(result)
        row.get_by_role("button", name=f"Save {code}").click()
        expect(page.get_by_role("status")).to_contain_text(f"Screening result for {code}")
        expect(page.locator("#blocking-items")).not_to_contain_text(code)
    check(page, artifacts, "patient-screening")
    row = page.locator("#item-lft")
    row.get_by_text("Record lft").click()
    for code, (value, low, high) in LIVER_TESTS.items():
        row.get_by_label(f"{code.upper()} value").fill(str(value))
        row.get_by_label(f"{code.upper()} reference low").fill(str(low))
        row.get_by_label(f"{code.upper()} reference high").fill(str(high))
    row.get_by_role("button", name="Save lft").click()
    expect(page.locator("#checklist-outcome")).to_have_text("cleared")
    expect(page.locator("#blocking-items")).to_have_count(0)

    page.get_by_role("button", name="Make the plan ready").click()
    expect(page.locator("#plan-status")).to_have_text("ready")

    # Book the first dose this morning (local time), in a chair.
    booked_at = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    dose_row = page.locator("#dose-1")
    dose_row.get_by_text("Book dose 1").click()
    dose_row.get_by_label(re.compile("Appointment for dose 1")).fill(
        booked_at.strftime("%Y-%m-%dT%H:%M")
    )
    dose_row.get_by_label("Chair or room for dose 1").fill("Chair 3")
    dose_row.get_by_role("button", name="Save appointment for dose 1").click()
    expect(page.get_by_role("status")).to_contain_text("Dose 1 booked")
    check(page, artifacts, "patient")
    tablet(page, artifacts, "patient")

    # Today shows the chair, in the clinic's zone.
    page.get_by_role("link", name="Today").click()
    chair = page.locator("article", has_text="Robin Console")
    expect(chair).to_contain_text(f"{booked_at.strftime('%H:%M')} {console.zone}")
    expect(chair).to_contain_text("Chair 3")
    expect(chair).to_contain_text("methylprednisolone")
    expect(chair).to_contain_text("not ready")
    check(page, artifacts, "today")
    tablet(page, artifacts, "today")

    # The nurse finds no infection, then records the infusion with its premedications.
    chair.get_by_label(re.compile("^Result for No active infection")).select_option("negative")
    chair.get_by_role("button", name=re.compile("^Record No active infection")).click()
    chair = page.locator("article", has_text="Robin Console")
    expect(chair).to_contain_text("Readiness of dose 1: ready")
    chair.get_by_text("Record administration of dose 1").click()
    premedication_at = (booked_at - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    for drug in ("methylprednisolone", "antihistamine"):
        chair.get_by_label(f"{drug} given", exact=True).check()
        chair.get_by_label(re.compile(f"^{drug} given at")).fill(premedication_at)
    chair.get_by_label("Reaction grade").select_option("none")
    check(page, artifacts, "today-administration-form")
    chair.get_by_role("button", name="Record as given").click()
    expect(page.get_by_role("status")).to_contain_text("Dose 1 recorded as given")

    # The patient's page: the plan is active and the next dose is 14 days on.
    page.goto(patient_url)
    expect(page.locator("#plan-status")).to_have_text("active")
    expect(page.locator("#dose-1")).to_contain_text("administered")
    expect(page.locator("#dose-2 .due")).to_have_text((today + timedelta(days=14)).isoformat())
    check(page, artifacts, "patient-after-dose")
    # Every form of the page, opened (plan status, demographics, skip or cancel, ...): axe too.
    open_every_form(page)
    check(page, artifacts, "patient-forms-open")

    # The app invitation shows its code once.
    page.get_by_role("button", name="Invite to the app").click()
    expect(page.locator("#activation-code")).to_have_text(re.compile(r"^[A-Z0-9-]{10,}$"))
    check(page, artifacts, "invitation")

    page.get_by_role("link", name="Worklist").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Worklist")
    check(page, artifacts, "worklist")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_an_admin_changes_a_reminder_setting(page: Any, console: Console, artifacts: Path) -> None:
    sign_in(page, console.admin, console.password)
    page.get_by_role("link", name="Clinic").click()
    check(page, artifacts, "clinic")
    open_every_form(page)  # the staff accounts' forms too
    check(page, artifacts, "clinic-forms-open")
    page.reload()
    page.get_by_label(re.compile("^Dose reminder lead days")).fill("5, 1")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_contain_text("Clinic settings saved")
    expect(page.get_by_label(re.compile("^Dose reminder lead days"))).to_have_value("5, 1")
    # A wrong value is refused with the API's per-field explanation, the input kept.
    page.get_by_label(re.compile("^Dose reminder lead days")).fill("5, 500")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("alert")).to_contain_text("validation_failed")
    expect(page.get_by_role("alert")).to_contain_text("dose_lead_days")
    expect(page.get_by_label(re.compile("^Dose reminder lead days"))).to_have_value("5, 500")
    check(page, artifacts, "clinic-refusal")
    page.get_by_role("link", name="Audit trail").click()
    page.get_by_label("Outcome").select_option("success")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table")).to_contain_text("/console/clinic")
    check(page, artifacts, "audit")


@pytest.mark.parametrize("who", ["patient"])
def test_a_patient_cannot_sign_in(page: Any, console: Console, artifacts: Path, who: str) -> None:
    sign_in(page, console.patient_login, console.password)
    expect(page.get_by_role("alert")).to_contain_text("staff_only")
    expect(page.get_by_role("link", name="Today")).to_have_count(0)
    check(page, artifacts, "login-refused-patient")


def test_another_clinics_patient_is_not_found(page: Any, console: Console, artifacts: Path) -> None:
    sign_in(page, console.clinician, console.password)
    response = page.goto(f"/console/patients/{console.other_clinic_patient_id}")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("not_found")
    check(page, artifacts, "not-found")


def test_a_form_without_its_csrf_token_is_refused(
    page: Any, console: Console, artifacts: Path
) -> None:
    sign_in(page, console.clinician, console.password)
    page.get_by_role("link", name="Patients").click()
    # The enrol form loses its token, as a form built by another site would lack it.
    page.locator("form[action='/console/patients'] input[name=csrf_token]").evaluate(
        "input => input.remove()"
    )
    page.get_by_label("MRN", exact=True).fill("CSRF-1")
    page.get_by_label("Given name", exact=True).fill("No")
    page.get_by_label("Family name", exact=True).fill("Token")
    page.get_by_label("Birth date", exact=True).fill("1990-01-01")
    with page.expect_response(re.compile("/console/patients$")) as answer:
        page.get_by_role("button", name="Enrol patient").click()
    assert answer.value.status == 400
    expect(page.get_by_role("alert")).to_contain_text("csrf_failed")
    check(page, artifacts, "csrf-refused")
    page.get_by_role("link", name="Patients").click()
    page.get_by_label("Search by name or MRN").fill("CSRF-1")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name="Token, No")).to_have_count(0)


def test_signing_in_and_moving_around_with_the_keyboard_only(
    page: Any, console: Console, artifacts: Path
) -> None:
    page.goto("/console/login")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(console.clinician)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(console.password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Chairs on")
    # The navigation is reached by Tab and followed by Enter.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Worklist":
            break
    expect(page.get_by_role("link", name="Worklist")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Worklist")
