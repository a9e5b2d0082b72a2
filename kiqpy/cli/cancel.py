"""``kiqpy cancel JID``: cancel a job wherever it is (:func:`kiqpy.api.cancel`)."""

from __future__ import annotations

from typing import Any

import click

from kiqpy.config import Config
from kiqpy.errors import KiqpyError


@click.command("cancel")
@click.argument("jid")
@click.option("--redis-url", envvar=["KIQPY_REDIS_URL", "REDIS_URL"],
              help="Redis to use [env: KIQPY_REDIS_URL, REDIS_URL; default localhost].")
@click.option("--namespace", default="", envvar="KIQPY_NAMESPACE", help="Key prefix.")
def cancel(jid: str, redis_url: str | None, namespace: str) -> None:
    """Cancel the job JID: removed if it waits (queue, schedule, retries); told to stop if it
    runs. Exits 1 when no such job is waiting or running."""
    from kiqpy.api import cancel as cancel_job

    overrides: dict[str, Any] = {"namespace": namespace}
    if redis_url:
        overrides["redis_url"] = redis_url
    try:
        result = cancel_job(jid, Config.from_env(**overrides))
    except KiqpyError as exc:
        raise click.ClickException(str(exc)) from exc
    if not result.found:
        raise click.ClickException(str(result))
    click.echo(str(result))
