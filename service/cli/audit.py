"""`cd20 audit`: the trail's month partitions and a month's export (retention)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

COMMANDS: list[click.Command] = []


@click.group("audit")
def audit_group() -> None:
    """The audit trail: export a month, keep month partitions ahead (PostgreSQL)."""


@audit_group.command("export")
@click.option("--month", required=True, help="The UTC month, YYYY-MM.")
@click.option("--clinic", "clinic_id", type=int, help="Only this clinic's events.")
@click.option("--output", type=click.File("w"), default="-", help="A file (default stdout).")
def audit_export(month: str, clinic_id: int | None, output: click.utils.LazyFile) -> None:
    """Write a month's events as JSON lines, oldest first (then archive, then detach)."""
    from service.cli.database import command_settings, ensure_database
    from service.db import init_engine, unit_of_work
    from service.trust.audit_partitions import export_month

    try:
        first_day = datetime.strptime(month, "%Y-%m").date()
    except ValueError as exc:
        raise click.BadParameter("expected YYYY-MM, e.g. 2026-11", param_hint="--month") from exc
    settings = command_settings(embedded=False, needs_secret=False)
    ensure_database(settings)
    init_engine(settings.database_url)
    count = 0
    with unit_of_work() as session:
        for event in export_month(session, first_day, clinic_id=clinic_id):
            output.write(json.dumps(event, sort_keys=True) + "\n")
            count += 1
    click.echo(f"{count} audit events of {month} exported.", err=True)


@audit_group.command("partitions")
@click.option("--months-ahead", default=12, show_default=True, type=int)
def audit_partitions(months_ahead: int) -> None:
    """Create the coming months' partitions now (the runner also does, daily)."""
    from service.cli.database import command_settings, ensure_database
    from service.db import init_engine, unit_of_work
    from service.trust.audit_partitions import ensure_partitions

    settings = command_settings(embedded=False, needs_secret=False)
    ensure_database(settings)
    init_engine(settings.database_url)
    with unit_of_work() as session:
        made = ensure_partitions(session, months_ahead=months_ahead)
    click.echo(f"{made} month partitions created.")


@audit_group.command("flush-spool")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="The spool directory (default CD20_AUDIT_SPOOL_DIR).",
)
def audit_flush_spool(directory: Path | None) -> None:
    """Move into the trail the read events that stopped processes left in this host's spool.

    Running API processes do this themselves every few seconds; run it before retiring a host.
    Files a running process holds are left to it.
    """
    from service.cli.database import command_settings, ensure_database
    from service.db import init_engine
    from service.trust.audit_spool import AuditSpool

    settings = command_settings(embedded=False, needs_secret=False)
    if directory is None:
        if not settings.audit_spool_dir:
            raise click.UsageError("no spool directory: pass --dir or set CD20_AUDIT_SPOOL_DIR")
        directory = Path(settings.audit_spool_dir)
    if not directory.is_dir():
        raise click.ClickException(f"{directory} is not a directory")
    ensure_database(settings)
    init_engine(settings.database_url)
    spool = AuditSpool(directory, flush_interval_s=settings.audit_spool_flush_s)
    adopted = spool.adopt_orphans()
    click.echo(
        f"{adopted.events} audit events moved from {adopted.files} spool files;"
        f" {adopted.in_use} held by running processes left to them."
    )


COMMANDS.append(audit_group)
