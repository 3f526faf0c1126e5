"""Clinic administration: settings (time zone, reminder defaults, webhook), staff, audit trail."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import render_template, request, url_for

from service.accounts.users import create_staff_user, get_user, list_users, update_user
from service.clinics.settings import (
    SECRET_MASK,
    get_clinic_for_admin,
    public_settings,
    update_clinic,
)
from service.console.blueprint import bp
from service.console.context import actor, audit_page, db, settings, signed_in, zone
from service.console.forms import Form
from service.console.views.common import attempt, done, posted
from service.errors import DomainError, ValidationFailed
from service.models import Clinic
from service.models.clinic import REMINDERS_KEY, WEBHOOK_KEY
from service.trust.audit import list_events
from service.vocabulary import STAFF_ROLES

AUDIT_PAGE_SIZE = 100
OUTCOMES = ("success", "denied", "failed", "error")
ACTIONS = ("read", "create", "update", "delete", "execute")


def _version(clinic: Clinic) -> str:
    """What the settings form was rendered from (the clinic row has no version column)."""
    state = json.dumps([clinic.time_zone, clinic.settings], sort_keys=True, default=str)
    return hashlib.sha256(state.encode()).hexdigest()[:16]


def render_clinic(*, refusal: DomainError | None = None, form: dict[str, Any] | None = None) -> Any:
    clinic = get_clinic_for_admin(db(), actor())
    staff = list_users(db(), actor(), page=1, page_size=200).items
    audit_page("clinic", clinic.id)
    shown = public_settings(clinic.settings or {})
    page = render_template(
        "console/clinic.html",
        clinic=clinic,
        reminders=shown.get(REMINDERS_KEY, {}),
        webhook=shown.get(WEBHOOK_KEY),
        version=_version(clinic),
        staff=staff,
        roles=STAFF_ROLES,
        account_states=ACCOUNT_STATES,
        refusal=refusal,
        form=form or {},
    )
    return page, refusal.status if refusal else 200


@bp.get("/clinic")
@signed_in
def clinic() -> Any:
    return render_clinic()


def _lead_days(form: Form) -> list[int] | None:
    text = form.text("dose_lead_days")
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        form.problems.setdefault("dose_lead_days", []).append("Whole numbers, comma-separated.")
        return None


@bp.post("/clinic/settings")
@signed_in
def clinic_settings() -> Any:
    def change() -> None:
        clinic = get_clinic_for_admin(db(), actor())
        form = Form()
        if form.data.get("version") != _version(clinic):
            form.check_version(-1)
        time_zone = form.text("time_zone", required=True, max_length=64)
        reminders: dict[str, Any] = dict((clinic.settings or {}).get(REMINDERS_KEY, {}))
        for name, value in (
            ("dose_lead_days", _lead_days(form)),
            ("infection_checkin_days", form.integer("infection_checkin_days")),
            ("labs_lead_days", form.integer("labs_lead_days")),
            ("staff_time", form.text("staff_time")),
        ):
            if value is None:
                reminders.pop(name, None)
            else:
                reminders[name] = value
        url = form.text("webhook_url", max_length=2000)
        secret = form.text("webhook_secret", max_length=256)
        form.check()
        wanted = {
            k: v
            for k, v in (clinic.settings or {}).items()
            if k not in (REMINDERS_KEY, WEBHOOK_KEY)
        }
        if reminders:
            wanted[REMINDERS_KEY] = reminders
        if url is not None:
            wanted[WEBHOOK_KEY] = {"url": url, "secret": secret or SECRET_MASK}
        update_clinic(db(), actor(), clinic, {"time_zone": time_zone, "settings": wanted})

    audit_page("clinic", actor().clinic_id)
    refusal = attempt(change)
    if refusal is not None:
        return render_clinic(refusal=refusal, form=posted("settings"))
    return done("Clinic settings saved.", url_for("console.clinic"))


@bp.post("/clinic/users")
@signed_in
def add_staff_user() -> Any:
    """An admin adds a staff account (the API's password policy and its refusals)."""
    audit_page("user", None)

    def change() -> None:
        form = Form()
        email = form.text("email", required=True, max_length=254)
        role = form.choice("role", STAFF_ROLES)
        password = form.text("password", required=True, max_length=256)
        form.check()
        assert email is not None
        assert role is not None
        assert password is not None
        create_staff_user(db(), actor(), settings(), email=email, role=role, password=password)

    refusal = attempt(change)
    if refusal is not None:
        form = posted("user")
        form["values"].pop("password", None)  # a password is never sent back into a page
        return render_clinic(refusal=refusal, form=form)
    return done("Staff account added.", url_for("console.clinic"))


ACCOUNT_STATES = ("active", "inactive")


@bp.post("/clinic/users/<int:user_id>")
@signed_in
def change_staff_user(user_id: int) -> Any:
    """Activate, deactivate or change the role of an account: PATCH /users/{id}'s use case."""
    user = get_user(db(), actor(), user_id)
    audit_page("user", user_id)

    def change() -> None:
        form = Form()
        # Every change of role or status moves the account's token generation: the version.
        form.check_version(user.token_generation)
        changes: dict[str, Any] = {}
        if "role" in form.data:
            changes["role"] = form.choice("role", STAFF_ROLES)
        state = form.choice("state", ACCOUNT_STATES)
        form.check()
        changes["is_active"] = state == "active"
        update_user(db(), actor(), user, changes)

    refusal = attempt(change)
    if refusal is not None:
        return render_clinic(refusal=refusal, form=posted(f"account-{user_id}"))
    state = "active" if user.is_active else "inactive"
    return done(f"{user.email}: {user.role}, {state}.", url_for("console.clinic"))


def _moment(form_value: str | None, *, end: bool) -> datetime | None:
    """A day from the filter, as the start (or the end) of that day in the clinic's zone."""
    if not form_value:
        return None
    day = date.fromisoformat(form_value) + (timedelta(days=1) if end else timedelta())
    return datetime.combine(day, time(0, 0), tzinfo=zone())


@bp.get("/audit")
@signed_in
def audit_trail() -> Any:
    args = request.args
    problems: dict[str, list[str]] = {}
    filters: dict[str, Any] = {}
    for name in ("patient_id", "actor_id"):
        if args.get(name):
            try:
                filters[name] = int(args[name])
            except ValueError:
                problems[name] = ["Not a valid integer."]
    for name, end in (("since", False), ("until", True)):
        try:
            filters[name] = _moment(args.get(name), end=end)
        except ValueError:
            problems[name] = ["Not a valid date (YYYY-MM-DD)."]
    if args.get("action") in ACTIONS:
        filters["action"] = args["action"]
    if args.get("outcome") in OUTCOMES:
        filters["outcome"] = args["outcome"]
    refusal = None
    if problems:
        refusal = ValidationFailed(errors=problems)
        filters = {}
    events = list_events(db(), actor(), page=1, page_size=AUDIT_PAGE_SIZE, **filters)
    audit_page("audit", None)
    page = render_template(
        "console/audit.html",
        events=events,
        args=args,
        actions=ACTIONS,
        outcomes=OUTCOMES,
        refusal=refusal,
    )
    return page, refusal.status if refusal else 200
