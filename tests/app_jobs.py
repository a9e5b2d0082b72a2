"""Job classes for worker tests. Each records what it did in Redis (so the test, in another
process, can see it) under keys prefixed ``test:``."""

from __future__ import annotations

import os
import time

import redis

import kiqpy
from tests.job_redis import r


class Record(kiqpy.Worker, name="Record"):
    """Appends its args (as repr) to the list ``test:ran``."""

    def perform(self, *args):
        r().rpush("test:ran", repr(args))
        r().rpush("test:jids", self.jid)


class Count(kiqpy.Worker, name="Count"):
    """INCRs ``test:count`` and records its first arg in the set ``test:seen``."""

    def perform(self, n):
        pipe = r().pipeline(transaction=False)
        pipe.incr("test:count")
        pipe.sadd("test:seen", n)
        pipe.execute()


class Sleepy(kiqpy.Worker, name="Sleepy"):
    """Marks ``test:started:<tag>``, sleeps, then marks ``test:finished:<tag>``."""

    def perform(self, tag, seconds):
        r().set(f"test:started:{tag}", os.getpid())
        r().incr(f"test:starts:{tag}")
        time.sleep(seconds)
        r().set(f"test:finished:{tag}", os.getpid())


class Fail(kiqpy.Worker, name="Fail", retry=2):
    """Always fails."""

    def perform(self, message="boom"):
        r().incr("test:fail_attempts")
        raise ValueError(message)


class FailFast(kiqpy.Worker, name="FailFast", retry=2):
    """Always fails, and retries at once (``kiqpy_retry_in`` -> 0) so a worker test can see
    it exhaust its retries in a second; records its jid in ``test:exhausted`` at the end."""

    def perform(self, message="boom"):
        r().incr("test:failfast_attempts")
        raise ValueError(message)

    def kiqpy_retry_in(self, count, exc, job):
        return 0

    def kiqpy_retries_exhausted(self, job, exc):
        r().rpush("test:exhausted", job["jid"])


class Stamp(kiqpy.Worker, name="Stamp"):
    """Pushes ``"<tag> <epoch seconds>"`` onto ``test:stamps`` when it runs."""

    def perform(self, tag):
        r().rpush("test:stamps", f"{tag} {time.time()!r}")


class SleepFirst(kiqpy.Worker, name="SleepFirst"):
    """Counts runs in ``test:starts:<tag>``; the first run sleeps ``seconds`` (long enough to be
    killed mid-job), later runs return at once. Marks ``test:finished:<tag>`` when done."""

    def perform(self, tag, seconds):
        if r().incr(f"test:starts:{tag}") == 1:
            time.sleep(seconds)
        r().set(f"test:finished:{tag}", os.getpid())


# -- for test_processing / test_shutdown ------------------------------------------------------
class MiddlewareTrace(kiqpy.Worker, name="MiddlewareTrace"):
    """Appends ``perform:<tag>`` to ``test:trace``; tests/app_middleware.py adds the rest."""

    def perform(self, tag):
        r().rpush("test:trace", f"perform:{tag}")


class WhoAmI(kiqpy.Worker, name="WhoAmI"):
    """Pushes ``{"job": kiqpy.current_job(), "jid": self.jid}`` as JSON onto ``test:current``."""

    def perform(self, *args):
        import json

        r().rpush("test:current", json.dumps({"job": kiqpy.current_job(), "jid": self.jid},
                                             default=repr))


class Tracked(kiqpy.Worker, name="Tracked"):
    """Adds ``n`` to the set ``test:began``, sleeps, then adds it to the set ``test:seen``."""

    def perform(self, n, seconds):
        r().sadd("test:began", n)
        time.sleep(seconds)
        r().sadd("test:seen", n)


class Resilient(kiqpy.Worker, name="Resilient"):
    """Adds ``n`` to the set ``test:seen``, retrying its own write through a Redis outage (so
    a test of the worker's outage handling is not about this job failing)."""

    def perform(self, n):
        deadline = time.monotonic() + 30
        while True:
            try:
                r().sadd("test:seen", n)
                return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


class AsyncAfterTheFact(kiqpy.Worker, name="AsyncAfterTheFact", retry=1):
    """A plain class whose perform is swapped for an ``async def`` after definition, so the
    class check cannot see it: the worker must fail the job, never count it as done."""


async def _async_perform(self, tag):
    r().rpush("test:ran", tag)  # never reached: the coroutine is not awaited


AsyncAfterTheFact.perform = _async_perform  # type: ignore[method-assign]
