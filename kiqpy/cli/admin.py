"""What the admin commands that change things (``kiqpy retry``, ``kill``, ``delete``, ``clear``,
``process``, ``enqueue``) share: ``--json`` and ``--yes``, the confirmation asked before a
destructive change, one Redis client per command, and Redis errors as a one-line error.

A destructive command asks ``Continue? [y/N]`` on a terminal. Without a terminal (a script, a
pipe, cron) there is nobody to ask, so it refuses with a usage error (exit 2) unless ``--yes``
was given: a script never hangs on a prompt, and never deletes by accident.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import redis

from kiqpy.config import Config
from kiqpy.connection import connect
from kiqpy.errors import KiqpyError

F = TypeVar("F", bound=Callable[..., Any])


def json_option(command: F) -> F:
    """Add ``--json`` (as ``as_json``)."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON (for scripts) instead of text.")(command)


def yes_option(command: F) -> F:
    """Add ``-y/--yes``: skip the confirmation (needed without a terminal)."""
    return click.option("-y", "--yes", is_flag=True,
                        help="Do it without asking (required when stdin is not a terminal)."
                        )(command)


def confirm(what: str, yes: bool) -> None:
    """Ask before ``what`` (``"delete 3 jobs from the retry set"``) unless ``yes``; a
    usage error without a terminal, an abort (exit 1) on anything but y/yes."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"refusing to {what} without confirmation: stdin is not a "
                               f"terminal; pass --yes to do it anyway")
    click.confirm(f"{what[0].upper()}{what[1:]}. Continue?", abort=True, err=True)


@contextmanager
def redis_for(config: Config) -> Iterator[redis.Redis]:
    """One client for the whole command (the API objects share its pool), closed at the end;
    kiqpy errors (an unreachable Redis) become ``Error: ...`` and exit 1."""
    client = connect(config.redis_url, 2, config.socket_timeout, config.sentinel_auth)
    try:
        yield client
    except KiqpyError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        client.connection_pool.disconnect()


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
