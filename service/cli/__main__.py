"""`python -m service.cli` is `cd20` (how `cd20 serve` starts its runner process)."""

from __future__ import annotations

from service.cli import cli

cli()
