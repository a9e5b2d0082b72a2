"""The process registry: who is running, what they are doing, how many jobs they have done.

Every ``heartbeat_interval`` seconds a worker writes, in one MULTI: its identity in
``processes``, its hash (info, busy, beat, quiet, rss, rtt_us, and ``flushed``: the counts
already added to the counters) with a ``process_ttl`` expiry, the jobs it is running in
``<identity>:work``, its queues in ``kiqpy:inflight-owners`` (for orphan recovery), the
processed/failed counters (total and daily), and it reads remote signals from
``<identity>-signals``. Then it runs orphan recovery.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from kiqpy.client.execution import is_async
from kiqpy.client.registry import registered
from kiqpy.config import Config
from kiqpy.connection import REDIS_DOWN, describe, master_address
from kiqpy.keys import Keys
from kiqpy.server.events import fire
from kiqpy.server.fetch import Fetcher
from kiqpy.server.manager import Manager
from kiqpy.server.metrics import MetricsWriter
from kiqpy.server.outage import Outage
from kiqpy.server.recovery import Recovery

DAILY_STATS_TTL = 5 * 365 * 24 * 3600
# The process hash field holding the counts already added to the counters (see _counted).
FLUSHED = "flushed"
# A running job's entry in the work hash larger than this shows its args shortened: the Busy
# page needs the class and jid, not megabytes rewritten at every beat.
WORK_ARGS_MAX = 64 * 1024
WATCH_ATTEMPTS = 5
SIGNALS = {"TSTP": "quiet", "quiet": "quiet", "TERM": "stop", "stop": "stop",
           "TTIN": "dump", "dump": "dump"}


def new_identity() -> str:
    """``host:pid:nonce``, unique across restarts of the same pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(6).hex()}"


def process_rss_kb(pid: int | str = "self") -> int:
    """Resident memory of process ``pid`` in KiB (0 where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        if pid != "self":
            return 0
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def rss_kb() -> int:
    """This process's resident memory in KiB."""
    return process_rss_kb("self")


