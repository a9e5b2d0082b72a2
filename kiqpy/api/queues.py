"""Queues (the lists ``queue:<name>``): size, latency, their jobs, and clearing them.

    for queue in Queue.all():
        print(queue.name, queue.size, queue.latency)
    for job in Queue("mail"):            # oldest first, the order a worker takes them
        if job.klass == "Newsletter":
            job.delete()
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis

from kiqpy.api.base import ApiObject, Page, check_page, text
from kiqpy.api.jobs import JobRecord
from kiqpy.config import Config


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

    def find_job(self, jid: str) -> JobRecord | None:
        """The job with this jid, or None. Reads the whole queue in the worst case."""
        needle = jid.encode()
        for value in self._values():
            if needle in value:
                record = self._record(value)
                if record.jid == jid:
                    return record
        return None

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
        pipe.srem(self.keys.queues, self.name)
        with self.io():
            count, _, _ = pipe.execute()
        return int(count)
