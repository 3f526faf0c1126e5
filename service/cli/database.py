"""`cd20 db upgrade|current` and `cd20 serve`."""

from __future__ import annotations

import gc
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import click

from service.config import ConfigurationError, Settings
from service.migrations import current_revision, head_revision, upgrade_database


def command_settings(*, embedded: bool = True, needs_secret: bool = True) -> Settings:
    """The settings a `cd20` command runs with (the embedded default keeps its key beside a
    SQLite database); unusable settings end the command with the reason, not a traceback."""
    try:
        settings = Settings.from_env(embedded=embedded)
        settings.check(needs_secret=needs_secret)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    return settings


def ensure_database(settings: Settings) -> None:
    """Create and migrate the database if it is not at the newest revision."""
    url = settings.database_url
    if current_revision(url) != head_revision(url):
        click.echo(f"Migrating the database at {_safe(url)} ...", err=True)
        upgrade_database(url)
        click.echo("Database is up to date.", err=True)


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@click.group("db")
def db_group() -> None:
    """Database migrations."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create the database or migrate it to a revision."""
    settings = command_settings(embedded=False, needs_secret=False)
    upgrade_database(settings.database_url, revision)
    revision_now = current_revision(settings.database_url)
    click.echo(f"Database at {_safe(settings.database_url)} is at {revision_now}.")


@db_group.command("current")
def db_current() -> None:
    """Show the database's revision and the newest one."""
    settings = command_settings(embedded=False, needs_secret=False)
    current = current_revision(settings.database_url)
    head = head_revision(settings.database_url)
    state = "up to date" if current == head else "needs `cd20 db upgrade`"
    click.echo(f"current: {current or '(empty database)'}\nhead:    {head}\n{state}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int, help="Web worker threads.")
@click.option("--no-runner", is_flag=True, help="Serve the API only (run `cd20 jobs run` apart).")
def serve(host: str, port: int, threads: int, no_runner: bool) -> None:
    """Run the API and one reminder runner (creates and migrates the database first)."""
    import waitress

    from service.app import create_app
    from service.cli.supervise import RunnerProcess

    settings = command_settings()
    ensure_database(settings)
    app = create_app(settings)
    gc.freeze()  # as wsgi.py does: what the app built at start is not walked by every full pass
    # One runner process beside the web threads, never one per worker.
    runner = None if no_runner else RunnerProcess()
    if runner is not None:
        runner.start()
    click.echo(
        f"cd20-monitor API on http://{host}:{port}/api/v1 (docs: http://{host}:{port}/docs; "
        f"staff console: http://{host}:{port}/console/)"
    )
    try:
        with _stop_on_sigterm():
            waitress.serve(app, host=host, port=port, threads=threads, ident="cd20-monitor")
    finally:
        if runner is not None:
            runner.stop()


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    except KeyboardInterrupt:
        click.echo("stopping", err=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
