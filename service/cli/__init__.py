"""The `cd20` command line: a Flask CLI group over create_app."""

from __future__ import annotations

import click
from flask.cli import FlaskGroup

from service.cli.database import db_group, serve


def _create_app():  # type: ignore[no-untyped-def]
    from service.app import create_app
    from service.config import Settings

    return create_app(Settings.from_env(embedded=True))


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
def cli() -> None:
    """cd20-monitor: anti-CD20 treatment plans, screening, schedules and reminders."""


cli.add_command(serve)
cli.add_command(db_group)

for _module in ("accounts", "jobs", "demo", "audit"):
    try:
        _commands = __import__(f"service.cli.{_module}", fromlist=["COMMANDS"]).COMMANDS
    except ModuleNotFoundError as exc:
        if exc.name != f"service.cli.{_module}":
            raise
        continue
    for _command in _commands:
        cli.add_command(_command)
