"""`cd20 demo`: a demo clinic with staff and patients on every regimen."""

from __future__ import annotations

import os
from datetime import datetime
from zoneinfo import ZoneInfo

import click

from service.cli.accounts import report_refusals
from service.cli.database import command_settings, ensure_database
from service.db import init_engine, unit_of_work

DEMO_PASSWORD_ENV = "CD20_DEMO_PASSWORD"
DEFAULT_DEMO_PASSWORD = "cd20-demo-password"

COMMANDS: list[click.Command] = []


@click.command("demo")
def demo() -> None:
    """Create a demo clinic, staff and patients on every regimen; print the logins."""
    from service.clinics.demo import CLINIC_ZONE, seed_demo

    settings = command_settings()
    if settings.environment == "production":
        raise click.ClickException("cd20 demo refuses to run with CD20_ENV=production")
    password = os.environ.get(DEMO_PASSWORD_ENV, DEFAULT_DEMO_PASSWORD)
    ensure_database(settings)
    init_engine(settings.database_url)
    today = datetime.now(ZoneInfo(CLINIC_ZONE)).date()
    with report_refusals(), unit_of_work() as session:
        result = seed_demo(session, settings, password=password, today=today)
    verb = "Created" if result.created else "Found"
    click.echo(
        f"{verb} the demo clinic (id {result.clinic_id}). Password for every login: {password}"
    )
    for role, email, sees in result.logins:
        click.echo(f"  {role:<9} {email:<34} {sees}")


COMMANDS.append(demo)
