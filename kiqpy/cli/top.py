"""``kiqpy top``: the live terminal UI (kiqpy/cli/tui.py), if Textual is installed
(``pip install 'kiqpy[tui]'``)."""

from __future__ import annotations

import importlib.util

import click

from kiqpy.cli.target import config_for, redis_options
from kiqpy.errors import KiqpyError

INSTALL_HINT = "kiqpy top needs Textual, which the 'tui' extra installs: pip install 'kiqpy[tui]'"


@click.command("top")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between refreshes.")
@redis_options
def top(interval: float, redis_url: str | None, namespace: str) -> None:
    """A live view of counters, processes, queues, busy jobs and the retry and dead sets,
    with keys to quiet or stop a process and to retry or kill an entry (like Sidekiq's kiq)."""
    if importlib.util.find_spec("textual") is None:
        raise click.ClickException(INSTALL_HINT)
    from kiqpy.cli.tui import TopApp

    try:
        config = config_for(redis_url, namespace)
    except KiqpyError as exc:
        raise click.UsageError(str(exc)) from exc
    TopApp(config, refresh_seconds=interval).run()
