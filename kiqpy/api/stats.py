"""The numbers on a dashboard: :class:`Stats` (counters and sizes, now) and :class:`History`
(processed and failed per day).

    stats = Stats()
    print(stats.processed, stats.failed, stats.enqueued, stats.queues)
    History(7).processed        # {date(2026, 11, 23): 1200, date(2026, 11, 22): 980, ...}
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, NamedTuple

import redis

from kiqpy.api.base import ApiObject, text
from kiqpy.api.jobs import JobRecord
from kiqpy.config import Config

COUNTERS = ("processed", "failed")
MAX_HISTORY_DAYS = 5 * 366  # the daily counters expire after 5 years


class Problem(NamedTuple):
    """A value that is not what kiqpy writes there: its ``key`` and what is wrong with it. It
    counts as 0 (or is left out) instead of failing the read; show it, so it can be deleted."""

    key: str
    message: str


def count(raw: Any) -> int | None:
    """A stored counter as an int; None when it is not a whole number ("abc", b"1.5")."""
    if raw is None:
        return 0
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def shown(raw: Any) -> str:
    """A stored value for a message: text, cut to 60 characters."""
    value = text(raw) if isinstance(raw, (bytes, str)) else str(raw)
    return repr(value if len(value) <= 60 else value[:60] + "…")


class Stats(ApiObject):
    """A snapshot of the counters and sizes, read when built (``refresh()`` reads again) in two
    round trips: the counters, set sizes and names first, then each queue's size and each
    process's busy count.

    ``processed``/``failed``: jobs since the counters were last reset. ``enqueued``: jobs in
    all queues. ``processes_size``: live processes (their heartbeat has not expired);
    ``workers_size``: jobs they are running. ``default_queue_latency``: seconds since the
    oldest job of the ``default`` queue was queued. ``queues``: name -> size, biggest first.
    ``problems``: values that are not what kiqpy writes (a counter that is not a number, a
    queue that is not a list), counted as 0 and listed as :class:`Problem` so they can be shown
    and deleted; one odd value never fails the read.

    ``queue_limit`` bounds the work when there are very many queues (a dashboard reads this on
    every page): beyond that many names, only ``queue_limit`` of them (SSCAN order) are sized,
    ``queues`` and ``enqueued`` cover those, and ``queues_complete`` is False.
    """

    def __init__(self, config: Config | None = None,
                 redis_client: redis.Redis | None = None,
                 queue_limit: int | None = None) -> None:
        super().__init__(config, redis_client)
        self.queue_limit = queue_limit
        self.refresh()

    def refresh(self) -> None:
        """Read everything again."""
        keys = self.keys
        self.problems: list[Problem] = []
        pipe = self.redis.pipeline(transaction=False)
        # MGET by name: redis-py's cluster pipeline refuses .mget(), though these keys share
        # one slot on Cluster (keys.py).
        pipe.execute_command("MGET", *[keys.stat(name) for name in COUNTERS])
        for key in (keys.schedule, keys.retry, keys.dead):
            pipe.zcard(key)
        pipe.smembers(keys.processes)
        if self.queue_limit is None:
            pipe.smembers(keys.queues)
        else:
            pipe.scard(keys.queues)
        pipe.lindex(keys.queue("default"), -1)
        with self.io():
            replies = pipe.execute(raise_on_error=False)
        counters, scheduled, retries, dead, processes, queues, oldest = (
            None if isinstance(reply, redis.ResponseError) else reply for reply in replies)
        processed, failed = counters or (None, None)
        self.processed = self._count(keys.stat("processed"), processed, "is not a number")
        self.failed = self._count(keys.stat("failed"), failed, "is not a number")
        self.scheduled_size, self.retry_size, self.dead_size = (
            int(size or 0) for size in (scheduled, retries, dead))
        self.default_queue_latency = 0.0 if not oldest else JobRecord(oldest).latency
        self.queues_complete = True
        if isinstance(queues, int):
            queues = self._queue_names(queues)
        self._read_sizes(sorted(text(q) for q in queues or ()),
                         [text(p) for p in processes or ()])

    def _queue_names(self, total: int) -> list[Any]:
        """All queue names, or ``queue_limit`` of them when there are more."""
        limit = self.queue_limit or total
        with self.io():
            if total <= limit:
                return list(self.redis.smembers(self.keys.queues))
            self.queues_complete = False
            names: set[Any] = set()
            cursor = 0
            while True:
                cursor, batch = self.redis.sscan(self.keys.queues, cursor, count=1000)
                names.update(batch)
                if cursor == 0 or len(names) >= limit:
                    return sorted(names)[:limit]

    def _count(self, key: str, raw: Any, what: str) -> int:
        number = count(raw)
        if number is None:
            self.problems.append(Problem(key, f"holds {shown(raw)}, which {what}"))
        return number or 0

    def _read_sizes(self, queues: list[str], processes: list[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for name in queues:
            pipe.llen(self.keys.queue(name))
        for identity in processes:
            pipe.hget(self.keys.process(identity), "busy")
        with self.io():
            results = pipe.execute(raise_on_error=False)
        sizes: list[int] = []
        for name, size in zip(queues, results[: len(queues)], strict=True):
            if isinstance(size, redis.ResponseError):
                self.problems.append(Problem(self.keys.queue(name),
                                             "is not a list, so it holds no jobs"))
            sizes.append(size if isinstance(size, int) else 0)
        self.queues: dict[str, int] = dict(sorted(zip(queues, sizes, strict=True),
                                                  key=lambda pair: (-pair[1], pair[0])))
        self.enqueued = sum(self.queues.values())
        alive = [self._count(self.keys.process(identity), busy, "is not a busy count")
                 for identity, busy in zip(processes, results[len(queues):], strict=True)
                 if busy is not None and not isinstance(busy, redis.ResponseError)]
        self.processes_size, self.workers_size = len(alive), sum(alive)

    def reset(self, *names: str) -> None:
        """Set counters to 0: ``reset()`` both, ``reset("failed")`` one. Daily counters (the
        history) are kept."""
        names = names or COUNTERS
        unknown = [n for n in names if n not in COUNTERS]
        if unknown:
            raise ValueError(f"unknown counter {unknown[0]!r}; use {' or '.join(COUNTERS)}")
        with self.io():
            self.redis.mset({self.keys.stat(name): 0 for name in names})
        self.refresh()

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as JSON-ready values (``kiqpy stats --json``, the dashboard)."""
        return {
            "processed": self.processed, "failed": self.failed, "enqueued": self.enqueued,
            "scheduled_size": self.scheduled_size, "retry_size": self.retry_size,
            "dead_size": self.dead_size, "processes_size": self.processes_size,
            "workers_size": self.workers_size,
            "default_queue_latency": round(self.default_queue_latency, 3),
            "queues": dict(self.queues),
        }


