"""The sorted sets of jobs: :class:`ScheduledSet`, :class:`RetrySet` and :class:`DeadSet`, whose
entries (:class:`SortedEntry`) can be deleted, queued now, killed or rescheduled.

    retries = RetrySet()
    for entry in retries.scan("ValueError"):       # any entry whose bytes contain the text
        entry.retry()                               # to its queue now; the attempt is not counted
    DeadSet().page(1, 25).entries                   # newest first

Every move takes the member out with a conditional ZREM inside one Lua script
(``kiqpy/lua/move_to_queue.lua``, ``move_to_dead.lua``): when two people click Retry on the same
job, or the scheduler moves it at the same moment, it lands in exactly one place. On Redis
Cluster the queue is in another slot than the set, so "to its queue" goes through the outbox
(``kiqpy/outbox.py``: an atomic claim, then the push), with the same guarantee.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import redis

from kiqpy.api.base import (
    GRADUAL_BYTES,
    ApiObject,
    Page,
    check_page,
    glob_escape,
    read_gradually,
    to_datetime,
    to_epoch,
)
from kiqpy.api.jobs import JobRecord
from kiqpy.config import Config
from kiqpy.errors import PayloadError
from kiqpy.failures import malformed_job
from kiqpy.outbox import Outbox
from kiqpy.payload import encode, queued_copy

_BATCH = 100
OUTBOX = "outbox"  # a Move through kiqpy/outbox.py (Redis Cluster), not one script
T = TypeVar("T")
# The bounds of one search (JobSet.search): entries and bytes read per call at most, and the
# adaptive size of each ZRANGE (see the docstring for the arithmetic).
SEARCH_ENTRIES = 5000
SEARCH_BYTES = 16 * 1024 * 1024
SEARCH_BATCH_BYTES = 512 * 1024
SEARCH_MAX_BATCH = 256


class Move(NamedTuple):
    """One call of a move script (``kiqpy/lua/<script>.lua``), built before it runs so that
    many can share a pipeline."""

    script: str
    keys: list[str]
    args: list[Any]


class SortedEntry(JobRecord):
    """A job in a sorted set, with its ``score`` (epoch seconds: when it runs, or when it died)
    and the operations that move it. Each returns True if this call did it, False if the entry
    had already left the set (someone else moved or deleted it)."""

    def __init__(self, value: bytes, score: float, parent: JobSet) -> None:
        super().__init__(value, None, parent)
        self.score = score
        self.parent = parent

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} score={self.score}>"

    @property
    def at(self) -> _dt.datetime | None:
        """The score as a datetime: when it is due (scheduled, retry) or died (dead)."""
        return to_datetime(self.score)

    def add_to_queue(self) -> bool:
        """Push the job onto its queue now: unchanged, but for a fresh ``enqueued_at`` (in
        the unit the client writes, see ``Config.sidekiq_version``) and without ``at`` (it is
        no longer scheduled)."""
        return self.parent.move(self.parent.queue_move(self, refund=False))

    def retry(self) -> bool:
        """Push the job onto its queue now. From the retry and dead sets the manual retry does
        not count against the job's retry limit (as Sidekiq: ``retry_count`` goes down by one,
        so the next failure's bump leaves it where it was)."""
        return self.parent.move(self.parent.queue_move(self, refund=self.parent.refunds_retry))

    def kill(self) -> bool:
        """Move the job to the dead set (trimmed as usual). False from the dead set itself."""
        move = self.parent.dead_move(self)
        return False if move is None else self.parent.move(move)

    def reschedule(self, at: float | _dt.datetime | _dt.timedelta) -> bool:
        """Change the score to ``at`` (a datetime, epoch seconds, or a delay from now)."""
        score = to_epoch(at)
        pipe = self.parent.redis.pipeline(transaction=True)
        pipe.zadd(self.parent.key, {self.value: score}, xx=True)
        pipe.zscore(self.parent.key, self.value)
        with self.parent.io():
            _, present = pipe.execute()
        if present is None:
            return False
        self.score = float(present)
        return True


@dataclass
class Search:
    """What one bounded :meth:`JobSet.search` found: the matching ``entries`` (in the order
    read), the rank the search started at (``start``) and where to continue (``next_start``,
    None once the end of the set, or of the score asked for, was reached), and how much was
    read (``scanned`` entries, ``scanned_bytes``)."""

    entries: list[SortedEntry] = field(default_factory=list)
    start: int = 0
    next_start: int | None = None
    scanned: int = 0
    scanned_bytes: int = 0

    @property
    def exhausted(self) -> bool:
        """True when nothing is left to search."""
        return self.next_start is None


