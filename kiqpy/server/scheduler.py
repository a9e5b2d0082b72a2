"""The poller that turns due scheduled jobs and due retries into queued jobs."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import redis

from kiqpy.config import Config
from kiqpy.connection import REDIS_DOWN
from kiqpy.errors import PayloadError
from kiqpy.failures import malformed_job, trim_dead
from kiqpy.keys import Keys
from kiqpy.outbox import Outbox
from kiqpy.payload import decode, encode, now_ms, queued_copy
from kiqpy.scripts import Scripts
from kiqpy.server.batches import Outcomes
from kiqpy.server.outage import Outage

BATCH = 100


class Scheduler:
    """Loop (thread ``kiqpy.scheduler``): sleep a randomised interval, then move every due
    member of ``schedule`` and ``retry`` to its queue with schedule.lua (atomic, so each member
    moves exactly once however many processes poll). Members that are not jobs go to the dead
    set with the reason (reroute.lua, once however many pollers see them). Exits when ``stop``
    is set.

    Interval: processes share the work, so each polls on average every ``5 s * processes``
    (``poll_interval_average`` overrides), uniformly spread over [0.5, 1.5] of that, which
    keeps the whole cluster's average near one poll per 5 s without processes in lockstep.

    On Redis Cluster the queues are in other slots than the sets, so due members go through
    the outbox instead (kiqpy/outbox.py: claimed atomically, then pushed), and each poll also
    pushes what a dead poller left there.
    """

    def __init__(self, config: Config, client: redis.Redis, keys: Keys, outage: Outage,
                 log: Any, stop: threading.Event) -> None:
        self.config, self.redis, self.keys = config, client, keys
        self.outage, self.log, self.stop = outage, log, stop
        self.scripts = Scripts(client)
        self.outbox = Outbox(config, client, keys, self.scripts) if keys.cluster else None
        self.processes = 1
        # Batch callbacks whose deliverer died: delivered once their claim ends.
        self.outcomes: Outcomes | None = None

    def run(self) -> None:
        # A random first wait, so processes started together do not poll together.
        self.stop.wait(random.uniform(0, min(self.average(), 5.0)))
        attempt = 0
        while not self.stop.is_set():
            try:
                self.poll()
            except REDIS_DOWN as exc:
                self.outage.failed(exc, "scheduler")
                attempt += 1
            except redis.exceptions.ResponseError as exc:
                # Redis answered but refused (out of memory, read-only replica, a key of the
                # wrong type): not an outage, and no reason to stop the process either.
                self.log.error("redis refused a scheduler command; will try again",
                               error=str(exc))
                attempt += 1
            else:
                self.outage.ok()
                attempt = 0
            self.stop.wait(self.interval() if attempt == 0 else min(self.interval(), 5.0))

    def poll(self) -> int:
        """One poll: move what is due, then count the processes sharing the polling."""
        moved = self.enqueue_due()
        if self.outcomes is None or self.outcomes.redis is not self.redis:
            self.outcomes = Outcomes(self.config, self.redis, self.keys, self.outage,
                                     threading.Event(), self.log)
        self.outcomes.sweep()
        self.processes = max(1, int(self.redis.scard(self.keys.processes)))
        return moved

    def average(self) -> float:
        if self.config.poll_interval_average is not None:
            return self.config.poll_interval_average
        return 5.0 * self.processes

    def interval(self) -> float:
        return self.average() * random.uniform(0.5, 1.5)

    def enqueue_due(self, now: float | None = None) -> int:
        """Move every due job now; returns how many moved."""
        if self.outbox is not None:
            return self._enqueue_due_cluster(now)
        moved_total = 0
        for key in (self.keys.schedule, self.keys.retry):
            while True:
                at = time.time() if now is None else now
                # The enqueued_at the moved jobs get: the client's clock, and its unit: int
                # epoch ms in msgpack; in JSON, float epoch seconds for Sidekiq 6/7.
                moved, looked, unroutable = self.scripts.schedule(
                    keys=[key, self.keys.queues],
                    args=[repr(at), self.keys.queue_prefix, BATCH, now_ms(),
                          repr(self.config.now_stamp("json"))])
                moved_total += int(moved)
                for member in unroutable:
                    moved_total += self._reroute(key, member)
                if int(looked) < BATCH:
                    break
        return moved_total

    def _enqueue_due_cluster(self, now: float | None) -> int:
        assert self.outbox is not None
        moved_total = self.outbox.redrive()
        for key in (self.keys.schedule, self.keys.retry):
            while True:
                at = time.time() if now is None else now
                claimed = self.outbox.claim_due(key, at, BATCH)
                for member in claimed:
                    if self.outbox.deliver(bytes(member), key):
                        moved_total += 1
                    else:
                        self.log.error("malformed payload sent to the dead set", source=key)
                if len(claimed) < BATCH:
                    break
        return moved_total

    def _reroute(self, key: str, member: bytes) -> int:
        """A due member schedule.lua could not route. Python has the last word: a job it can
        read goes to its queue after all (the Lua and Python decoders differ on a few rare
        types), anything else to the dead set with the reason. reroute.lua moves it only if
        it is still in ``key``, so when several pollers see it, it lands once, re-encoded in
        Python (exact) with a fresh ``enqueued_at``. Returns 1 if this call queued it."""
        try:
            job = decode(member)
        except PayloadError as exc:
            reason = str(exc)
        else:
            queue = job["queue"]
            payload = queued_copy(job, member, self.config.sidekiq_version)
            return int(self.scripts.reroute(keys=[key, self.keys.queue(queue), self.keys.queues],
                                            args=[member, "queue", queue, payload]))
        now = time.time()
        entry = encode(malformed_job("unknown", member, f"in {key}: {reason}"))
        if self.scripts.reroute(keys=[key, self.keys.dead, self.keys.queues],
                                args=[member, "dead", entry, repr(now)]):
            self.log.error("malformed payload sent to the dead set", source=key, reason=reason)
            pipe = self.redis.pipeline(transaction=False)
            trim_dead(pipe, self.keys, self.config, now)
            pipe.execute()
        return 0
