"""Orphan recovery: the in-flight jobs of a process that died (kill -9, OOM, lost host) go back
to their queues, and a job that keeps killing its workers goes to the dead set instead.

A process is dead when its heartbeat hash has expired (``process_ttl``, 60 s by default) while
it is still listed in ``kiqpy:inflight-owners``. Any live process may notice; a short lock
makes sure only one recovers at a time, and WATCH makes each list's move all-or-nothing.

On Redis Cluster the in-flight list and its queue share the queue's slot, but the heartbeat hash
and the dead set are in the ``{kiqpy}`` slot: the move WATCHes the in-flight list alone, after
checking the heartbeat, and a poison pill is written to the dead set before the in-flight list
is emptied (so a crash in between leaves it in both: at least once, never lost). A process that
beats again between that check and the move has its jobs queued again while it still runs them.

A poison pill (a job recovered ``poison_pill_recoveries`` times within ``poison_pill_window``)
goes to the dead set, and then, as for any job that dies, the death handlers run with the job
and a :class:`PoisonPill` exception; they run after the move is committed, on the heartbeat
thread of the process that recovered it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis

from kiqpy.config import Config
from kiqpy.errors import PayloadError, PoisonPill
from kiqpy.failures import add_dead, malformed_job
from kiqpy.keys import Keys
from kiqpy.payload import Job, decode, encode, now_ms, serializer_of
from kiqpy.scripts import Scripts
from kiqpy.server.outage import Outage
from kiqpy.server.retry import run_death_handlers

LOCK_MS = 30_000


class Recovery:
    """Finds dead processes and requeues their in-flight jobs. Called from the heartbeat."""

    def __init__(self, config: Config, client: redis.Redis, keys: Keys, identity: str,
                 outage: Outage, log: Any,
                 on_dead: Callable[[Job, BaseException], Any] | None = None) -> None:
        self.config, self.redis, self.keys, self.identity = config, client, keys, identity
        self.outage, self.log = outage, log
        # Told of each poison pill once it is in the dead set: its batch counts a death, a
        # kept result records the failure (kiqpy/server/batches.py Outcomes.failed).
        self.on_dead = on_dead
        self.scripts = Scripts(client)

    def check(self) -> int:
        """Recover every dead process found; returns how many jobs went back to queues."""
        # Right after an outage, live processes have not re-written their expired heartbeat
        # hashes yet; wait two beats so they are not mistaken for dead ones.
        if not self.outage.settled(2 * self.config.heartbeat_interval):
            return 0
        owners = {_text(k): v for k, v in self.redis.hgetall(self.keys.inflight_owners).items()}
        others = [o for o in owners if o != self.identity]
        if not others:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for other in others:
            pipe.exists(self.keys.process(other))
        dead = [o for o, alive in zip(others, pipe.execute(), strict=True) if not alive]
        if not dead:
            return 0
        token = f"{self.identity}:{time.time()}"
        if not self.redis.set(self.keys.recovery_lock, token, nx=True, px=LOCK_MS):
            return 0
        try:
            return sum(self.recover(o, _queues(owners[o])) for o in dead)
        finally:
            self.scripts.unlock(keys=[self.keys.recovery_lock], args=[token])

    def recover(self, identity: str, queues: list[str]) -> int:
        """Move ``identity``'s in-flight jobs back to the front of their queues, then forget
        it. Leaves everything alone once its heartbeat hash exists again (it was only stalled):
        each move WATCHes that hash, so a beat in the middle aborts it."""
        names = set(queues) | {_text(q) for q in self.redis.smembers(self.keys.queues)}
        moved = 0
        for name in sorted(names):
            count = self._recover_list(identity, name)
            if count is None:
                return moved
            moved += count
        if moved:
            self.log.warning("recovered jobs of a dead process", process=identity, jobs=moved)

        def forget(pipe: Any) -> None:
            if pipe.exists(self.keys.process(identity)):
                return
            pipe.multi()
            pipe.hdel(self.keys.inflight_owners, identity)
            pipe.srem(self.keys.processes, identity)
            pipe.delete(self.keys.work(identity), self.keys.workers(identity))

        self.redis.transaction(forget, self.keys.process(identity))
        return moved

    def _recover_list(self, identity: str, name: str) -> int | None:
        """Move one in-flight list; returns how many jobs were queued, or None if the process
        is alive."""
        inflight, queue = self.keys.inflight(identity, name), self.keys.queue(name)
        heartbeat = self.keys.process(identity)
        counted: int | None = 0
        pills: list[Job] = []
        if self.keys.cluster:
            counted = self._move_cluster(name, inflight, queue, heartbeat, pills)
            self._report(pills)
            return counted

        def move(pipe: Any) -> None:
            nonlocal counted
            pills.clear()  # a WATCH conflict runs this again from the start
            if pipe.exists(heartbeat):
                counted = None
                return
            payloads = pipe.lrange(inflight, 0, -1)
            pipe.multi()
            counted = 0
            # LRANGE lists newest first; RPUSH in that order leaves the oldest at the front.
            for payload in payloads:
                if self._requeue_one(pipe, name, queue, payload, pills):
                    counted += 1
            if counted:
                # The queue may have been cleared (and forgotten) meanwhile: workers that
                # listen by pattern (-q '*') find queues through this set.
                pipe.sadd(self.keys.queues, name)
            pipe.delete(inflight)

        self.redis.transaction(move, inflight, heartbeat)
        self._report(pills)
        return counted

    def _move_cluster(self, name: str, inflight: str, queue: str, heartbeat: str,
                      pills: list[Job]) -> int | None:
        """:meth:`_recover_list`'s move on Redis Cluster (see the module docstring)."""
        if self.redis.exists(heartbeat):
            return None
        counted = 0

        def move(pipe: Any) -> None:
            nonlocal counted
            pills.clear()
            payloads = pipe.lrange(inflight, 0, -1)
            dead = self.redis.pipeline(transaction=True)  # the {kiqpy} slot
            pipe.multi()
            counted = 0
            for payload in payloads:
                if self._requeue_one(pipe, name, queue, payload, pills, dead):
                    counted += 1
            if len(dead):
                dead.execute()  # before the in-flight list goes
            pipe.delete(inflight)

        self.redis.transaction(move, inflight)
        if counted:
            self.redis.sadd(self.keys.queues, name)
        return counted

    def _report(self, pills: list[Job]) -> None:
        # Only once the pills are in the dead set for sure: a handler may release a unique
        # lock, and a retried move must not run it twice.
        for job in pills:
            self.log.error("poison pill sent to the dead set", jid=job["jid"],
                           job_class=job["class"])
            error = PoisonPill(job["error_message"])
            run_death_handlers(self.config, self.log, job, error)
            if self.on_dead is not None:
                self.on_dead(job, error)

    def _requeue_one(self, pipe: Any, name: str, queue: str, payload: bytes,
                     pills: list[Job], dead: Any = None) -> bool:
        """Queue on ``pipe`` the requeue of one in-flight payload; a poison pill goes to the
        dead set instead (queued on ``dead`` when given) and is appended to ``pills``. True if
        the job was requeued."""
        dead = pipe if dead is None else dead
        try:
            job = decode(payload)
        except PayloadError as exc:
            add_dead(dead, self.keys, self.config,
                     encode(malformed_job(name, payload, str(exc))))
            return False
        now = now_ms()
        window = self.config.poison_pill_window * 1000
        earlier = job.get("recovered_at")
        history = [t for t in (earlier if isinstance(earlier, list) else [])
                   if type(t) is int and t > now - window]
        history.append(now)
        job["recovered_at"] = history
        if len(history) >= self.config.poison_pill_recoveries:
            job["error_class"] = "kiqpy.PoisonPill"
            job["error_message"] = (
                f"poison pill: the process running this job died {len(history)} times within "
                f"{self.config.poison_pill_window / 3600:g} h; not retried again")
            job["failed_at"] = self.config.now_stamp(serializer_of(payload))
            add_dead(dead, self.keys, self.config, encode(job, serializer_of(payload)))
            pills.append(job)
            return False
        pipe.rpush(queue, encode(job, serializer_of(payload)))
        return True


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _queues(raw: bytes | str | None) -> list[str]:
    try:
        value = json.loads(raw or b"[]")
    except ValueError:
        return []
    return [q for q in value if isinstance(q, str)] if isinstance(value, list) else []
