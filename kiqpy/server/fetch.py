"""Reliable fetch: jobs move atomically from their queue to this process's in-flight list and
leave it only when a processor is done with them (ack). Everything else here is about doing that
fast: batched fetches, batched acks, and blocking waits when idle.

    queue:<q> --fetch.lua / BLMOVE--> <identity>:inflight:<q> --ack (LREM)--> gone
                                                              --requeue.lua--> back to queue:<q>
"""

from __future__ import annotations

import collections
import functools
import queue as _queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from kiqpy import queues
from kiqpy.config import Config
from kiqpy.connection import REDIS_DOWN
from kiqpy.keys import Keys
from kiqpy.scripts import Scripts
from kiqpy.server.outage import Outage, backoff

Unit = tuple[str, bytes]  # (queue name, payload exactly as stored in Redis)
STOP: Any = object()  # sentinel put on a work or ack queue to end its reader

# An idle waiter blocks this long in BLMOVE: each queue then costs an idle worker 1/BLOCK
# commands per second, and shutdown waits at most this long for the waiters.
BLOCK_SECONDS = 1.0
# Past this many queues, waiters would hold too many connections; the fetcher polls instead.
MAX_WAITERS = 16
POLL_SECONDS = 0.5
# On Redis Cluster, how often the fetcher reads the paused set (it is in another slot than the
# queues, so fetch_queue.lua cannot return it).
PAUSED_SECONDS = 1.0
# How often a worker listening to patterns (`*`) looks for new queues.
REFRESH_SECONDS = 2.0
# A finished job's ack waits at most this long for a fetch to share a round trip with. A kill -9
# within that window only means the job runs again (at-least-once).
ACK_DELAY = 0.05
# Jobs shorter than this on average (wall time, which under a busy GIL is several ms even for
# a no-op) make prefetching worth it. Auto prefetch holds as many extra jobs as keep the wait
# of the last one for a thread under PREFETCH_WAIT (2 x concurrency at SHORT_JOB, more for
# shorter jobs, at most MAX_PREFETCH x concurrency): the shorter the jobs, the bigger each
# fetch and the longer the queued jobs last while the next fetch is on its way (a no-op job
# ran 1.44x faster with 8 x than with 2 x, an INCR job 1.08x).
SHORT_JOB = 0.025
PREFETCH_WAIT = 2 * SHORT_JOB
MAX_PREFETCH = 8


