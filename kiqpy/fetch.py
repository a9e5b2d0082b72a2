"""Reliable fetch: jobs move atomically from their queue to this process's in-flight list and
leave it only when a processor is done with them (ack). Everything else here is about doing that
fast: batched fetches, batched acks, and blocking waits when idle.

    queue:<q> --fetch.lua / BLMOVE--> <identity>:inflight:<q> --ack (LREM)--> gone
                                                              --requeue.lua--> back to queue:<q>
"""

from __future__ import annotations

import contextlib
import queue as _queue
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any

import redis

from kiqpy.config import Config
from kiqpy.connection import REDIS_DOWN
from kiqpy.keys import Keys
from kiqpy.outage import Outage, backoff
from kiqpy.scripts import Scripts

Unit = tuple[str, bytes]  # (queue name, payload exactly as stored in Redis)
STOP: Any = object()  # sentinel put on a work or ack queue to end its reader

# An idle waiter blocks this long in BLMOVE: each queue then costs an idle worker 1/BLOCK
# commands per second, and shutdown waits at most this long for the waiters.
BLOCK_SECONDS = 2.0
# Past this many queues, waiters would hold too many connections; the fetcher polls instead.
MAX_WAITERS = 16
POLL_SECONDS = 0.5


class QueueOrder:
    """The order in which to try queues on each fetch, as Sidekiq does it: no weights -> strict
    order; equal weights -> random order; otherwise a random order biased by weight."""

    def __init__(self, queues: Sequence[tuple[str, int]]) -> None:
        self.names = [name for name, _ in queues]
        weights = [weight for _, weight in queues]
        if not any(weights):
            self.mode = "strict"
        elif len(set(weights)) == 1:
            self.mode = "random"
        else:
            self.mode = "weighted"
        self._expanded = [name for name, weight in queues for _ in range(max(weight, 1))]

    def order(self) -> list[str]:
        if self.mode == "strict":
            return self.names
        if self.mode == "random":
            return random.sample(self.names, len(self.names))
        # A shuffled list holding each name `weight` times, first occurrences kept: a queue of
        # weight 3 comes first three times as often as one of weight 1.
        expanded = random.sample(self._expanded, len(self._expanded))
        return list(dict.fromkeys(expanded))


