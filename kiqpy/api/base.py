"""What every object of the data API (:mod:`kiqpy.api`) shares: its configuration, its Redis
client and key names, a page of results, and small conversions.

Never imported by the worker (the import contract in pyproject.toml): only dashboards, tools
and scripts.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import redis

from kiqpy.client.push import default_client
from kiqpy.config import Config, default_config
from kiqpy.connection import connect, translate_errors
from kiqpy.keys import Keys
from kiqpy.scripts import Scripts

T = TypeVar("T")
R = TypeVar("R")
# What one read of read_gradually aims at: entries enough for about this many bytes.
GRADUAL_BYTES = 512 * 1024


class ApiObject:
    """Holds ``config`` (default: :func:`kiqpy.default_config`), ``redis`` and ``keys``.

    Without ``redis_client`` the default configuration shares the default client's pool;
    another configuration opens a pool of its own. Pass ``redis_client`` to share one pool
    between many API objects (a dashboard builds several per request). The client must return
    bytes (redis-py's default), since payloads are binary msgpack.
    """

    def __init__(self, config: Config | None = None,
                 redis_client: redis.Redis | None = None) -> None:
        self.config = config if config is not None else default_config()
        self.redis = redis_client if redis_client is not None else _client_for(self.config)
        self.keys = Keys(self.config.namespace, self.config.on_cluster)
        self._scripts: Scripts | None = None

    @property
    def scripts(self) -> Scripts:
        """The registered Lua scripts (registration is local; scripts load on first use)."""
        if self._scripts is None:
            self._scripts = Scripts(self.redis)
        return self._scripts

    @contextmanager
    def io(self) -> Iterator[None]:
        """Redis calls whose failure the user sees: an unreachable Redis reads as
        :class:`kiqpy.RedisUnavailableError` naming the URL."""
        with translate_errors(self.redis):
            yield


def _client_for(config: Config) -> redis.Redis:
    if config is default_config():
        return default_client().redis
    return connect(config.redis_url, config.pool_size or 10, config.socket_timeout,
                   config.sentinel_auth)


@dataclass
class Page(Generic[T]):
    """One page of a listing: ``entries`` and the ``total`` size of the listing when it was
    read. ``number`` counts from 1."""

    entries: list[T]
    total: int
    number: int
    size: int
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        self.pages = max(1, math.ceil(self.total / self.size))

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    def __iter__(self) -> Iterator[T]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def check_page(number: int, size: int) -> None:
    """Refuse page numbers below 1 and sizes below 1 (a clear error, not an odd range)."""
    if type(number) is not int or number < 1:
        raise ValueError(f"page numbers start at 1, got {number!r}")
    if type(size) is not int or size < 1:
        raise ValueError(f"a page size must be at least 1, got {size!r}")


def text(value: bytes | str) -> str:
    """A Redis reply as text (bytes that are not UTF-8 are shown with replacement chars)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def to_datetime(seconds: float | None) -> _dt.datetime | None:
    """Epoch seconds as an aware UTC datetime (None stays None; absurd values give None)."""
    if seconds is None:
        return None
    try:
        return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def to_epoch(at: float | int | _dt.datetime | _dt.timedelta) -> float:
    """A moment as epoch seconds: a datetime (naive means local time, as in Python), epoch
    seconds, or a timedelta from now."""
    if isinstance(at, _dt.datetime):
        return at.timestamp()
    if isinstance(at, _dt.timedelta):
        return time.time() + at.total_seconds()
    if isinstance(at, (int, float)) and not isinstance(at, bool):
        return float(at)
    raise TypeError(f"expected a datetime, a timedelta or epoch seconds, got {at!r}")


def glob_escape(substring: str) -> str:
    """``substring`` with Redis glob specials escaped, for SCAN/ZSCAN ``MATCH``."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in substring)


def read_gradually(read: Callable[[int, int], list[R]], first: int, count: int,
                   size_of: Callable[[R], int], keep: Callable[[R], T]) -> list[T]:
    """Rows ``first`` to ``first + count - 1`` through ``read(start, stop)`` (inclusive), a
    few at a time, each turned into what the caller keeps (``keep``) as it arrives.

    One at first, then doubled while the biggest row seen keeps a read under
    :data:`GRADUAL_BYTES` (512 KiB), one at a time once rows are bigger: so one Redis command
    copies about 512 KiB or one row, and the caller holds about that much raw data at once (a
    page of 25 jobs of 20 MB each is never 500 MB in memory). The reads are not one snapshot:
    rows moved meanwhile may shift the page by a few.
    """
    kept: list[T] = []
    at, end, batch, biggest = first, first + count, 1, 0
    while at < end:
        wanted = min(batch, end - at)
        rows = read(at, at + wanted - 1)
        for row in rows:
            biggest = max(biggest, size_of(row))
            kept.append(keep(row))
        at += len(rows)
        if len(rows) < wanted:
            break
        batch = max(1, min(count, batch * 2, GRADUAL_BYTES // max(1, biggest)))
    return kept
