"""What a reminder says: inbox title and body per kind, and the generic text for push and e-mail."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Push notifications and e-mails leave the login-protected app: they never carry clinical detail.
GENERIC_TEXT = "You have a new message from your clinic"
GENERIC_TITLE = "A message from your clinic"
APP_HINT = "Open the cd20-monitor app to read it."

MAX_TITLE = 200
MAX_PIECE = 120

# Monitoring task kinds as a person reads them; unknown codes get a neutral phrase.
TASK_NAMES = {
    "ig_quant": "immunoglobulin test",
    "immunoglobulins": "immunoglobulin test",
    "cbc": "blood count",
    "blood_count": "blood count",
    "lymphocytes": "lymphocyte count",
    "cd19": "B-cell (CD19) count",
    "hbv_dna": "hepatitis B (HBV DNA) test",
    "lft": "liver function test",
    "alt": "liver test (ALT)",
    "mri": "MRI scan",
    "pregnancy": "pregnancy test",
}


@dataclass(frozen=True)
class _Context:
    payload: Mapping[str, Any]
    audience: str
    zone: ZoneInfo | None
    # The reader's date when the message is delivered: "tomorrow" is counted from it, so a
    # reminder delivered late still says how far away the day really is.
    today: date | None = None

    @property
    def your(self) -> str:
        return "Your" if self.audience == "patient" else "The patient's"

    def text(self, key: str) -> str | None:
        value = self.payload.get(key)
        if value is None or isinstance(value, bool | dict | list):
            return None
        piece = " ".join(str(value).split())
        return piece[:MAX_PIECE] or None

    def number(self, key: str) -> str | None:
        value: Any = self.payload.get(key)
        if isinstance(value, bool):
            return None
        try:
            return f"{float(value):g}"
        except (TypeError, ValueError):
            return None

    def appointment(self) -> datetime | None:
        raw = self.payload.get("appointment_at")
        if not isinstance(raw, str):
            return None
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            return None
        if moment.tzinfo is not None and self.zone is not None:
            moment = moment.astimezone(self.zone)
        return moment

    def day(self) -> date | None:
        moment = self.appointment()
        if moment is not None:
            return moment.date()
        raw = self.payload.get("due_date")
        if not isinstance(raw, str):
            return None
        try:
            return date.fromisoformat(raw[:10])
        except ValueError:
            return None

    def lead_days(self) -> int | None:
        value: Any = self.payload.get("lead_days")
        if isinstance(value, bool):
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    def on_day(self) -> str | None:
        """'on Monday 4 January 2027', for what is already past."""
        day = self.day()
        return f"on {day:%A} {day.day} {day:%B %Y}" if day else None

    def days_away(self) -> int | None:
        day = self.day()
        if self.today is not None and day is not None:
            return (day - self.today).days
        return self.lead_days()

    def when(self) -> str:
        """'tomorrow, Monday 4 January 2027, at 09:30', or as much of it as the payload has."""
        day = self.day()
        lead = self.days_away()
        parts = []
        if lead == 0:
            parts.append("today")
        elif lead == 1:
            parts.append("tomorrow")
        elif lead is not None and lead > 1:
            parts.append(f"in {lead} days")
        if day is not None:
            written = f"{day:%A} {day.day} {day:%B %Y}"
            parts.append(written if parts else f"on {written}")
        if not parts:
            parts.append("soon")
        phrase = ", ".join(parts)
        moment = self.appointment()
        if moment is not None:
            phrase += f", at {moment:%H:%M}"
        location = self.text("location")
        if location:
            phrase += f" ({location})"
        return phrase

    def dose(self) -> str:
        """'ocrelizumab dose (dose 3, 600 mg)', or 'dose' when nothing is known."""
        drug = self.text("drug")
        details = []
        sequence = self.number("dose_sequence")
        if sequence:
            details.append(f"dose {sequence}")
        amount = self.number("amount_mg")
        if amount:
            details.append(f"{amount} mg")
        text = f"{drug} dose" if drug else "dose"
        if details:
            text += f" ({', '.join(details)})"
        return text

    def task(self) -> str:
        code = self.text("task_kind")
        if not code:
            return "check"
        return TASK_NAMES.get(code.lower(), code.replace("_", " "))


def _dose_upcoming(c: _Context) -> tuple[str, str]:
    if c.appointment() is not None:
        body = f"{c.your} appointment for the next {c.dose()} is {c.when()}."
        return "Upcoming appointment", body
    return "Upcoming dose", f"{c.your} next {c.dose()} is due {c.when()}."


def _infection_checkin(c: _Context) -> tuple[str, str]:
    return (
        "Before your next dose: how are you?",
        f"{c.your} next {c.dose()} is {c.when()}. Please answer the check-in: tell your clinic"
        " about any fever, infection or antibiotics, so the team can decide whether to go ahead.",
    )


def _morning_of(c: _Context) -> tuple[str, str]:
    if c.today is None:
        c = _Context({**c.payload, "lead_days": 0}, c.audience, c.zone)
    # Sent the evening before when the slot is too early for a morning message.
    title = "Your treatment is tomorrow" if c.days_away() == 1 else "Your treatment is today"
    return (
        title,
        f"{c.your} {c.dose()} is {c.when()}. If you feel unwell or have an infection,"
        " call your clinic before you set off.",
    )


def _self_injection_due(c: _Context) -> tuple[str, str]:
    drug = c.text("drug")
    name = f"{drug} injection" if drug else "injection"
    return "Injection due", f"{c.your} next {name} is due {c.when()}."


def _dose_missed(c: _Context) -> tuple[str, str]:
    day = c.on_day()
    was = f" was due {day} and" if day else ""
    return (
        "Missed dose: please rebook",
        f"{c.your} {c.dose()}{was} has not been given. It should be given as soon as possible:"
        " please contact your clinic to book it.",
    )


def _labs_due(c: _Context) -> tuple[str, str]:
    task = c.task()
    return (
        f"{task[:1].upper()}{task[1:]} due",
        f"{c.your} {task} is due {c.when()}."
        " Please arrange it with your clinic if it is not booked yet.",
    )


def _symptom_checkin(c: _Context) -> tuple[str, str]:
    drug = c.text("drug")
    after = f"your {drug} dose" if drug else "your last dose"
    return (
        "How are you since your dose?",
        f"Please answer the check-in and tell your clinic how you have been since {after}:"
        " any fever, infection, rash or other new symptoms.",
    )


def _checklist_not_cleared(c: _Context) -> tuple[str, str]:
    return (
        "Screening not cleared",
        f"The pre-treatment screening is not cleared and the first dose is due {c.when()}.",
    )


def _dose_overdue(c: _Context) -> tuple[str, str]:
    day = c.on_day()
    due = f"was due {day} and" if day else "is overdue and"
    return "Dose overdue", f"The {c.dose()} {due} is not recorded as given."


def _monitoring_overdue(c: _Context) -> tuple[str, str]:
    task = c.task()
    day = c.on_day()
    due = f"was due {day} and" if day else "is overdue and"
    return f"Monitoring overdue: {task}", f"The {task} {due} is not done."


def _patient_reported(c: _Context) -> tuple[str, str]:
    return (
        "Patient-reported symptoms",
        "A patient reported symptoms or a possible infection in a check-in. Please review it.",
    )


def _reminder_dead(c: _Context) -> tuple[str, str]:
    kind = c.text("reminder_kind") or c.text("kind")
    what = f"A {kind.replace('_', ' ')} reminder" if kind else "A reminder"
    return (
        "Reminder not delivered",
        f"{what} could not be delivered after repeated attempts. Please contact the patient.",
    )


_RENDERERS: dict[str, Callable[[_Context], tuple[str, str]]] = {
    "dose_upcoming": _dose_upcoming,
    "infection_checkin": _infection_checkin,
    "morning_of": _morning_of,
    "self_injection_due": _self_injection_due,
    "dose_missed": _dose_missed,
    "labs_due": _labs_due,
    "symptom_checkin": _symptom_checkin,
    "checklist_not_cleared": _checklist_not_cleared,
    "dose_overdue": _dose_overdue,
    "monitoring_overdue": _monitoring_overdue,
    "patient_reported": _patient_reported,
    "reminder_dead": _reminder_dead,
}

KINDS = tuple(_RENDERERS)


def render(
    kind: str,
    payload: Mapping[str, Any] | None,
    *,
    audience: str,
    time_zone: str | None = None,
    now: datetime | None = None,
) -> tuple[str, str]:
    """The inbox title and body for a reminder; appointment times are shown in `time_zone`,
    and "today", "tomorrow" or "in N days" are counted from `now` there.

    The inbox is behind login, so it may name the drug and the date; missing payload keys give
    a shorter sentence, an unknown kind the generic text.
    """
    zone = None
    if time_zone:
        try:
            zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
    renderer = _RENDERERS.get(kind)
    if renderer is None:
        return GENERIC_TITLE, f"{GENERIC_TEXT}."
    today = now.astimezone(zone).date() if now is not None and zone is not None else None
    title, body = renderer(_Context(payload or {}, audience, zone, today))
    return title[:MAX_TITLE], body
