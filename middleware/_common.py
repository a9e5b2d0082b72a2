"""What the bundled middleware modules share: the kiqpy client they reach Redis through, and
the translation of "Redis is not there" errors. Private to ``kiqpy_middleware``; built only on
kiqpy's public API (duration options use ``kiqpy.client.options.seconds``, the validator kiqpy's own
``retry_for`` uses, next to ``declare_option``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from redis.exceptions import ConnectionError as _RedisConnectionError
from redis.exceptions import TimeoutError as _RedisTimeoutError

import kiqpy


class Connection:
    """The :class:`kiqpy.Client` a middleware reaches Redis through (its ``redis``, ``keys``
    and ``scripts``): one built on first use for ``config``, or, when ``config`` is None, the
    default client at the time of each call, so a later ``kiqpy.configure(...)`` (the CLI
    calls it when a worker starts) is followed."""

    def __init__(self, config: kiqpy.Config | None) -> None:
        self.config = config
        self._client: kiqpy.Client | None = None
        self._lock = threading.Lock()

    def client(self) -> kiqpy.Client:
        if self.config is None:
            return kiqpy.default_client()
        client = self._client
        if client is None:
            with self._lock:  # processor threads may all arrive with the first jobs
                if self._client is None:
                    self._client = kiqpy.Client(self.config)
                client = self._client
        return client


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Raise :class:`kiqpy.RedisUnavailableError` when Redis cannot be reached, as kiqpy's own
    client does, so callers of ``perform_async`` catch one error whatever middleware runs."""
    try:
        yield
    except (_RedisConnectionError, _RedisTimeoutError, OSError) as exc:
        raise kiqpy.RedisUnavailableError(f"cannot reach Redis to {what}: {exc}") from exc