class JobSet(ApiObject):
    """What the three sets share. ``name`` is the set's key without namespace."""

    name = ""
    refunds_retry = False

    def __init__(self, config: Config | None = None,
                 redis_client: redis.Redis | None = None) -> None:
        super().__init__(config, redis_client)
        self.key: str = getattr(self.keys, self.name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r}>"

    def _entry(self, value: bytes, score: float) -> SortedEntry:
        return SortedEntry(value, float(score), self)

    @property
    def size(self) -> int:
        with self.io():
            return int(self.redis.zcard(self.key))

    def __len__(self) -> int:
        return self.size

    # -- reading -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[SortedEntry]:
        return self.each()

    def each(self, newest_first: bool = True, chunk: int = _BATCH) -> Iterator[SortedEntry]:
        """Every entry, highest score first (or lowest with ``newest_first=False``), read
        up to ``chunk`` at a time. Each read resumes from the last score seen, not from a
        position, so entries moved out meanwhile (the scheduler, another user, the caller)
        shift nothing; entries sharing that score are told apart by their bytes. Reads grow
        from one entry as :func:`~kiqpy.api.base.read_gradually` does, so big entries are
        read one at a time."""
        bound, end = ("+inf", "-inf") if newest_first else ("-inf", "+inf")
        at_bound: set[bytes] = set()  # entries already yielded whose score is `bound`
        batch, biggest = 1, 0
        while True:
            with self.io():
                rows: list[Any] = self.redis.zrange(
                    self.key, bound, end, desc=newest_first, byscore=True, offset=0,
                    num=batch + len(at_bound), withscores=True)
            fresh = [(v, s) for v, s in rows if v not in at_bound]
            if not fresh:
                return
            biggest = max([biggest, *(len(v) for v, _ in fresh)])
            batch = max(1, min(chunk, batch * 2, GRADUAL_BYTES // max(1, biggest)))
            for value, score in fresh:
                yield self._entry(value, score)
            last = fresh[-1][1]
            if not _same(bound, last):
                at_bound = set()
            at_bound.update(v for v, s in fresh if s == last)
            bound = repr(float(last))

    def page(self, number: int = 1, size: int = 25, newest_first: bool = True
             ) -> Page[SortedEntry]:
        """Page ``number`` (from 1) of ``size`` entries, highest score first unless
        ``newest_first=False``; a page past the end is empty. Read atomically with the total."""
        check_page(number, size)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrange(self.key, (number - 1) * size, number * size - 1, desc=newest_first,
                    withscores=True)
        pipe.zcard(self.key)
        with self.io():
            rows, total = pipe.execute()
        return Page([self._entry(v, s) for v, s in rows], int(total), number, size)

    def page_of(self, keep: Callable[[SortedEntry], T], number: int = 1, size: int = 25,
                newest_first: bool = True) -> Page[T]:
        """Like :meth:`page`, but each entry is read a few at a time and turned into what you
        keep (``keep(entry)``, say a summary without the bytes) as it arrives, so a page of
        huge entries is never all in memory at once (:func:`~kiqpy.api.base.read_gradually`).
        Not one snapshot: entries moved meanwhile may shift the page by a few."""
        check_page(number, size)
        with self.io():
            total = int(self.redis.zcard(self.key))

            def read(start: int, stop: int) -> list[Any]:
                rows: list[Any] = self.redis.zrange(self.key, start, stop,
                                                    desc=newest_first, withscores=True)
                return rows

            kept = read_gradually(read, (number - 1) * size, size, lambda row: len(row[0]),
                                  lambda row: keep(self._entry(row[0], row[1])))
        return Page(kept, total, number, size)

    def scan(self, substring: str, count: int = 1000) -> Iterator[SortedEntry]:
        """Entries whose stored bytes contain ``substring`` (ZSCAN MATCH, server side): a jid,
        a class name, an error message, an argument's text. Unordered; each entry once.

        Redis runs the match, so one ZSCAN call costs ``count`` entries times their size:
        over big entries it can block Redis for long. Where that matters (a dashboard), use
        :meth:`search`, which bounds each call."""
        seen: set[bytes] = set()
        pattern = f"*{glob_escape(substring)}*"
        with self.io():
            for value, score in self.redis.zscan_iter(self.key, match=pattern, count=count):
                if value not in seen:
                    seen.add(value)
                    yield self._entry(value, score)

    def search(self, match: bytes | str | Callable[[bytes], bool], start: int = 0,
               newest_first: bool = True, limit: int = 25, score: float | None = None,
               max_entries: int = SEARCH_ENTRIES, max_bytes: int = SEARCH_BYTES) -> Search:
        """Up to ``limit`` entries whose stored bytes contain ``match`` (or for which the
        callable ``match`` is true), reading the set in listing order from rank ``start``;
        with ``score``, only the entries at exactly that score (found in O(log n)). Continue
        with ``start=result.next_start``.

        The work one call makes Redis do is bounded, whatever the set holds; this is how:

        - Redis only serves ranges by rank (ZCOUNT to find a score's first rank, then ZRANGE
          by rank, O(log n + k) for k entries) and never matches anything: the match runs
          here, in Python, so a long needle or a huge entry costs Redis nothing but the bytes
          it returns.
        - Each ZRANGE asks for k entries, k adapting like TCP's slow start: 1 at first, then
          doubled while the biggest entry seen so far keeps k entries under
          ``SEARCH_BATCH_BYTES`` (512 KiB), and cut to ``SEARCH_BATCH_BYTES // biggest`` (at
          least 1) once big entries appear; never more than ``SEARCH_MAX_BATCH`` (256). One
          command therefore copies about 512 KiB, or one entry when entries are bigger
          (Redis cannot tell an entry's size without reading it).
        - The call stops after ``max_entries`` entries or ``max_bytes`` bytes read (5,000 and
          16 MiB by default), so one request's total is bounded too; ``next_start`` says
          where the next call resumes ("search further").

        Ranks shift when entries leave or join the set between calls, so a continued search
        may see an entry twice or miss one that moved; each call on its own is exact.
        """
        if isinstance(match, str):
            match = match.encode()
        if isinstance(match, bytes):
            needle = match
            test: Callable[[bytes], bool] = lambda value: needle in value  # noqa: E731
        else:
            test = match
        if score is not None:
            newest_first = False
            with self.io():  # the rank of the first entry at `score`
                start = int(self.redis.zcount(self.key, "-inf", "(" + repr(float(score))))
        result = Search(start=start, next_start=start)
        rank, batch, biggest = start, 1, 0
        while result.scanned < max_entries and result.scanned_bytes < max_bytes:
            count = min(batch, max_entries - result.scanned)
            with self.io():
                rows: list[Any] = self.redis.zrange(self.key, rank, rank + count - 1,
                                                    desc=newest_first, withscores=True)
            for value, entry_score in rows:
                if score is not None and float(entry_score) != score:
                    result.next_start = None
                    return result
                rank += 1
                result.scanned += 1
                result.scanned_bytes += len(value)
                biggest = max(biggest, len(value))
                if test(value):
                    result.entries.append(self._entry(value, entry_score))
                    if len(result.entries) >= limit:
                        break
            result.next_start = rank
            if len(result.entries) >= limit:
                break
            if len(rows) < count:
                result.next_start = None
                break
            batch = max(1, min(SEARCH_MAX_BATCH, batch * 2,
                               SEARCH_BATCH_BYTES // max(1, biggest)))
        return result

    def find_job(self, jid: str) -> SortedEntry | None:
        """The entry with this jid, or None."""
        return next((e for e in self.scan(jid) if e.jid == jid), None)

    def fetch(self, score: float, jid: str | None = None) -> list[SortedEntry]:
        """The entries at exactly ``score`` (and with ``jid``, when given)."""
        with self.io():
            rows: list[Any] = self.redis.zrange(self.key, repr(float(score)),
                                                repr(float(score)), byscore=True,
                                                withscores=True)
        entries = [self._entry(v, s) for v, s in rows]
        return [e for e in entries if jid is None or e.jid == jid]

    # -- deleting ----------------------------------------------------------------------------
    def delete_by_value(self, value: bytes) -> bool:
        """Remove one entry by its exact stored bytes; False if it was not there."""
        with self.io():
            return bool(self.redis.zrem(self.key, value))

    def delete_by_jid(self, score: float, jid: str) -> bool:
        """Remove the entry at ``score`` with ``jid``; False if there is none."""
        return any([e.delete() for e in self.fetch(score, jid)])

    def clear(self) -> int:
        """Delete every entry; returns how many there were."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zcard(self.key)
        pipe.unlink(self.key)
        with self.io():
            count, _ = pipe.execute()
        return int(count)

    delete_all = clear

    # -- moving ------------------------------------------------------------------------------
    def queue_move(self, entry: SortedEntry, refund: bool) -> Move:
        """The script call that moves ``entry`` to its queue now. Raises PayloadError for an
        entry that is not a runnable job (delete it instead)."""
        if entry.malformed:
            reason = entry.error or entry.error_message or "malformed payload"
            raise PayloadError(f"not a job, so it cannot be queued: {reason}")
        job = dict(entry.item)
        if refund and type(job.get("retry_count")) is int:
            job["retry_count"] -= 1
        queue = job["queue"]
        payload = queued_copy(job, entry.value, self.config.sidekiq_version)
        if self.keys.cluster:
            return Move(OUTBOX, [self.key], [entry.value, payload])
        return Move("move_to_queue", [self.key, self.keys.queue(queue), self.keys.queues],
                    [entry.value, queue, payload])

    def dead_move(self, entry: SortedEntry) -> Move | None:
        """The script call that moves ``entry`` to the dead set (None from the dead set).
        Bytes that are not a job go there as a record holding them, with the reason."""
        if self.key == self.keys.dead:
            return None
        dead = entry.value
        if entry.error is not None:
            dead = encode(malformed_job("unknown", entry.value, f"in {self.key}: {entry.error}"))
        now = time.time()
        return Move("move_to_dead", [self.key, self.keys.dead],
                    [entry.value, dead, repr(now), repr(now - self.config.dead_timeout),
                     self.config.dead_max_jobs])

    def move(self, move: Move, client: Any = None) -> bool:
        """Run one move (on ``client``, a pipeline, when given; an outbox move runs at
        once)."""
        if move.script == OUTBOX:
            with self.io():
                return Outbox(self.config, self.redis, self.keys, self.scripts).move(
                    move.keys[0], move.args[0], move.args[1])
        script = getattr(self.scripts, move.script)
        with self.io():
            return bool(script(keys=move.keys, args=move.args, client=client))

    def _move_all(self, moves: Iterable[Move | None]) -> int:
        moved = 0
        for batch in _batches((m for m in moves if m is not None), _BATCH):
            pipe = self.redis.pipeline(transaction=False)
            for move in batch:
                if move.script == OUTBOX:
                    moved += self.move(move)
                else:
                    self.move(move, pipe)
            with self.io():
                moved += sum(int(r) for r in pipe.execute())
        return moved

    def retry_all(self) -> int:
        """:meth:`SortedEntry.retry` every entry, oldest first, skipping those that are not
        jobs; returns how many this call moved."""
        return self._move_all(self.queue_move(e, self.refunds_retry)
                              for e in self.each(newest_first=False) if not e.malformed)

    def kill_all(self) -> int:
        """:meth:`SortedEntry.kill` every entry (nothing from the dead set); returns how many
        this call moved."""
        if self.key == self.keys.dead:
            return 0
        return self._move_all(self.dead_move(e) for e in self.each(newest_first=False))


def _same(bound: str, score: float) -> bool:
    return bound not in ("+inf", "-inf") and float(bound) == score


def _batches(items: Iterable[Move], size: int, max_bytes: int = 8 * GRADUAL_BYTES
             ) -> Iterator[list[Move]]:
    """Moves in pipelines of ``size``, or fewer once they carry ``max_bytes`` (4 MiB) of
    payloads: a hundred moves of 5 MB jobs are not one 1 GB pipeline."""
    batch: list[Move] = []
    held = 0
    for item in items:
        batch.append(item)
        held += sum(len(arg) for arg in item.args if isinstance(arg, bytes))
        if len(batch) >= size or held >= max_bytes:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


class ScheduledSet(JobSet):
    """Jobs pushed with ``perform_in``/``perform_at`` (the ``schedule`` set; score = run-at)."""

    name = "schedule"


class RetrySet(JobSet):
    """Failed jobs waiting for their next try (the ``retry`` set; score = next try)."""

    name = "retry"
    refunds_retry = True


class DeadSet(JobSet):
    """Jobs out of retries, killed, or not jobs at all (the ``dead`` set; score = death)."""

    name = "dead"
    refunds_retry = True