class Fetcher:
    """Owns the jobs this process has taken but not finished.

    Loop (thread ``kiqpy.fetcher``): when the jobs held fall to the low-water mark, send one
    pipeline that acks the finished jobs (LREM from the in-flight lists) and takes enough new
    ones (fetch.lua) to fill up again, then hand those to processors on :attr:`work`. Acks
    otherwise wait at most ``ACK_DELAY`` seconds for a fetch to ride along with. When the
    queues are empty, waiter threads (``kiqpy.wait-<queue>``, one per queue) block in BLMOVE, so
    an idle worker starts a new job within a millisecond of its push.
    Prefetch: with ``prefetch=None`` (auto) the fetcher holds extra jobs while jobs are short
    (under ``SHORT_JOB`` seconds on average): ``2 x concurrency`` at that bound, up to
    ``MAX_PREFETCH x concurrency`` for shorter ones (so a prefetched job waits at most about
    ``PREFETCH_WAIT`` for a thread), and none otherwise, so a slow job never keeps a queued
    job from an idle process.
    Paused queues (the ``kiqpy:paused-queues`` set) are skipped by fetch.lua, which returns the
    set on every call: an idle worker calls it at least every ``BLOCK_SECONDS``, so it learns of
    a pause within about a second, and its waiters and processors then give back any job of a
    paused queue they get (to the front of the queue) instead of running it.
    On Redis Cluster each queue (with its in-flight lists) lives in its own slot, so no script
    can take from several: a fetch calls fetch_queue.lua queue by queue in the order (strict or
    weighted, as here) until it has enough, each call on the shard holding that queue, and
    reads the paused set at most every ``PAUSED_SECONDS``. An empty fetch thus costs one call
    per queue instead of one; the waiters block per queue exactly as on a single node.
    Exits: :meth:`stop` ends fetching (quiet) but acks still flow; :meth:`close` flushes the
    acks and ends the loop; :meth:`requeue` then returns every job still held to its queue.
    """

    def __init__(self, config: Config, client: redis.Redis, keys: Keys, identity: str,
                 outage: Outage, log: Any) -> None:
        self.config, self.redis, self.keys, self.identity = config, client, keys, identity
        self.outage, self.log = outage, log
        self.scripts = Scripts(client)
        self.spec = config.queues
        self.dynamic = queues.dynamic(self.spec)
        self.order = queues.QueueOrder(queues.resolve(self.spec, ()))
        self._next_refresh = 0.0
        self.concurrency = config.concurrency
        self.work: _queue.SimpleQueue[Any] = _queue.SimpleQueue()
        self.fetched_from: set[str] = set(self.order.names)
        # Paused queues, as of the last fetch.lua call (the whole set, not only ours).
        self.paused: frozenset[str] = frozenset()
        self._room = threading.Condition()
        self._held = 0  # jobs taken and not yet done: running + waiting on `work`
        self._low = 0  # the low-water mark last computed by the loop
        self._taken = 0  # jobs taken since start
        self._holding: collections.Counter[Unit] = collections.Counter()  # what _held counts
        self._suspect = False  # a fetch failed: it may have taken jobs we never heard of
        self.budget: int | None = None  # the most jobs to take (--max-jobs), None: no limit
        self._acks: list[Unit] = []
        self._ack_due = 0.0  # monotonic time by which pending acks must be sent
        self._job_seconds = 1.0  # moving average of job run time (starts "slow": no prefetch)
        self._quiet = threading.Event()
        self._closed = False
        self._idle = threading.Event()
        self._wake = threading.Event()
        self._keys: dict[str, tuple[str, str]] = {}
        self._thread: threading.Thread | None = None
        self._waiters: dict[str, threading.Thread] = {}
        self._paused_due = 0.0  # Cluster: when to read the paused set again

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, spawn: Callable[[str, Callable[[], None]], threading.Thread]) -> None:
        self._spawn = spawn
        self._thread = spawn("kiqpy.fetcher", self._loop)
        self._sync_waiters()

    def stop(self) -> None:
        """Stop taking jobs (quiet). Jobs already held stay held; acks still flow."""
        self._quiet.set()
        self._wake.set()
        with self._room:
            self._room.notify_all()

    @property
    def stopping(self) -> bool:
        return self._quiet.is_set()

    def close(self, timeout: float) -> bool:
        """Send the pending acks and end the fetcher; True if it finished in time."""
        self.stop()
        with self._room:
            self._closed = True
            self._room.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def join_waiters(self, timeout: float) -> bool:
        """Wait for the waiters to leave BLMOVE; True if they all did."""
        end = time.monotonic() + timeout
        for thread in self._waiters.values():
            thread.join(max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._waiters.values())

    # -- queues ------------------------------------------------------------------------------
    def set_queues(self, resolved: Sequence[tuple[str, int]]) -> None:
        """Change the queues to fetch from (for patterns like ``*`` that grow over time)."""
        self.order = queues.QueueOrder(resolved)
        self.fetched_from.update(self.order.names)
        self._sync_waiters()

    def refresh_queues(self) -> None:
        """For patterns (``*``, ``mail_*``): re-read the known queues, at most every
        ``REFRESH_SECONDS``, so a queue created after start is picked up."""
        now = time.monotonic()
        if not self.dynamic or now < self._next_refresh:
            return
        self._next_refresh = now + REFRESH_SECONDS
        known = [_text(q) for q in self.redis.smembers(self.keys.queues)]
        resolved = queues.resolve(self.spec, known)
        if [n for n, _ in resolved] != self.order.names:
            self.log.info("queues changed", queues=[n for n, _ in resolved])
            self.set_queues(resolved)

    def _sync_waiters(self) -> None:
        names = self.order.names if len(self.order.names) <= MAX_WAITERS else []
        for name in names:
            if name not in self._waiters and not self._quiet.is_set():
                self._waiters[name] = self._spawn(f"kiqpy.wait-{name}",
                                                  functools.partial(self._wait_loop, name))

    def _keys_for(self, name: str) -> tuple[str, str]:
        pair = self._keys.get(name)
        if pair is None:
            pair = self._keys[name] = (self.keys.queue(name),
                                       self.keys.inflight(self.identity, name))
        return pair

    # -- the loop ----------------------------------------------------------------------------
    def _limits(self) -> tuple[int, int]:
        """(most jobs to hold, fetch again when holding this many or fewer)."""
        prefetch = self.config.prefetch
        if prefetch is None:
            seconds = self._job_seconds
            prefetch = 0 if seconds >= SHORT_JOB else self.concurrency * min(
                MAX_PREFETCH, int(PREFETCH_WAIT / max(seconds, 1e-6)))
        limit = self.concurrency + prefetch
        return limit, (limit - 1 if prefetch == 0 else self.concurrency + prefetch // 2)

    def _loop(self) -> None:
        attempt = 0
        while True:
            with self._room:
                acks, want, closing = self._next_step()
            if want and self.dynamic:
                try:
                    self.refresh_queues()
                    want = want if self.order.names else 0
                except REDIS_DOWN:
                    pass  # the exchange below meets the outage too, and reports it
            if closing and not acks:
                return
            try:
                if self._suspect and not self._quiet.is_set():
                    self._adopt(acks)
                units = self._exchange(acks, want)
            except REDIS_DOWN as exc:
                # A timed-out fetch.lua may still run when Redis wakes up: look for what it
                # took before trusting the in-flight lists again.
                self._suspect = self._suspect or bool(want)
                with self._room:
                    self._acks[:0] = acks  # nothing is forgotten: try them again
                self.outage.failed(exc, "fetch")
                self._pause(backoff(attempt), closing)
                attempt += 1
                continue
            except redis.exceptions.ResponseError as exc:
                # Refused (out of memory, read-only replica, a queue key of the wrong type):
                # keep the acks, log, and try again rather than stop the process.
                with self._room:
                    self._acks[:0] = acks
                self.log.error("redis refused the fetch; will try again", error=str(exc))
                self._pause(backoff(attempt, cap=30.0), closing)
                attempt += 1
                continue
            attempt = 0
            self.outage.ok()
            if units:
                self._dispatch(units)
            elif not acks and not closing and not self._quiet.is_set():
                self._rest()

    def _pause(self, seconds: float, closing: bool) -> None:
        if closing:
            time.sleep(seconds)
        else:
            self._quiet.wait(seconds)

    def _next_step(self) -> tuple[list[Unit], int, bool]:
        """Under the lock: wait until there is something to do; return (acks, want, closing)."""
        while True:
            if self._closed:
                acks, self._acks = self._acks, []
                return acks, 0, True
            limit, low = self._limits()
            self._low = low
            left = self.budget - self._taken if self.budget is not None else limit
            fetching = not self._quiet.is_set() and self._held <= low and left > 0
            now = time.monotonic()
            if fetching or (self._acks and now >= self._ack_due):
                acks, self._acks = self._acks, []
                return acks, (min(limit - self._held, left) if fetching else 0), False
            timeout = (self._ack_due - now) if self._acks else 1.0
            self._room.wait(timeout)

    def _exchange(self, acks: list[Unit], want: int) -> list[Unit]:
        """One round trip (fetch.lua): ack ``acks`` and take up to ``want`` jobs."""
        if self.keys.cluster:
            return self._exchange_cluster(acks, want)
        paused = self.paused
        names = [name for name in self.order.order() if name not in paused] if want else []
        keys = [*self._fetch_keys(names), self.keys.paused_queues]
        index = {key: i for i, key in enumerate(keys[len(names):], start=len(names) + 1)}
        args: list[Any] = [len(names), want, *names]
        for name, payload in acks:
            inflight = self._keys_for(name)[1]
            if inflight not in index:
                keys.append(inflight)
                index[inflight] = len(keys)
            args += [index[inflight], payload]
        flat, now_paused = self.scripts.call(self.scripts.fetch, keys, args)
        self._note_paused(now_paused)
        return [(names[flat[i] - 1], flat[i + 1]) for i in range(0, len(flat), 2)]

    def _exchange_cluster(self, acks: list[Unit], want: int) -> list[Unit]:
        """:meth:`_exchange` on Redis Cluster: fetch_queue.lua per queue, in order, until
        ``want`` jobs are taken; each queue's acks ride along with its call. If a call fails
        midway, the loop keeps every ack to send again (LREM of a job already acked removes
        nothing) and :meth:`_adopt` takes in what the earlier calls took."""
        now = time.monotonic()
        if want and now >= self._paused_due:
            self._paused_due = now + PAUSED_SECONDS
            names: Any = self.redis.smembers(self.keys.paused_queues)
            self._note_paused(list(names))
        pending: dict[str, list[bytes]] = {}
        for name, payload in acks:
            pending.setdefault(name, []).append(payload)
        units: list[Unit] = []
        call, script = self.scripts.call, self.scripts.fetch_queue
        if want:
            paused = self.paused
            for name in self.order.order():
                if want <= 0:
                    break
                if name in paused:
                    continue
                jobs = call(script, list(self._keys_for(name)), [want, *pending.pop(name, ())])
                units += [(name, job) for job in jobs]
                want -= len(jobs)
        for name, payloads in pending.items():
            call(script, list(self._keys_for(name)), [0, *payloads])
        return units

    def _note_paused(self, names: list[bytes]) -> None:
        if not names and not self.paused:
            return
        paused = frozenset(_text(name) for name in names)
        if paused != self.paused:
            ours = set(self.order.names)
            for name in sorted((paused - self.paused) & ours):
                self.log.info("queue paused", queue=name)
            for name in sorted((self.paused - paused) & ours):
                self.log.info("queue unpaused", queue=name)
            self.paused = paused

    def _adopt(self, acks: list[Unit]) -> None:
        """After a fetch whose reply was lost: hand to processors any job that is in this
        process's in-flight lists but neither held nor waiting to be acked (``acks`` are the
        ones this loop is about to send)."""
        with self._room:
            expected = collections.Counter(self._holding)
            expected.update(self._acks)
        expected.update(acks)
        extras: list[Unit] = []
        for name in sorted(self.fetched_from):
            found = collections.Counter(self.redis.lrange(self._keys_for(name)[1], 0, -1))
            for payload, count in found.items():
                unit = (name, bytes(payload))  # type: ignore[arg-type]
                extras += [unit] * max(0, count - expected.get(unit, 0))
        self._suspect = False
        if extras:
            self.log.warning("took in jobs fetched by a call whose reply was lost",
                             jobs=len(extras))
            self._dispatch(extras)

    def _fetch_keys(self, names: list[str]) -> list[str]:
        pairs = [self._keys_for(name) for name in names]
        return [pair[0] for pair in pairs] + [pair[1] for pair in pairs]

    def _rest(self) -> None:
        """The queues were empty: let the waiters block until a job arrives (without waiters,
        just poll again shortly)."""
        timeout = BLOCK_SECONDS if self._waiters else POLL_SECONDS * random.uniform(0.8, 1.2)
        self._wake.clear()
        self._idle.set()
        # done() appends an ack and then looks at _idle; we set _idle and then look at the
        # acks: whichever runs second sees the other, so no ack waits for the full block.
        if not self._acks:
            self._wake.wait(timeout)
        self._idle.clear()

    def _wait_loop(self, name: str) -> None:
        source, inflight = self._keys_for(name)
        attempt, refused = 0, False
        while not self._quiet.is_set():
            if not self._idle.wait(1.0) or not self._room_left():
                continue
            if name not in self.order.names or name in self.paused:
                # Not ours any more, or paused: look again later (the fetch loop learns of an
                # unpause within a second), without spinning while the process is idle.
                self._quiet.wait(BLOCK_SECONDS)
                continue
            try:
                payload = self.redis.blmove(source, inflight, BLOCK_SECONDS,  # type: ignore[arg-type]
                                            "RIGHT", "LEFT")
            except REDIS_DOWN as exc:
                self.outage.failed(exc, "wait")
                self._quiet.wait(backoff(attempt))
                attempt += 1
                continue
            except redis.exceptions.ResponseError as exc:
                # Refused (BLMOVE needs memory; a wrong-type key): the fetch loop still polls
                # this queue, so this waiter only says so once and rests.
                if not refused:
                    self.log.error("redis refused the blocking wait; will try again",
                                   queue=name, error=str(exc))
                refused = True
                self._quiet.wait(backoff(attempt, cap=30.0))
                attempt += 1
                continue
            attempt, refused = 0, False
            if payload is None:
                continue
            # Not idle any more: no waiter blocks again until the fetch loop, having looked at
            # how much room is left, rests again. Without this a waiter would go on taking
            # jobs while the processors are busy, keeping them from idle processes.
            self._idle.clear()
            if self._quiet.is_set() or name in self.paused:
                # Taken while the process went quiet or the queue was paused: give it
                # straight back, to the front.
                self.outage.retry(functools.partial(self._give_back, source, inflight, payload),
                                  "give back")
                continue
            self._dispatch([(name, bytes(payload))])  # type: ignore[arg-type]
            self._wake.set()

    def _room_left(self) -> bool:
        """Whether this process may take another job now (held below the limit, and the
        --max-jobs budget not spent)."""
        with self._room:
            limit, _ = self._limits()
            budget_left = self.budget is None or self._taken < self.budget
            return self._held < limit and budget_left

    def give_back(self, queue: str, payload: bytes, give_up: threading.Event) -> bool:
        """A held job of a queue paused since it was taken: return it to the front of its
        queue instead of running it, and free its slot. False if ``give_up`` (a forced
        shutdown) was set first: the job then stays in-flight, for the requeue."""
        source, inflight = self._keys_for(queue)
        done = self.outage.retry(functools.partial(self._give_back, source, inflight, payload),
                                 "give back", give_up)
        self.release(queue, payload)
        return done is not None

    def _give_back(self, source: str, inflight: str, payload: Any) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(source, payload)
        pipe.lrem(inflight, -1, payload)
        pipe.execute()
        return True

    def _dispatch(self, units: list[Unit]) -> None:
        with self._room:
            self._held += len(units)
            self._taken += len(units)
            self._holding.update(units)
        for unit in units:
            self.work.put(unit)

    # -- finishing jobs ----------------------------------------------------------------------
    def done(self, queue: str, payload: bytes, seconds: float = 0.0, held: bool = True
             ) -> None:
        """A processor has finished with a job (any recognised outcome): ack it. ``held``:
        False for a job handed to the event loop (:meth:`detach`), which no longer counts
        against the threads' limit nor in their average run time."""
        with self._room:
            first = not self._acks
            if first:
                self._ack_due = time.monotonic() + ACK_DELAY
            self._acks.append((queue, payload))
            self._forget((queue, payload))
            if held:
                self._held -= 1
                # An exponential moving average over roughly the last 20 jobs.
                self._job_seconds += (seconds - self._job_seconds) * 0.05
            # Wake the loop only when it has something new to do: the low-water mark is
            # reached, or the first pending ack sets a deadline it must learn about.
            if first or self._held <= self._low:
                self._room.notify()
        if self._idle.is_set():
            self._wake.set()

    def release(self, queue: str, payload: bytes, held: bool = True) -> None:
        """A held job will not be processed here (shutdown): free its slot without an ack."""
        with self._room:
            if held:
                self._held -= 1
            self._forget((queue, payload))

    def detach(self) -> None:
        """A held job was handed to the event loop (an async job): it no longer takes one of
        the threads' places, so the fetcher may take another job for them. It stays in
        :attr:`_holding` (and in-flight) until :meth:`done` or :meth:`release` with
        ``held=False``; the event loop's own slots bound how many such jobs there are."""
        with self._room:
            self._held -= 1
            if self._held <= self._low:
                self._room.notify()

    def _forget(self, unit: Unit) -> None:
        count = self._holding[unit] - 1
        if count > 0:
            self._holding[unit] = count
        else:
            del self._holding[unit]

    # -- shutdown ----------------------------------------------------------------------------
    def requeue(self) -> int:
        """Push every job still in this process's in-flight lists back to the front of its
        queue. Returns how many moved."""
        keys: list[str] = []
        for name in sorted(self.fetched_from):
            source, inflight = self._keys_for(name)
            keys += [inflight, source]
        if self.keys.cluster:  # one queue (one slot) per call
            return sum(int(self.scripts.requeue(keys=keys[i:i + 2], args=[]))
                       for i in range(0, len(keys), 2))
        return int(self.scripts.requeue(keys=keys, args=[]))



def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
