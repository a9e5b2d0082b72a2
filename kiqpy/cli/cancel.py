"""``kiqpy cancel JID``: cancel a job wherever it is (:func:`kiqpy.api.cancel`)."""

from __future__ import annotations

import click

from kiqpy.cli.target import config_for, redis_options
from kiqpy.errors import KiqpyError


@click.command("cancel")
@click.argument("jid")
@redis_options
def cancel(jid: str, redis_url: str | None, namespace: str) -> None:
    """Cancel the job JID: removed if it waits (queue, schedule, retries); told to stop if it
    runs. Exits 1 when no such job is waiting or running."""
    from kiqpy.api import cancel as cancel_job

    try:
        result = cancel_job(jid, config_for(redis_url, namespace))
    except KiqpyError as exc:
        raise click.ClickException(str(exc)) from exc
    if not result.found:
        raise click.ClickException(str(result))
    click.echo(str(result))
