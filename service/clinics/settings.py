"""Use cases for clinics: create one with its first admin, read and change its settings."""

from __future__ import annotations

import json
from datetime import time
from typing import Any

from sqlalchemy.orm import Session

from service.accounts.users import add_staff_user, normalise_email
from service.config import Settings
from service.core.access import Actor
from service.core.outbound import DestinationRefused, OutboundPolicy, parse_target, resolve
from service.core.wall_clock import is_known_time_zone
from service.errors import NotFound, ValidationFailed
from service.models import Clinic, User
from service.models.clinic import REMINDERS_KEY, WEBHOOK_KEY
from service.protocols import get_regimen

# The webhook {"url", "secret"}: where reminders are POSTed, signed with HMAC-SHA256 of the secret.
MIN_WEBHOOK_SECRET = 16
# How long a settings change waits for the webhook host's DNS answer (an unanswered or unknown
# name is accepted: the runner resolves and checks it again before every send).
WEBHOOK_RESOLVE_TIMEOUT_S = 2.0
SECRET_MASK = "********"
MAX_REMINDERS_JSON = 10_000
# Bounds of the reminder defaults (as for a patient's own dose_lead_days).
MAX_LEAD_DAYS = 60
MAX_LEAD_TIMES = 5


def check_time_zone(name: str) -> str:
    if not is_known_time_zone(name):
        raise ValidationFailed(
            f"Unknown time zone '{name}'",
            errors={"time_zone": ["Not an IANA region time zone (e.g. Europe/Berlin) or UTC."]},
        )
    return name


def create_clinic(
    session: Session,
    settings: Settings,
    *,
    name: str,
    time_zone: str,
    admin_email: str,
    admin_password: str,
) -> tuple[Clinic, User]:
    """A new clinic and its first admin (the operator's command line: there is no actor)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("Bad clinic name", errors={"name": ["1 to 200 characters."]})
    check_time_zone(time_zone)
    normalise_email(admin_email)
    clinic = Clinic(name=name, time_zone=time_zone, settings={})
    session.add(clinic)
    session.flush()
    admin = add_staff_user(
        session,
        settings,
        clinic_id=clinic.id,
        email=admin_email,
        role="admin",
        password=admin_password,
    )
    return clinic, admin


def get_clinic(session: Session, actor: Actor) -> Clinic:
    """The caller's clinic, for its staff."""
    actor.require_staff()
    clinic = session.get(Clinic, actor.clinic_id)
    if clinic is None:
        raise NotFound("Clinic not found")
    return clinic


def get_clinic_for_admin(session: Session, actor: Actor) -> Clinic:
    """The caller's clinic, to be changed: refuses non-admins before anything else is checked."""
    actor.require_role("admin")
    return get_clinic(session, actor)


def update_clinic(
    session: Session,
    actor: Actor,
    clinic: Clinic,
    changes: dict[str, Any],
    *,
    outbound: OutboundPolicy | None = None,
) -> Clinic:
    """Change name, time zone or settings; `settings` replaces the stored object as a whole.

    `outbound` says which webhook destinations are acceptable (default: https to public
    addresses only).
    """
    actor.require_role("admin")
    if "time_zone" in changes:
        check_time_zone(changes["time_zone"])
    if "settings" in changes:
        wanted = _keep_webhook_secret(changes["settings"], clinic.settings or {})
        changes = {**changes, "settings": validate_clinic_settings(wanted, outbound=outbound)}
    for name, value in changes.items():
        setattr(clinic, name, value)
    session.flush()
    return clinic


