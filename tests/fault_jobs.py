"""Job classes for the fault-injection tests (tests/test_faults.py) and the soak (soak/soak.py).

Each run is recorded in Redis under ``fault:*`` keys, so a test in another process can tell
what ran, how often, where and when. The jobs' own writes wait out a Redis outage (their own
client, with its own retries), so a test of the worker's outage handling is not about the job
failing.

    fault:runs      hash  id -> attempts started (a kill mid-job still counts)
    fault:ok        hash  id -> successful runs
    fault:finished  int   attempts that ended (success or the planned failure)
    fault:failed    int   planned failures
    fault:fin:<pid> zset  one member per attempt that ended in worker <pid>, scored by time
    fault:starts    zset  "<id> <pid> <n>" per attempt started, scored by time (the soak)
"""

from __future__ import annotations

import os
import threading
import time

import redis

import kiqpy

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}
RETRYABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


def r() -> redis.Redis:
    """A client for the Redis this worker uses (the CLI sets REDIS_URL; an embedded worker
    configures kiqpy's default), with a long timeout of its own."""
    url = kiqpy.default_config().redis_url
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(url, socket_timeout=10)
    return client


def resilient(fn, seconds: float = 60.0):
    """Call ``fn(pipe)`` and execute the pipeline, retrying through outages. A retried
    pipeline may have been applied already; the callers' counters tolerate that (they are
    only ever compared with lower bounds or recorded per attempt)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            pipe = r().pipeline(transaction=True)
            fn(pipe)
            return pipe.execute()
        except RETRYABLE:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class PlannedFailure(Exception):
    """The failure a FaultJob is told to have on its first attempt."""


class FaultJob(kiqpy.Worker, name="FaultJob", retry=5):
    """``perform(id, seconds, fail_first, retry_in=0)``: records the attempt, sleeps
    ``seconds``, then fails if this is a first attempt and ``fail_first`` (to be retried in
    ``retry_in`` seconds), else records a success. Recording is one MULTI per step, so a
    kill -9 leaves either all or nothing of it."""

    def perform(self, ident: str, seconds: float = 0.0, fail_first: bool = False,
                retry_in: float = 0.0) -> None:
        pid = os.getpid()
        now = time.time()
        resilient(lambda p: (p.hincrby("fault:runs", ident, 1),
                             p.zadd("fault:starts", {f"{ident} {pid} {now!r}": now})))
        if seconds:
            time.sleep(seconds)
        first = "retry_count" not in (kiqpy.current_job() or {})
        failing = fail_first and first
        done = time.time()
        resilient(lambda p: (
            p.incr("fault:finished"),
            p.zadd(f"fault:fin:{pid}", {f"{ident} {done!r}": done}),
            p.incr("fault:failed") if failing else p.hincrby("fault:ok", ident, 1)))
        if failing:
            raise PlannedFailure(f"planned first failure of {ident}")

    def kiqpy_retry_in(self, count, exc, job):
        # retry_in, or at once: the retry is due at the scheduler's next poll
        args = job.get("args") or []
        return float(args[3]) if len(args) > 3 else 0


class Hold(kiqpy.Worker, name="Hold"):
    """``perform(seconds, *anything)``: sleeps, touching nothing else (its args may be
    whatever a test wants a worker to carry around), then INCRs ``fault:held``."""

    def perform(self, seconds, *anything):
        time.sleep(seconds)
        resilient(lambda p: p.incr("fault:held"))


class Nap(kiqpy.Worker, name="Nap"):
    """``perform(id, seconds)``: adds ``id`` to the set ``fault:napped``, then sleeps. Touches
    Redis only when it starts, so a job that ends while Redis stalls does not wait for it."""

    def perform(self, ident, seconds):
        resilient(lambda p: p.sadd("fault:napped", ident))
        time.sleep(seconds)
