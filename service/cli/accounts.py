"""`cd20 clinic create` and `cd20 user create`: the operator's way to the first accounts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.accounts import users
from service.cli.database import command_settings, ensure_database
from service.clinics.settings import check_time_zone, create_clinic
from service.config import Settings
from service.db import init_engine, unit_of_work
from service.errors import DomainError
from service.vocabulary import STAFF_ROLES

ADMIN_PASSWORD_ENV = "CD20_ADMIN_PASSWORD"
# Its own variable: an exported admin password must never silently become a clinician's.
USER_PASSWORD_ENV = "CD20_USER_PASSWORD"


@contextmanager
def report_refusals() -> Iterator[None]:
    """Domain refusals and constraint clashes become a clear message and exit status 1."""
    try:
        yield
    except DomainError as exc:
        details = "; ".join(
            f"{field}: {' '.join(map(str, messages)) if isinstance(messages, list) else messages}"
            for field, messages in exc.errors.items()
        )
        raise click.ClickException(f"{exc.detail}" + (f" ({details})" if details else "")) from exc
    except IntegrityError as exc:
        raise click.ClickException("Conflicts with data already stored.") from exc


@contextmanager
def _session() -> Iterator[tuple[Session, Settings]]:
    settings = command_settings()
    ensure_database(settings)
    init_engine(settings.database_url)
    with report_refusals(), unit_of_work() as session:
        yield session, settings


def _password(env_name: str) -> str:
    password = os.environ.get(env_name)
    if password:
        return password
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@click.group("clinic")
def clinic_group() -> None:
    """Clinics."""


@clinic_group.command("create")
@click.argument("name")
@click.option("--time-zone", required=True, help="IANA time zone, e.g. Europe/Berlin.")
@click.option("--admin-email", required=True, help="Login of the clinic's first admin.")
def create_clinic_command(name: str, time_zone: str, admin_email: str) -> None:
    """Create a clinic and its first admin.

    The admin's password comes from CD20_ADMIN_PASSWORD, or is asked for.
    """
    with report_refusals():  # checked before asking for a password
        check_time_zone(time_zone)
        users.normalise_email(admin_email)
    password = _password(ADMIN_PASSWORD_ENV)
    with _session() as (session, settings):
        clinic, admin = create_clinic(
            session,
            settings,
            name=name,
            time_zone=time_zone,
            admin_email=admin_email,
            admin_password=password,
        )
    click.echo(f"clinic {clinic.id} created: {clinic.name} ({clinic.time_zone})")
    click.echo(f"admin user {admin.id} created: {admin.email}")


@click.group("user")
def user_group() -> None:
    """Staff accounts."""


@user_group.command("create")
@click.option("--clinic", "clinic_id", required=True, type=int, help="The clinic's id.")
@click.option("--role", required=True, type=click.Choice(STAFF_ROLES))
@click.option("--email", required=True, help="The login.")
def create_user_command(clinic_id: int, role: str, email: str) -> None:
    """Create a staff account in a clinic.

    The password comes from CD20_USER_PASSWORD, or is asked for.
    """
    with report_refusals():
        users.normalise_email(email)
    password = _password(USER_PASSWORD_ENV)
    with _session() as (session, settings):
        user = users.create_user_in_clinic(
            session, settings, clinic_id=clinic_id, email=email, role=role, password=password
        )
    click.echo(f"{role} user {user.id} created in clinic {clinic_id}: {user.email}")


COMMANDS = [clinic_group, user_group]
