"""What the admin commands (``kiqpy periodic``, ``kiqpy queue``, ``kiqpy cancel``) share: the
``--redis-url`` and ``--namespace`` flags, and the configuration they make."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from kiqpy.config import Config

F = TypeVar("F", bound=Callable[..., Any])


def redis_options(command: F) -> F:
    """Add ``--redis-url`` (env KIQPY_REDIS_URL, REDIS_URL) and ``--namespace``."""
    command = click.option("--namespace", default="", envvar="KIQPY_NAMESPACE",
                           help="Key prefix.")(command)
    return click.option("--redis-url", envvar=["KIQPY_REDIS_URL", "REDIS_URL"],
                        help="Redis to use [env: KIQPY_REDIS_URL, REDIS_URL; default "
                             "localhost].")(command)


def config_for(redis_url: str | None, namespace: str) -> Config:
    """The configuration from the environment, with the flags applied."""
    overrides: dict[str, Any] = {"namespace": namespace}
    if redis_url:
        overrides["redis_url"] = redis_url
    return Config.from_env(**overrides)
