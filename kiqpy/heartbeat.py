"""The process registry: who is running, what they are doing, how many jobs they have done.

Every ``heartbeat_interval`` seconds a worker writes, in one pipeline: its identity in
``processes``, its hash (info, busy, beat, quiet, rss, rtt_us) with a ``process_ttl`` expiry,
the jobs it is running in ``<identity>:work``, its queues in ``kiqpy:inflight-owners`` (for
orphan recovery), the processed/failed counters (total and daily), and it reads remote signals
from ``<identity>-signals``. Then it runs orphan recovery.
"""

from __future__ import annotations

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

from kiqpy.config import Config
from kiqpy.connection import REDIS_DOWN
from kiqpy.fetch import Fetcher
from kiqpy.keys import Keys
from kiqpy.manager import Manager
from kiqpy.outage import Outage
from kiqpy.recovery import Recovery

DAILY_STATS_TTL = 5 * 365 * 24 * 3600
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
                 on_signal: Callable[[str], None], stop: threading.Event) -> None:
        self.config, self.redis, self.keys, self.identity = config, client, keys, identity
        self.manager, self.fetcher, self.outage, self.log = manager, fetcher, outage, log
        self.on_signal, self.stop = on_signal, stop
        self.recovery = Recovery(config, client, keys, identity, outage, log)
        self.quiet = False
        self.rtt_us = 0
        # beat() runs in the heartbeat thread and clear() in the launcher's, which does not
        # join that thread first: the lock keeps a beat's counts from being flushed twice,
        # and `left` keeps a late beat from registering the process again after clear().
        self._lock = threading.Lock()
        self.left = False
        self.last_beat: float | None = None  # monotonic time of the last successful beat
        self.started_at = time.time()
        self.info = json.dumps({
            "hostname": socket.gethostname(), "pid": os.getpid(), "tag": config.tag,
            "queues": config.queue_names, "weights": [dict(config.queues)],
            "concurrency": config.concurrency, "started_at": self.started_at,
            "identity": identity, "version": _version(), "labels": [],
        })

    def run(self) -> None:
        while not self.stop.wait(self.config.heartbeat_interval * random.uniform(0.9, 1.1)):
            try:
                self.beat()
                self.recovery.check()
            except REDIS_DOWN as exc:
                self.outage.failed(exc, "heartbeat")
            else:
                self.outage.ok()

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
        delta = self.manager.take_counts()
        busy = self.manager.snapshot()
        ttl = max(1, int(self.config.process_ttl))
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(self.keys.processes, self.identity)
        pipe.hset(self.keys.inflight_owners, self.identity,
                  json.dumps(sorted(self.fetcher.fetched_from)))
        pipe.hset(self.keys.process(self.identity), mapping={
            "info": self.info, "busy": len(busy), "beat": time.time(),
            "quiet": "true" if self.quiet else "false", "rss": rss_kb(),
            "rtt_us": self.rtt_us})
        pipe.expire(self.keys.process(self.identity), ttl)
        work = self.keys.work(self.identity)
        pipe.delete(work)
        if busy:
            pipe.hset(work, mapping={thread: json.dumps(
                {"queue": q, "payload": job, "run_at": started}, default=repr)
                for thread, (q, job, started) in busy.items()})
            pipe.expire(work, ttl)
        self._add_counts(pipe, delta)
        pipe.rpop(self.keys.signals(self.identity), 10)
        started = time.perf_counter()
        results = pipe.execute()
        self.rtt_us = int((time.perf_counter() - started) * 1e6)
        self.last_beat = time.monotonic()
        self.manager.commit_counts(delta)
        commands = []
        for raw in results[-1] or []:
            command = SIGNALS.get(raw.decode(errors="replace"))
            if command is None:
                self.log.warning("unknown remote signal ignored", signal=raw)
            else:
                commands.append(command)
        return commands

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
            delta = self.manager.take_counts()
            pipe = self.redis.pipeline(transaction=False)
            self._add_counts(pipe, delta)
            pipe.srem(self.keys.processes, self.identity)
            pipe.delete(self.keys.process(self.identity), self.keys.work(self.identity),
                        self.keys.signals(self.identity))
            pipe.execute()
            self.manager.commit_counts(delta)
            self.left = True


def _version() -> str:
    from kiqpy import __version__

    return __version__
