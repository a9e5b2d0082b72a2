"""Execution metrics: per job class and per minute, how many jobs ran, how many failed, their
total time and a histogram of durations. Counted in memory on the job's path (no Redis command
per job) and written by the heartbeat in one round trip per beat.

The histogram's buckets are in :mod:`kiqpy.histogram`.

Stored as one hash per minute, ``kiqpy:metrics:<epoch minute>``, with fields
``<class>|p`` (executions), ``<class>|f`` (failures), ``<class>|ms`` (total milliseconds) and
``<class>|h<i>`` (bucket ``i``, only the non-empty ones), each key expiring after
``Config.metrics_retention`` (72 h). One key per command, so it works on Redis Cluster too.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left as _bisect
from typing import Any

import redis

from kiqpy.config import Config
from kiqpy.connection import REDIS_DOWN
from kiqpy.histogram import BUCKETS_MS, SIZE
from kiqpy.keys import Keys

# (class, epoch minute) -> [executions, failures, total ms, bucket counts...]
Counts = dict[tuple[str, int], list[float]]


class Recorder:
    """One processor thread's counts since the last flush. :meth:`record` is the only thing on
    the job's path: a clock read, a dict lookup and a few additions under an uncontended
    lock (the heartbeat takes it once per beat to swap the dict). The rows of the current
    minute are kept keyed by class alone, so a record builds no tuple and divides nothing
    until the minute turns."""

    __slots__ = ("_counts", "_lock", "_minute", "_minute_ends", "_rows")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counts = {}
        self._minute = 0
        self._minute_ends = 0.0
        self._rows: dict[str, list[float]] = {}  # this minute's rows, also in _counts

    def record(self, job_class: str, seconds: float, failed: bool) -> None:
        ms = seconds * 1000.0
        now = time.time()
        with self._lock:
            if now >= self._minute_ends or now < self._minute_ends - 60.0:  # turned (or clock)
                self._minute = int(now) // 60
                self._minute_ends = (self._minute + 1) * 60.0
                self._rows = {}
            row = self._rows.get(job_class)
            if row is None:
                row = self._counts.get((job_class, self._minute))
                if row is None:
                    row = self._counts[(job_class, self._minute)] = [0.0] * (3 + SIZE)
                self._rows[job_class] = row
            row[0] += 1
            row[1] += failed
            row[2] += ms
            row[3 + _bisect(BUCKETS_MS, ms)] += 1

    def take(self) -> Counts:
        with self._lock:
            counts, self._counts, self._rows = self._counts, {}, {}
        return counts


class NoMetrics(Recorder):
    """A recorder that keeps nothing (``--no-metrics``)."""

    __slots__ = ()

    def record(self, job_class: str, seconds: float, failed: bool) -> None:
        pass


class MetricsWriter:
    """Merges the recorders' counts and writes them (called by the heartbeat thread after each
    beat). Counts that could not be written (Redis away) are kept for the next flush."""

    def __init__(self, config: Config, client: redis.Redis, keys: Keys,
                 recorders: list[Recorder], log: Any) -> None:
        self.redis, self.keys, self.recorders, self.log = client, keys, recorders, log
        self.retention = int(config.metrics_retention)
        self.pending: Counts = {}

    def flush(self) -> int:
        """Write what was counted; returns how many (class, minute) rows were written."""
        for recorder in self.recorders:
            for key, row in recorder.take().items():
                mine = self.pending.get(key)
                if mine is None:
                    self.pending[key] = row
                else:
                    for i, value in enumerate(row):
                        mine[i] += value
        if not self.pending:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        minutes = set()
        for (job_class, minute), row in self.pending.items():
            name = self.keys.metrics(minute)
            minutes.add(minute)
            pipe.hincrby(name, f"{job_class}|p", int(row[0]))
            if row[1]:
                pipe.hincrby(name, f"{job_class}|f", int(row[1]))
            pipe.hincrby(name, f"{job_class}|ms", round(row[2]))
            for i, count in enumerate(row[3:]):
                if count:
                    pipe.hincrby(name, f"{job_class}|h{i}", int(count))
        for minute in minutes:
            pipe.expire(self.keys.metrics(minute), self.retention)
        try:
            pipe.execute()
        except (*REDIS_DOWN, redis.exceptions.ResponseError):
            return 0  # kept in pending (Redis away or refusing writes): the next beat tries
        written, self.pending = len(self.pending), {}
        return written