class History(ApiObject):
    """Processed and failed jobs per day (UTC), for ``days`` days ending at ``start_date``
    (default today), newest first: ``processed`` and ``failed`` map each date to a count.
    A day whose counter is not a number counts 0 and is listed in ``problems``."""

    def __init__(self, days: int = 30, start_date: _dt.date | None = None,
                 config: Config | None = None, redis_client: redis.Redis | None = None) -> None:
        if type(days) is not int or not 1 <= days <= MAX_HISTORY_DAYS:
            raise ValueError(f"days must be from 1 to {MAX_HISTORY_DAYS}, got {days!r}")
        super().__init__(config, redis_client)
        self.days = days
        self.start_date = start_date or _dt.datetime.now(_dt.timezone.utc).date()
        dates = [self.start_date - _dt.timedelta(days=n) for n in range(days)]
        pipe = self.redis.pipeline(transaction=False)
        for name in COUNTERS:
            pipe.execute_command("MGET", *[self.keys.stat(name, day) for day in dates])
        with self.io():
            processed, failed = pipe.execute()
        self.problems: list[Problem] = []
        self.processed = self._by_date(dates, processed, "processed")
        self.failed = self._by_date(dates, failed, "failed")

    def to_dict(self) -> dict[str, dict[str, int]]:
        """``{"processed": {"2026-11-23": 1200, ...}, "failed": {...}}``."""
        return {"processed": {d.isoformat(): n for d, n in self.processed.items()},
                "failed": {d.isoformat(): n for d, n in self.failed.items()}}


    def _by_date(self, dates: list[_dt.date], values: list[Any], name: str
                 ) -> dict[_dt.date, int]:
        """Counts by day; a day whose counter is not a number counts 0 and is a problem."""
        days: dict[_dt.date, int] = {}
        for day, value in zip(dates, values, strict=True):
            number = count(value)
            if number is None:
                self.problems.append(Problem(self.keys.stat(name, day),
                                             f"holds {shown(value)}, which is not a number"))
            days[day] = number or 0
        return days