def validate_clinic_settings(
    value: dict[str, Any], *, outbound: OutboundPolicy | None = None
) -> dict[str, Any]:
    """Regimen code -> {setting name -> option name}, checked against the catalog.

    `reminders` holds the clinic's reminder defaults: any object, read by the reminder planner.
    `webhook` is {url, secret}; the URL must be one `outbound` accepts.
    """
    problems: dict[str, Any] = {}
    clean: dict[str, Any] = {}
    for key, chosen in value.items():
        if key == WEBHOOK_KEY:
            if wrong := _webhook_problems(chosen, outbound or OutboundPolicy()):
                problems[key] = wrong
            else:
                clean[key] = {"url": chosen["url"], "secret": chosen["secret"]}
            continue
        if key == REMINDERS_KEY:
            if not isinstance(chosen, dict):
                problems[key] = ["Must be an object."]
            elif len(json.dumps(chosen)) > MAX_REMINDERS_JSON:
                problems[key] = [f"At most {MAX_REMINDERS_JSON} characters of JSON."]
            elif wrong := _reminder_default_problems(chosen):
                problems[key] = wrong
            else:
                clean[key] = chosen
            continue
        try:
            regimen = get_regimen(key)
        except NotFound:
            problems[key] = ["Not a regimen code of the catalog."]
            continue
        if not isinstance(chosen, dict) or not all(
            isinstance(option, str) for option in chosen.values()
        ):
            problems[key] = ["Must map setting names to option names."]
            continue
        try:
            regimen.resolve_settings(chosen)
        except ValidationFailed as exc:
            problems[key] = exc.errors.get("settings", exc.errors)
            continue
        clean[key] = dict(chosen)
    if problems:
        raise ValidationFailed("Invalid clinic settings", errors={"settings": problems})
    return clean


def _reminder_default_problems(defaults: dict[str, Any]) -> dict[str, list[str]]:
    """The values the reminder planner reads must be what it can compute with: a stored wrong
    value would fail every later schedule change of the clinic."""
    problems: dict[str, list[str]] = {}
    lead = defaults.get("dose_lead_days")
    if lead is not None and not (
        isinstance(lead, list) and 1 <= len(lead) <= MAX_LEAD_TIMES and all(map(_days, lead))
    ):
        problems["dose_lead_days"] = [
            f"1 to {MAX_LEAD_TIMES} whole numbers of days, 0 to {MAX_LEAD_DAYS}."
        ]
    for name in ("infection_checkin_days", "labs_lead_days"):
        if name in defaults and not _days(defaults[name]):
            problems[name] = [f"A whole number of days, 0 to {MAX_LEAD_DAYS}."]
    staff_time = defaults.get("staff_time")
    if staff_time is not None:
        try:
            naive = time.fromisoformat(staff_time).tzinfo is None
        except (TypeError, ValueError):
            naive = False
        if not naive:
            problems["staff_time"] = ["A time of day, HH:MM (the clinic's time zone)."]
    return problems


def _webhook_problems(webhook: Any, outbound: OutboundPolicy) -> dict[str, list[str]] | list[str]:
    if not isinstance(webhook, dict) or set(webhook) != {"url", "secret"}:
        return ["An object with exactly `url` and `secret`."]
    problems: dict[str, list[str]] = {}
    if refusal := webhook_url_refusal(webhook["url"], outbound):
        problems["url"] = [refusal.reason]
    secret = webhook["secret"]
    if not (isinstance(secret, str) and MIN_WEBHOOK_SECRET <= len(secret) <= 256):
        problems["secret"] = [f"{MIN_WEBHOOK_SECRET} to 256 characters."]
    return problems


def webhook_url_refusal(url: Any, outbound: OutboundPolicy) -> DestinationRefused | None:
    """Why the runner would not send to `url`, or None.

    A name that does not resolve (yet) or not in time is accepted here: the runner resolves
    and checks every address again before each send.
    """
    try:
        resolve(parse_target(url, outbound), outbound, timeout_s=WEBHOOK_RESOLVE_TIMEOUT_S)
    except DestinationRefused as refusal:
        if refusal.code in ("unresolvable", "timeout"):
            return None
        return refusal
    return None


def _keep_webhook_secret(wanted: Any, stored: dict[str, Any]) -> Any:
    """Responses show the secret masked; sending the mask back keeps the stored secret."""
    webhook = wanted.get(WEBHOOK_KEY) if isinstance(wanted, dict) else None
    if isinstance(webhook, dict) and webhook.get("secret") == SECRET_MASK:
        old = stored.get(WEBHOOK_KEY, {}).get("secret")
        return {**wanted, WEBHOOK_KEY: {**webhook, "secret": old}}
    return wanted


def public_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as shown to admins: the webhook secret masked."""
    if WEBHOOK_KEY not in settings:
        return settings
    return {**settings, WEBHOOK_KEY: {**settings[WEBHOOK_KEY], "secret": SECRET_MASK}}


def _days(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_LEAD_DAYS