class Heartbeat:
    """Loop (thread ``kiqpy.heartbeat``): :meth:`beat` every ``heartbeat_interval`` (+-10 %
    jitter, so many processes started together spread their writes), then orphan recovery.
    Remote signals are handed to ``on_signal`` ("quiet", "stop" or "dump"). Exits when ``stop``
    is set; :meth:`clear` then removes the process from Redis."""

    def __init__(self, config: Config, client: redis.Redis, keys: Keys, identity: str,
                 manager: Manager, fetcher: Fetcher, outage: Outage, log: Any,
                 on_signal: Callable[[str], None], stop: threading.Event,
                 on_dead: Callable[[dict[str, Any], BaseException], Any] | None = None) -> None:
        self.config, self.redis, self.keys, self.identity = config, client, keys, identity
        self.manager, self.fetcher, self.outage, self.log = manager, fetcher, outage, log
        self.on_signal, self.stop = on_signal, stop
        self.recovery = Recovery(config, client, keys, identity, outage, log, on_dead)
        self.metrics = MetricsWriter(config, client, keys,
                                     manager.recorders(), log)
        self.quiet = False
        self.rtt_us = 0
        # beat() runs in the heartbeat thread and clear() in the launcher's, which does not
        # join that thread first: the lock keeps a beat's counts from being flushed twice,
        # and `left` keeps a late beat from registering the process again after clear().
        self._lock = threading.Lock()
        self.left = False
        self.last_beat: float | None = None  # monotonic time of the last successful beat
        self._flushed = (0, 0)  # (processed, failed) known to be in the counters
        self.started_at = time.time()
        self._info: tuple[list[tuple[str, int]], str] | None = None
        self._master: tuple[str, int] | None = None  # on Sentinel: the master last seen
        # id(job map) -> (the map, its work entry): a running job is encoded once
        self._entries: dict[int, tuple[dict[str, Any], str]] = {}

    @property
    def info(self) -> str:
        """The process's info JSON; its queues are the ones actually listened to (patterns
        like ``*`` resolved), so it is rebuilt when they change."""
        queues = list(zip(self.fetcher.order.names, self.fetcher.order.weights, strict=True))
        if self._info is None or self._info[0] != queues:
            # Every field Sidekiq's readers use: 6.x (queues, concurrency), 7.x (weights as a
            # list of one map per capsule, version, embedded), 8.x (capsules; 8.1 reads
            # concurrency from the hash itself, written by _beat).
            weights = dict(queues)
            self._info = (queues, json.dumps({
                "hostname": socket.gethostname(), "pid": os.getpid(), "tag": self.config.tag,
                "queues": [q for q, _ in queues], "weights": [weights],
                "capsules": {"default": {"concurrency": self.config.concurrency,
                                         "mode": _mode(weights), "weights": weights}},
                "concurrency": self.config.concurrency,
                # kiqpy's own: slots for async jobs on the loop thread, besides the threads
                # (0 while the app has no async job class, so the Busy page leaves it out)
                "async_concurrency": self.config.async_concurrency if any(
                    is_async(cls) for cls in registered().values()) else 0,
                "started_at": self.started_at,
                "identity": self.identity, "version": _version(), "labels": [],
                "embedded": False,
            }))
        return self._info[1]

    def _work_key(self) -> str:
        # Sidekiq 6 reads the running jobs from `<identity>:workers`, 7 and 8 from `:work`;
        # kiqpy's own readers take both.
        if self.config.sidekiq_version == "6":
            return self.keys.workers(self.identity)
        return self.keys.work(self.identity)

    def _work_entry(self, queue: str, job: dict[str, Any], started: float) -> str:
        """One running job as Sidekiq stores it, encoded once per job (a long job is written
        again at every beat); args past ``WORK_ARGS_MAX`` bytes are shown shortened."""
        cached = self._entries.get(id(job))
        if cached is not None and cached[0] is job:
            return cached[1]
        entry = self._encode_work_entry(queue, job, started)
        if len(entry) > WORK_ARGS_MAX:
            short = {**job, "args": [f"({len(entry):,} bytes of args, not shown)"]}
            entry = self._encode_work_entry(queue, short, started)
        self._entries[id(job)] = (job, entry)
        return entry

    def _encode_work_entry(self, queue: str, job: dict[str, Any], started: float) -> str:
        """For Sidekiq 6 exactly as it stores it: the payload as a JSON string and ``run_at``
        in whole epoch seconds (7 and 8 also read the object)."""
        if self.config.sidekiq_version == "6":
            return json.dumps({"queue": queue, "payload": json.dumps(job, default=repr),
                               "run_at": int(started)})
        return json.dumps({"queue": queue, "payload": job, "run_at": started}, default=repr)

    def run(self) -> None:
        with contextlib.suppress(*REDIS_DOWN, redis.exceptions.RedisError):
            self._watch_master()  # the master at start, so a failover later is noticed
        while not self.stop.wait(self.config.heartbeat_interval * random.uniform(0.9, 1.1)):
            try:
                self.beat()
                self.recovery.check()
                self._watch_master()
            except REDIS_DOWN as exc:
                self.outage.failed(exc, "heartbeat")
            except redis.exceptions.ResponseError as exc:
                # Refused (out of memory, read-only replica...): log it, beat again next time.
                self.log.error("redis refused the heartbeat; will try again", error=str(exc))
            else:
                self.outage.ok()
                self.metrics.flush()
                fire(self.config, self.log, "beat")
            finally:
                self._renew_slots()  # every beat, even one whose other steps failed

    def _renew_slots(self) -> None:
        """Extend the concurrency_limit slots of the running jobs (one script call each), so
        a job runs as long as it needs while a killed process's slots still run out."""
        for slot in self.manager.held_slots():
            try:
                if not slot.renew(self.redis):
                    self.log.warning("a concurrency_limit slot ran out before it was renewed; "
                                     "its class may briefly run over its limit", limiter=slot.key)
            except (*REDIS_DOWN, redis.exceptions.RedisError) as exc:
                self.log.warning("could not renew a concurrency_limit slot", error=str(exc))
                return

    def _watch_master(self) -> None:
        """On Sentinel: log once when the master changed (a failover), with both addresses.
        The connections follow the new master by themselves; this says that it happened."""
        address = master_address(self.redis)
        if address is None or address == self._master:
            return
        if self._master is not None:
            self.log.warning("redis failover: a new master", service_url=describe(self.redis),
                             old=f"{self._master[0]}:{self._master[1]}",
                             new=f"{address[0]}:{address[1]}")
        self._master = address

    def beat(self) -> None:
        """One heartbeat: write state and counters, read signals. Does nothing after
        :meth:`clear`."""
        with self._lock:
            if self.left:
                return
            commands = self._beat()
        for command in commands:
            self.on_signal(command)

    def _beat(self) -> list[str]:
        busy = self.manager.snapshot()
        ttl = max(1, int(self.config.process_ttl))
        state = {"info": self.info, "concurrency": self.config.concurrency,
                 "busy": len(busy), "beat": time.time(),
                 "quiet": "true" if self.quiet else "false", "rss": rss_kb(),
                 "rtt_us": self.rtt_us}
        work = self._work_key()
        running = {thread: self._work_entry(q, job, started)
                   for thread, (q, job, started) in busy.items()}
        # Keep the encodings of the jobs still running only.
        self._entries = {id(job): self._entries[id(job)] for _, job, _ in busy.values()
                         if id(job) in self._entries}

        def write(pipe: Any, delta: tuple[int, int], flushed: str) -> None:
            pipe.sadd(self.keys.processes, self.identity)
            pipe.hset(self.keys.inflight_owners, self.identity,
                      json.dumps(sorted(self.fetcher.fetched_from)))
            pipe.hset(self.keys.process(self.identity), mapping={**state, FLUSHED: flushed})
            pipe.expire(self.keys.process(self.identity), ttl)
            pipe.delete(work)
            if running:
                pipe.hset(work, mapping=running)
                pipe.expire(work, ttl)
            self._add_counts(pipe, delta)
            pipe.rpop(self.keys.signals(self.identity), 10)

        started = time.perf_counter()
        results = self._counted(write)
        self.rtt_us = int((time.perf_counter() - started) * 1e6)
        self.last_beat = time.monotonic()
        commands = []
        for raw in results[-1] or []:
            command = SIGNALS.get(raw.decode(errors="replace"))
            if command is None:
                self.log.warning("unknown remote signal ignored", signal=raw)
            else:
                commands.append(command)
        return commands

    def _counted(self, write: Callable[[Any, tuple[int, int], str], None]) -> list[Any]:
        """Run ``write(pipe, delta, flushed)`` in a MULTI that adds to the counters exactly
        what Redis has not counted yet, and returns its results.

        Why not just INCRBY what was done since the last beat: when a beat times out, Redis
        may still run it (its commands sat in a socket buffer while Redis stalled, and
        redis-py re-sends a command that timed out), so "not acknowledged" does not mean
        "not applied". The process hash therefore records the totals applied (field
        ``flushed``), written in the same MULTI as the INCRBYs; each beat WATCHes the hash,
        reads them and adds only the difference. A late copy of an earlier beat then either
        ran before the read (and is seen) or changes the hash (and this MULTI is retried).
        Without the field (first beat, or the hash expired in a long outage) the process's
        own record is trusted."""
        key = self.keys.process(self.identity)
        for _ in range(WATCH_ATTEMPTS):
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    totals = self.manager.counts()
                    applied = _totals(pipe.hget(key, FLUSHED)) or self._flushed
                    pipe.multi()
                    write(pipe, (totals[0] - applied[0], totals[1] - applied[1]),
                          f"{totals[0]} {totals[1]}")
                    results: list[Any] = pipe.execute()
                except redis.WatchError as exc:
                    if isinstance(exc.__context__, REDIS_DOWN):
                        # The connection failed while watching: applied or not, the next
                        # beat reads what Redis has. Reported like any outage.
                        raise redis.ConnectionError(str(exc)) from exc
                    continue  # the hash changed under us: read it again
            self._flushed = totals
            return results
        raise redis.ConnectionError(f"the process hash changed {WATCH_ATTEMPTS} times in a row")

    def _add_counts(self, pipe: Any, delta: tuple[int, int]) -> None:
        today = _dt.datetime.now(_dt.timezone.utc).date()
        for name, count in zip(("processed", "failed"), delta, strict=True):
            if count:
                pipe.incrby(self.keys.stat(name), count)
                pipe.incrby(self.keys.stat(name, today), count)
                pipe.expire(self.keys.stat(name, today), DAILY_STATS_TTL)

    def clear(self) -> None:
        """Flush the last counters and remove this process from the registry (clean exit).
        Later beats do nothing."""
        with self._lock:
            def write(pipe: Any, delta: tuple[int, int], flushed: str) -> None:
                self._add_counts(pipe, delta)
                pipe.srem(self.keys.processes, self.identity)
                pipe.delete(self.keys.process(self.identity), self._work_key(),
                            self.keys.signals(self.identity))

            self._counted(write)
            self.left = True
        self.metrics.flush()  # the last minutes' counts (kept for nobody if Redis is away)


def _totals(raw: bytes | str | None) -> tuple[int, int] | None:
    """The ``flushed`` field: "<processed> <failed>" totals already added to the counters."""
    try:
        processed, failed = (raw or "").split()
        return int(processed), int(failed)
    except ValueError:
        return None


def _mode(weights: dict[str, int]) -> str:
    """Sidekiq's name for a capsule's queue order (Sidekiq::Capsule#queues=)."""
    if all(w == 0 for w in weights.values()):
        return "strict"
    return "random" if all(w == 1 for w in weights.values()) else "weighted"


def _version() -> str:
    from kiqpy.version import __version__

    return __version__
