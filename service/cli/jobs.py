"""`cd20 jobs run`: the reminder runner as its own process."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []


@click.group("jobs")
def jobs_group() -> None:
    """The reminder runner."""


@jobs_group.command("run")
@click.option("--batch-size", default=500, show_default=True, type=int)
@click.option("--every", default=2.0, show_default=True, type=float, help="Seconds between ticks.")
@click.option(
    "--lease",
    default=60.0,
    show_default=True,
    type=float,
    help="Seconds a claimed batch stays this runner's; after that, if it died, another takes it.",
)
def jobs_run(batch_size: int, every: float, lease: float) -> None:
    """Run the reminder runner until SIGTERM (start as many as you like on PostgreSQL)."""
    import logging
    from datetime import timedelta

    from jobs.channels import build_channels
    from jobs.channels.worklist import WorklistChannel
    from jobs.runner import Runner
    from jobs.scheduler import build_scheduler, run_until_stopped
    from service.cli.database import command_settings, ensure_database
    from service.db import init_engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # APScheduler logs every run of every job at INFO; the runner logs its own counts per tick.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    settings = command_settings(embedded=False, needs_secret=False)  # the runner signs nothing
    ensure_database(settings)
    init_engine(settings.database_url)
    channels = {**build_channels(settings), "worklist": WorklistChannel()}
    runner = Runner(settings, channels, batch_size=batch_size, lease=timedelta(seconds=lease))
    run_until_stopped(runner, build_scheduler(runner, dispatch_every=every))


COMMANDS.append(jobs_group)
