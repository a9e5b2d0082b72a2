"""Queues (the lists ``queue:<name>``): size, latency, their jobs, and clearing them.

    for queue in Queue.all():
        print(queue.name, queue.size, queue.latency)
    for job in Queue("mail"):            # oldest first, the order a worker takes them
        if job.klass == "Newsletter":
            job.delete()
    Queue("mail").pause()                # every worker stops taking its jobs within 2 s
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import redis

from kiqpy.api.base import ApiObject, Page, check_page, read_gradually, text
from kiqpy.api.jobs import JobRecord
from kiqpy.config import Config

T = TypeVar("T")
# Up to this many known queues, a listing reads every name and sorts them; beyond it, names
# come a page at a time in Redis's order (SSCAN), so a page costs the same with 100k queues.
SORTED_QUEUES = 10_000


class QueueRow(NamedTuple):
    """One queue of a listing: its size and latency, or the ``problem`` that kept them from
    being read (its key is not a list), and whether it is ``paused``."""

    queue: Queue
    size: int
    latency: float
    problem: str | None
    paused: bool = False


@dataclass
class QueueListing:
    """A page of :meth:`Queue.listing`: ``rows``, the number of known queues (``total``), and
    either page ``number`` of ``pages`` (names sorted) or, beyond :data:`SORTED_QUEUES`
    names, the SSCAN ``next_cursor`` (0 at the end; names in Redis's order)."""

    rows: list[QueueRow]
    total: int
    sorted: bool
    number: int = 1
    pages: int = 1
    next_cursor: int = 0


class Queue(ApiObject):
    """A queue (the list ``queue:<name>``): size, latency, its jobs, and clearing it."""

    def __init__(self, name: str = "default", config: Config | None = None,
                 redis_client: redis.Redis | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a queue name must be a non-empty str, got {name!r}")
        super().__init__(config, redis_client)
        self.name = name
        self.key = self.keys.queue(name)

    @classmethod
    def all(cls, config: Config | None = None,
            redis_client: redis.Redis | None = None) -> list[Queue]:
        """Every known queue (the ``queues`` set), sorted by name."""
        probe = ApiObject(config, redis_client)
        with probe.io():
            names = sorted(text(n) for n in probe.redis.smembers(probe.keys.queues))
        return [cls(name, probe.config, probe.redis) for name in names if name]

    @classmethod
    def listing(cls, number: int = 1, size: int = 100, cursor: int = 0,
                config: Config | None = None, redis_client: redis.Redis | None = None,
                by_size: bool = False) -> QueueListing:
        """One page of the known queues with their sizes and latencies, read in work
        proportional to the page: up to :data:`SORTED_QUEUES` names, page ``number`` of the
        names sorted (``by_size``: biggest first, from one pipeline of LLEN over every name,
        O(1) each); beyond, ``size`` names or so from SSCAN ``cursor``. A queue whose key
        is not a list is a row with a ``problem``, never an error."""
        check_page(number, size)
        probe = ApiObject(config, redis_client)
        with probe.io():
            total = int(probe.redis.scard(probe.keys.queues))
            if total <= SORTED_QUEUES:
                names = sorted(text(n) for n in probe.redis.smembers(probe.keys.queues))
                if by_size:
                    pipe = probe.redis.pipeline(transaction=False)
                    for name in names:
                        pipe.llen(probe.keys.queue(name))
                    lengths = pipe.execute(raise_on_error=False)
                    order = {n: -(k if isinstance(k, int) else -1)
                             for n, k in zip(names, lengths, strict=True)}
                    names.sort(key=lambda n: (order[n], n))
                shown = names[(number - 1) * size: number * size]
                rows = cls._rows(shown, probe)
                return QueueListing(rows, total, True, number, max(1, -(-total // size)))
            reply: Any = probe.redis.sscan(probe.keys.queues, cursor, count=size)
        next_cursor, batch = int(reply[0]), sorted(text(n) for n in reply[1])
        return QueueListing(cls._rows(batch, probe), total, False, next_cursor=next_cursor)

    @classmethod
    def _rows(cls, names: list[str], probe: ApiObject) -> list[QueueRow]:
        """Sizes in one pipeline; the oldest jobs (for latencies) a few queues at a time, as
        :func:`~kiqpy.api.base.read_gradually` reads, since each may be big."""
        queues = [cls(name, probe.config, probe.redis) for name in names if name]
        pipe = probe.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue.key)
        pipe.smembers(probe.keys.paused_queues)
        with probe.io():
            *sizes, paused_names = pipe.execute(raise_on_error=False)
        paused = ({text(n) for n in paused_names}
                  if not isinstance(paused_names, redis.ResponseError) else set())
        with probe.io():
            def oldest(start: int, stop: int) -> list[Any]:
                pipe = probe.redis.pipeline(transaction=False)
                for queue in queues[start:stop + 1]:
                    pipe.lindex(queue.key, -1)
                return list(pipe.execute(raise_on_error=False))

            latencies = read_gradually(
                oldest, 0, len(queues), lambda v: len(v) if isinstance(v, bytes) else 0,
                lambda v: JobRecord(v).latency if isinstance(v, bytes) and v else 0.0)
        rows = []
        for queue, size, latency in zip(queues, sizes, latencies, strict=True):
            if isinstance(size, redis.ResponseError):
                rows.append(QueueRow(queue, 0, 0.0, f"{queue.key} is not a list",
                                     queue.name in paused))
            else:
                rows.append(QueueRow(queue, int(size), latency, None, queue.name in paused))
        return rows

    def __repr__(self) -> str:
        return f"<Queue {self.name!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Queue) and (other.key, other.config.redis_url) == (
            self.key, self.config.redis_url)

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def size(self) -> int:
        with self.io():
            return int(self.redis.llen(self.key))

    def __len__(self) -> int:
        return self.size

    @property
    def latency(self) -> float:
        """Seconds since the oldest job was queued (0.0 for an empty queue)."""
        with self.io():
            oldest: Any = self.redis.lindex(self.key, -1)
        return 0.0 if oldest is None else self._record(oldest).latency

    def _record(self, value: bytes) -> JobRecord:
        return JobRecord(value, self.name, self)

    # -- reading -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[JobRecord]:
        return self.each()

    def each(self, newest_first: bool = False, chunk: int = 50) -> Iterator[JobRecord]:
        """Every job, oldest first (the order workers take them) or newest first, read
        ``chunk`` at a time. Workers may take and clients push jobs meanwhile: each read
        overlaps the one before and resumes after the last job seen, so nothing is repeated
        and little is skipped; it never fails because the list moved."""
        for value in self._values(newest_first, chunk):
            yield self._record(value)

    def _values(self, newest_first: bool = False, chunk: int = 50) -> Iterator[bytes]:
        """The stored bytes behind :meth:`each`. Jobs taken or pushed meanwhile shift
        positions, so each read also covers up to ``chunk`` jobs before where the last one
        ended, finds the last value yielded (the anchor) and resumes after it. Not found:
        the anchor was taken (reading oldest first, every job in the window is then newer) or
        moved more than ``chunk`` places (some jobs may be repeated or skipped)."""
        read = self._read_left if newest_first else self._read_right
        seen, anchor = 0, None
        while True:
            back = min(seen, chunk)
            start = seen - back
            with self.io():
                window = read(start, seen + chunk)
            skip = 0
            if anchor is not None and anchor in window:
                skip = window.index(anchor) + 1
            fresh = window[skip:]
            yield from fresh
            if len(window) < back + chunk:
                return  # the window reached the end of the list
            anchor = fresh[-1] if fresh else anchor
            seen = start + len(window)

    def _read_right(self, start: int, stop: int) -> list[bytes]:
        """Jobs ``start`` .. ``stop - 1`` counted from the oldest, oldest first."""
        values: list[Any] = self.redis.lrange(self.key, -stop, -(start + 1))
        return values[::-1]

    def _read_left(self, start: int, stop: int) -> list[bytes]:
        """Jobs ``start`` .. ``stop - 1`` counted from the newest, newest first."""
        values: list[Any] = self.redis.lrange(self.key, start, stop - 1)
        return values

    def page(self, number: int = 1, size: int = 25, newest_first: bool = False
             ) -> Page[JobRecord]:
        """Page ``number`` (from 1) of ``size`` jobs, oldest first unless ``newest_first``;
        a page past the end is empty. The entries and the total are read atomically."""
        check_page(number, size)
        first, last = (number - 1) * size, number * size - 1
        pipe = self.redis.pipeline(transaction=True)
        if newest_first:
            pipe.lrange(self.key, first, last)
        else:
            pipe.lrange(self.key, -(last + 1), -(first + 1))
        pipe.llen(self.key)
        with self.io():
            values, total = pipe.execute()
        ordered = values if newest_first else values[::-1]
        return Page([self._record(v) for v in ordered], int(total), number, size)

    def page_of(self, keep: Callable[[JobRecord], T], number: int = 1, size: int = 25,
                newest_first: bool = False) -> Page[T]:
        """Like :meth:`page`, but the jobs are read a few at a time and each turned into what
        you keep (``keep(record)``) as it arrives, so a page of huge jobs is never all in
        memory (:func:`~kiqpy.api.base.read_gradually`). Not one snapshot: jobs taken or
        pushed meanwhile may shift the page by a few."""
        check_page(number, size)
        with self.io():
            total = int(self.redis.llen(self.key))

            def read(start: int, stop: int) -> list[bytes]:
                if newest_first:
                    values: list[Any] = self.redis.lrange(self.key, start, stop)
                    return values
                return self._read_right(start, stop + 1)

            kept = read_gradually(read, (number - 1) * size, size, len,
                                  lambda value: keep(self._record(value)))
        return Page(kept, total, number, size)

    def find_near(self, wanted: Callable[[bytes], bool], number: int, size: int = 25,
                  newest_first: bool = False) -> JobRecord | None:
        """The first job for which ``wanted(bytes)`` is true on page ``number`` (of ``size``,
        as :meth:`page` counts) or the pages either side (jobs taken or pushed since the page
        was shown shift it), read as :meth:`page_of` reads; None if it is not there. Bounded:
        three pages at most, whatever the queue's length."""
        check_page(number, size)
        found: list[bytes] = []

        def read(start: int, stop: int) -> list[bytes]:
            if newest_first:
                values: list[Any] = self.redis.lrange(self.key, start, stop)
                return values
            return self._read_right(start, stop + 1)

        def keep(value: bytes) -> None:
            if not found and wanted(value):
                found.append(value)

        with self.io():
            read_gradually(read, max(0, (number - 2) * size), 3 * size, len, keep)
        return self._record(found[0]) if found else None

    def find_job(self, jid: str) -> JobRecord | None:
        """The job with this jid, or None. Reads the whole queue in the worst case."""
        needle = jid.encode()
        for value in self._values():
            if needle in value:
                record = self._record(value)
                if record.jid == jid:
                    return record
        return None

    # -- pausing -----------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        """Whether workers skip this queue (see :meth:`pause`)."""
        with self.io():
            return bool(self.redis.sismember(self.keys.paused_queues, self.name))

    def pause(self) -> bool:
        """Stop every worker taking jobs from this queue: each learns of it on its next fetch
        (within about a second when idle, 2 s at most) and gives back any job of the queue it
        holds but has not started. Running jobs finish; jobs pushed meanwhile wait in the
        queue. True if it was not paused before."""
        with self.io():
            return bool(self.redis.sadd(self.keys.paused_queues, self.name))

    def unpause(self) -> bool:
        """Let workers take this queue's jobs again; True if it was paused."""
        with self.io():
            return bool(self.redis.srem(self.keys.paused_queues, self.name))

    @classmethod
    def paused_names(cls, config: Config | None = None,
                     redis_client: redis.Redis | None = None) -> list[str]:
        """The names of every paused queue, sorted (known to the ``queues`` set or not)."""
        probe = ApiObject(config, redis_client)
        with probe.io():
            return sorted(text(n) for n in probe.redis.smembers(probe.keys.paused_queues))

    # -- changes -----------------------------------------------------------------------------
    def delete_by_value(self, value: bytes) -> bool:
        """Remove one job by its exact stored bytes; False if it was not there."""
        with self.io():
            # redis-py annotates the value as str; bytes are what payloads are.
            return bool(self.redis.lrem(self.key, 1, value))  # type: ignore[arg-type]

    def clear(self) -> int:
        """Delete every job of this queue and forget the queue's name; returns how many jobs
        were deleted."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.llen(self.key)
        pipe.unlink(self.key)
        if not self.keys.cluster:  # on Cluster `queues` is in another slot: a command apart
            pipe.srem(self.keys.queues, self.name)
        with self.io():
            count = pipe.execute(raise_on_error=False)[0]
            if self.keys.cluster:
                self.redis.srem(self.keys.queues, self.name)
        return count if isinstance(count, int) else 0  # a key that was not a list: 0 jobs
