"""The periodic ticker: enqueues each tick of each periodic entry (:mod:`kiqpy.client.periodic`)
exactly once across every worker process.

Correctness does not rest on the leader: each tick goes through ``periodic_tick.lua``, which
enqueues it only if the entry's ``last`` tick is older, so two processes that both believe they
lead (a partition, a skewed clock) still produce one job per tick. The leader, elected through
Redis with a lease, only saves the others the work. It publishes the schedule it runs (for the
data API and the dashboard), so a deploy that changes or removes an entry changes what is shown.

Leadership: ``SET kiqpy:periodic-leader <identity> NX PX <lease>``, renewed on every pass by
``renew.lua``; released on shutdown or quiet. A process that is not the leader asks again every
``lease / 4`` seconds (with +-10 % jitter), so after a leader dies (kill -9) another takes over
within ``lease * 1.25`` seconds (``Config.periodic_lease``): 25 s with the default 20 s.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from kiqpy.client.build import JobBuilder
from kiqpy.client.periodic import PeriodicEntry, entries
from kiqpy.config import Config
from kiqpy.connection import REDIS_DOWN
from kiqpy.keys import Keys
from kiqpy.outbox import Outbox
from kiqpy.payload import encode
from kiqpy.scripts import Scripts
from kiqpy.server.outage import Outage

#: With catch_up="none", a tick this many seconds late still counts as on time.
ON_TIME_SECONDS = 5.0


class Ticker:
    """Loop (thread ``kiqpy.periodic``): while leader, enqueue every due tick, then sleep until
    the next one (at most a second); otherwise try to become leader every ``lease / 4``. Owns the
    leadership lease and the local copy of each entry's last tick. Exits when ``stop`` is set,
    releasing the lease. Started only when entries are registered."""

    def __init__(self, config: Config, client: redis.Redis, keys: Keys, identity: str,
                 outage: Outage, log: Any, stop: threading.Event,
                 clock: Callable[[], float] = time.time) -> None:
        self.config, self.redis, self.keys, self.identity = config, client, keys, identity
        self.outage, self.log, self.stop, self.clock = outage, log, stop, clock
        self.lease = config.periodic_lease
        self.scripts = Scripts(client)
        self.builder = JobBuilder(config, client)
        self.leading = False
        self.quiet = False
        self._renewed = 0.0
        self._last: dict[str, int] = {}  # entry name -> last tick known enqueued or skipped

    def run(self) -> None:
        while True:
            try:
                wait = self.step()
            except REDIS_DOWN as exc:
                self.outage.failed(exc, "periodic")
                self.leading, wait = False, 1.0
            except redis.exceptions.ResponseError as exc:
                self.log.error("redis refused a periodic command; will try again",
                               error=str(exc))
                self.leading, wait = False, 1.0
            if self.stop.wait(wait):
                break
        self.release()

    def step(self) -> float:
        """One pass: keep or take the lease, and if leading, enqueue what is due. Returns how
        long to sleep."""
        if self.quiet:
            self.release()
            return 1.0
        if not self._lead():
            return self.lease / 4 * random.uniform(0.9, 1.1)
        now = self.clock()
        next_due = now + 1.0
        for entry in entries():
            next_due = min(next_due, self.tick(entry, now))
        return max(0.05, min(1.0, next_due - now))

    # -- leadership ----------------------------------------------------------------------------
    def _lead(self) -> bool:
        ttl_ms = int(self.lease * 1000)
        if self.leading:
            if time.monotonic() - self._renewed < self.lease / 4:
                return True
            if self.scripts.renew(keys=[self.keys.periodic_leader], args=[self.identity, ttl_ms]):
                self._renewed = time.monotonic()
                return True
            self.leading = False
            self.log.warning("periodic leadership lost", identity=self.identity)
        if self.redis.set(self.keys.periodic_leader, self.identity, nx=True, px=ttl_ms):
            self.leading, self._renewed = True, time.monotonic()
            self._last.clear()  # another leader may have moved on meanwhile: read afresh
            self.log.info("periodic leader", identity=self.identity,
                          entries=len(entries()))
            self.publish()
            return True
        return False

    def release(self) -> None:
        """Give up the lease (shutdown, quiet), so another process leads at once."""
        if not self.leading:
            return
        self.leading = False
        try:
            self.scripts.unlock(keys=[self.keys.periodic_leader], args=[self.identity])
        except (*REDIS_DOWN, redis.exceptions.ResponseError):
            pass  # the lease expires by itself

    def publish(self) -> None:
        """Write the schedule this leader runs, and forget entries it no longer has."""
        mine = {entry.name: json.dumps(entry.describe()) for entry in entries()}
        stored = {name.decode() if isinstance(name, bytes) else name
                  for name in self.redis.hkeys(self.keys.periodic_entries)}
        pipe = self.redis.pipeline(transaction=False)
        gone = sorted(stored - set(mine))
        if gone:
            pipe.hdel(self.keys.periodic_entries, *gone)
        if mine:
            pipe.hset(self.keys.periodic_entries, items=[x for pair in mine.items() for x in pair])
        pipe.execute()

    # -- ticks ---------------------------------------------------------------------------------
    def tick(self, entry: PeriodicEntry, now: float) -> float:
        """Enqueue ``entry``'s due ticks by its catch-up rule; returns its next tick's time."""
        last = self._last.get(entry.name)
        if last is None:
            last = self._load(entry, now)
        due = entry.schedule.ticks(last, now)
        if due:
            chosen = set({"all": due, "last": due[-1:],
                          "none": [t for t in due if now - t <= ON_TIME_SECONDS]
                          }[entry.catch_up])
            for tick in due:
                if tick in chosen or tick == due[-1]:
                    self._enqueue(entry, tick, "enqueue" if tick in chosen else "skip")
            self._last[entry.name] = due[-1]
        return float(entry.schedule.next_after(max(now, self._last.get(entry.name, now))))

    def _load(self, entry: PeriodicEntry, now: float) -> int:
        """The entry's last tick from Redis; a new entry, or one whose schedule changed,
        starts now (no ticks from before it existed, none computed from an old schedule)."""
        key = self.keys.periodic(entry.name)
        last, signature = self.redis.hmget(key, ["last", "signature"])
        sig = signature.decode() if isinstance(signature, bytes) else signature
        if last is None or sig != entry.signature:
            start = int(now)
            if last is not None:
                self.log.info("periodic schedule changed; starting afresh", entry=entry.name,
                              schedule=str(entry.schedule))
            self.redis.hset(key, mapping={"last": start, "signature": entry.signature})
            self._last[entry.name] = start
            return start
        self._last[entry.name] = int(float(last))
        return self._last[entry.name]

    def _enqueue(self, entry: PeriodicEntry, tick: int, mode: str) -> None:
        payload, jid, queue = b"", "", "default"
        if mode == "enqueue":
            job = self.builder.build(entry.job, entry.args, entry.options, None,
                                     fields={"periodic": entry.name, "periodic_tick": tick})
            if job is None:  # client middleware stopped it: the tick is consumed
                mode = "skip"
            else:
                job["enqueued_at"] = self.config.now_stamp()
                payload, jid, queue = encode(job, self.config.serializer), job["jid"], job["queue"]
        if self.keys.cluster:
            # The queue is in another slot: the tick puts the job in the outbox, and it is
            # pushed from there (kiqpy/outbox.py; a crash in between is redriven).
            result = self.scripts.periodic_tick(
                keys=[self.keys.periodic(entry.name), self.keys.queues, self.keys.outbox],
                args=[tick, mode, queue, payload, jid, repr(time.time())])
            if result == 1:
                Outbox(self.config, self.redis, self.keys, self.scripts).deliver(payload)
        else:
            result = self.scripts.periodic_tick(
                keys=[self.keys.periodic(entry.name), self.keys.queues, self.keys.queue(queue)],
                args=[tick, mode, queue, payload, jid])
        if result == 1:
            self.log.info("periodic", entry=entry.name, tick=tick, jid=jid, queue=queue)
        elif result == 3:
            self.log.info("periodic entry paused; tick skipped", entry=entry.name, tick=tick)
