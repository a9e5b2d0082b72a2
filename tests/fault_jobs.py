"""Job classes for the fault-injection tests (tests/test_faults.py) and the soak (soak/soak.py).

Each run is recorded in Redis under ``fault:*`` keys, so a test in another process can tell
what ran, how often, where and when. The jobs' own writes wait out a Redis outage (their own
client, with its own retries), so a test of the worker's outage handling is not about the job
failing. A write retried after a lost reply may have been applied already, so every record
of an attempt carries that attempt's own token and is idempotent: counts are exact.

    fault:starts    zset  "<id> <pid> <token>" per attempt started, scored by time
    fault:ok        hash  id -> "1" once the job has succeeded
    fault:oks       set   "<id> <token>" per successful attempt
    fault:fails     set   "<id> <token>" per planned failure
    fault:fin:<pid> zset  "<id> <token>" per attempt that ended in worker <pid>, by time
"""

from __future__ import annotations

import collections
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
        pid, token = os.getpid(), os.urandom(6).hex()
        attempt = f"{ident} {token}"
        now = time.time()
        resilient(lambda p: p.zadd("fault:starts", {f"{ident} {pid} {token}": now}))
        if seconds:
            time.sleep(seconds)
        first = "retry_count" not in (kiqpy.current_job() or {})
        failing = fail_first and first
        done = time.time()
        resilient(lambda p: (
            p.zadd(f"fault:fin:{pid}", {attempt: done}),
            p.sadd("fault:fails", attempt) if failing
            else (p.sadd("fault:oks", attempt), p.hset("fault:ok", ident, 1))))
        if failing:
            raise PlannedFailure(f"planned first failure of {ident}")

    def kiqpy_retry_in(self, count, exc, job):
        # retry_in, or at once: the retry is due at the scheduler's next poll
        args = job.get("args") or []
        return float(args[3]) if len(args) > 3 else 0


def successes(client: redis.Redis) -> collections.Counter[str]:
    """id -> successful attempts."""
    return collections.Counter(m.split()[0].decode() for m in client.smembers("fault:oks"))


def starts(client: redis.Redis) -> collections.Counter[str]:
    """id -> attempts started (a kill mid-job still counts)."""
    return collections.Counter(m.split()[0].decode() for m in client.zrange("fault:starts", 0, -1))


def finished(client: redis.Redis) -> dict[int, int]:
    """worker pid -> attempts that ended there (success or the planned failure)."""
    return {int(key.split(b":")[-1]): int(client.zcard(key))
            for key in client.scan_iter(match="fault:fin:*")}


def failures(client: redis.Redis) -> int:
    return int(client.scard("fault:fails"))


class Hold(kiqpy.Worker, name="Hold"):
    """``perform(seconds, *anything)``: sleeps, touching nothing else (its args may be
    whatever a test wants a worker to carry around), then INCRs ``fault:held``."""

    def perform(self, seconds, *anything):
        time.sleep(seconds)
        resilient(lambda p: p.incr("fault:held"))


class Nap(kiqpy.Worker, name="Nap"):
    """``perform(id, seconds)``: adds ``id`` to the set ``fault:napped`` and counts the run in
    the hash ``fault:naps``, then sleeps. Touches Redis only when it starts, so a job that
    ends while Redis is away does not wait for it."""

    def perform(self, ident, seconds):
        resilient(lambda p: (p.sadd("fault:napped", ident), p.hincrby("fault:naps", ident, 1)))
        time.sleep(seconds)