class Fetcher:
    """Owns the jobs this process has taken but not finished.

    Loop (thread ``kiqpy.fetcher``): while fewer than ``limit`` jobs are held, take up to the
    difference with one call of fetch.lua and put them on :attr:`work` for processors. When the
    queues are empty, waiter threads (``kiqpy.wait-<queue>``, one per queue) block in BLMOVE so an
    idle worker starts a new job within a millisecond of its push.
    Acks (thread ``kiqpy.acker``): :meth:`done` queues an ack; the acker removes finished jobs from
    the in-flight lists in one pipeline per batch, retrying through Redis outages.
    Exits: :meth:`stop` ends fetching and waiting; :meth:`close_acks` flushes acks and ends the
    acker; :meth:`requeue` then returns every job still held to the front of its queue.
    """

    def __init__(self, config: Config, client: redis.Redis, keys: Keys, identity: str,
                 outage: Outage, log: Any, names: Callable[[], Sequence[tuple[str, int]]]
                 | None = None) -> None:
        self.config, self.redis, self.keys, self.identity = config, client, keys, identity
        self.outage, self.log = outage, log
        self.scripts = Scripts(client)
        self._queues_source = names or (lambda: config.queues)
        self.order = QueueOrder(self._queues_source())
        self.limit = config.concurrency + (config.prefetch if config.prefetch >= 0 else 0)
        self.work: _queue.SimpleQueue[Any] = _queue.SimpleQueue()
        self._acks: _queue.SimpleQueue[Any] = _queue.SimpleQueue()
        self._held = 0
        self._room = threading.Condition()
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._wake = threading.Event()
        self._keys: dict[str, tuple[str, str]] = {}
        self._threads: list[threading.Thread] = []
        self._waiters: dict[str, threading.Thread] = {}
        self.fetched_from: set[str] = set(self.order.names)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, spawn: Callable[[str, Callable[[], None]], threading.Thread]) -> None:
        self._spawn = spawn
        self._threads.append(spawn("kiqpy.fetcher", self._fetch_loop))
        self._acker = spawn("kiqpy.acker", self._ack_loop)
        self._sync_waiters()

    def stop(self) -> None:
        """Stop taking jobs (quiet). Jobs already held stay held."""
        self._stopping.set()
        self._wake.set()
        with self._room:
            self._room.notify_all()

    def join(self, timeout: float) -> bool:
        """Wait for the fetcher and waiters to exit; True if they all did."""
        deadline = _deadline(timeout)
        for thread in [*self._threads, *self._waiters.values()]:
            thread.join(max(0.0, deadline()))
        return not any(t.is_alive() for t in [*self._threads, *self._waiters.values()])

    def close_acks(self, timeout: float) -> bool:
        """Flush pending acks and end the acker; True if it finished in time."""
        self._acks.put(STOP)
        self._acker.join(timeout)
        return not self._acker.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- queues ------------------------------------------------------------------------------
    def set_queues(self, queues: Sequence[tuple[str, int]]) -> None:
        """Change the queues to fetch from (for patterns like ``*`` that grow over time)."""
        self.order = QueueOrder(queues)
        self.fetched_from.update(self.order.names)
        self._sync_waiters()

    def _sync_waiters(self) -> None:
        names = self.order.names if len(self.order.names) <= MAX_WAITERS else []
        for name in names:
            if name not in self._waiters and not self._stopping.is_set():
                self._waiters[name] = self._spawn(f"kiqpy.wait-{name}",
                                                  lambda name=name: self._wait_loop(name))

    def _keys_for(self, name: str) -> tuple[str, str]:
        pair = self._keys.get(name)
        if pair is None:
            pair = self._keys[name] = (self.keys.queue(name),
                                       self.keys.inflight(self.identity, name))
        return pair

    # -- taking jobs -------------------------------------------------------------------------
    def _fetch_loop(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            with self._room:
                while self._held >= self.limit and not self._stopping.is_set():
                    self._room.wait(1.0)
                want = self.limit - self._held
            if self._stopping.is_set():
                return
            try:
                units = self._fetch(want)
            except REDIS_DOWN as exc:
                self.outage.failed(exc, "fetch")
                self._stopping.wait(backoff(attempt))
                attempt += 1
                continue
            attempt = 0
            self.outage.ok()
            if units:
                self._dispatch(units)
            else:
                self._rest()

    def _fetch(self, want: int) -> list[Unit]:
        names = self.order.order()
        pairs = [self._keys_for(name) for name in names]
        keys = [pair[0] for pair in pairs] + [pair[1] for pair in pairs]
        flat = self.scripts.fetch(keys=keys, args=[want])
        return [(names[flat[i] - 1], flat[i + 1]) for i in range(0, len(flat), 2)]

    def _rest(self) -> None:
        """The queues were empty: let the waiters block until a job arrives."""
        if not self._waiters:
            self._stopping.wait(POLL_SECONDS * random.uniform(0.8, 1.2))
            return
        self._wake.clear()
        self._idle.set()
        self._wake.wait(BLOCK_SECONDS)
        self._idle.clear()

    def _wait_loop(self, name: str) -> None:
        source, inflight = self._keys_for(name)
        attempt = 0
        while not self._stopping.is_set():
            if not self._idle.wait(1.0) or name not in self.order.names:
                continue
            try:
                payload = self.redis.blmove(source, inflight, BLOCK_SECONDS, "RIGHT", "LEFT")
            except REDIS_DOWN as exc:
                self.outage.failed(exc, "wait")
                self._stopping.wait(backoff(attempt))
                attempt += 1
                continue
            attempt = 0
            if payload is not None:
                # Even when stopping: the job is in-flight now and must reach a processor or
                # the final requeue, which runs only after this thread has exited.
                self._dispatch([(name, payload)])
                self._wake.set()

    def _dispatch(self, units: list[Unit]) -> None:
        with self._room:
            self._held += len(units)
        for unit in units:
            self.work.put(unit)

    # -- finishing jobs ----------------------------------------------------------------------
    def done(self, queue: str, payload: bytes) -> None:
        """A processor has finished with a job (any recognised outcome): ack it."""
        self._acks.put((queue, payload))
        with self._room:
            self._held -= 1
            self._room.notify()

    def release(self) -> None:
        """A held job will not be processed here (shutdown): free its slot without an ack."""
        with self._room:
            self._held -= 1

    def _ack_loop(self) -> None:
        closing = False
        while not closing:
            batch = [self._acks.get()]
            with contextlib.suppress(_queue.Empty):
                while len(batch) < 1000:
                    batch.append(self._acks.get_nowait())
            closing = any(item is STOP for item in batch)
            acks = [item for item in batch if item is not STOP]
            if acks:
                self.outage.retry(lambda acks=acks: self._ack(acks), "ack")

    def _ack(self, acks: list[Unit]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for name, payload in acks:
            # -1: search from the tail, where the oldest (most likely finished) jobs are.
            pipe.lrem(self._keys_for(name)[1], -1, payload)
        pipe.execute()

    # -- shutdown ----------------------------------------------------------------------------
    def requeue(self) -> int:
        """Push every job still in this process's in-flight lists back to the front of its
        queue. Returns how many moved."""
        keys: list[str] = []
        for name in sorted(self.fetched_from):
            source, inflight = self._keys_for(name)
            keys += [inflight, source]
        return int(self.scripts.requeue(keys=keys, args=[]))


def _deadline(timeout: float) -> Callable[[], float]:
    import time

    end = time.monotonic() + timeout
    return lambda: end - time.monotonic()
