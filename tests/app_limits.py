"""Job classes for the limiter and queue-pause worker tests. Each records what it did in Redis
(so the test, in another process, can see it) under keys prefixed ``test:``."""

from __future__ import annotations

import json
import os
import time

import kiqpy
from kiqpy import limiter
from tests.job_redis import r


def redis_now() -> float:
    seconds, micros = r().time()
    return seconds + micros / 1e6


class Overlap(kiqpy.Worker, name="Overlap"):
    """Holds a slot of ``limiter.concurrent("x", 3)`` for ``seconds``; records how many were
    inside at once (``test:levels``) and its jid (``test:done``, a list: duplicates show)."""

    def perform(self, seconds):
        with limiter.concurrent("x", 3, wait_timeout=5).within_limit():
            level = r().incr("test:inside")
            r().rpush("test:levels", level)
            time.sleep(seconds)
            r().decr("test:inside")
        r().rpush("test:done", self.jid)


LIMITERS = {
    "bucket": lambda: limiter.bucket("b", 5, "second"),
    "window": lambda: limiter.window("w", 5, 1),
    "leaky": lambda: limiter.leaky("l", 5, "second"),
}


class Started(kiqpy.Worker, name="Started"):
    """Starts under the limiter ``kind`` of LIMITERS; records, as JSON on ``test:starts:<kind>``,
    Redis's time before asking and once let in, and its job's retry_count and overrated."""

    def perform(self, kind):
        before = redis_now()
        with LIMITERS[kind]().within_limit():
            after = redis_now()
        job = kiqpy.current_job() or {}
        r().rpush(f"test:starts:{kind}", json.dumps({
            "before": before, "after": after, "jid": self.jid,
            "retry_count": job.get("retry_count"), "overrated": job.get("overrated")}))


class HoldSlot(kiqpy.Worker, name="HoldSlot"):
    """Takes the only slot of ``limiter.concurrent("k", 1, lock_timeout=2)``, says so in
    ``test:holding``, and sleeps long (long enough to be killed holding it)."""

    def perform(self):
        with limiter.concurrent("k", 1, wait_timeout=0, lock_timeout=2).within_limit():
            r().set("test:holding", os.getpid())
            time.sleep(60)


class AlwaysFull(kiqpy.Worker, name="AlwaysFull", retry=1):
    """Asks ``limiter.window("full", 1, 600)``, which the test fills first; counts its tries."""

    def perform(self):
        r().incr("test:full_tries")
        with limiter.window("full", 1, 600).within_limit():
            r().incr("test:full_ran")


class Paced(kiqpy.Worker, name="Paced"):
    """Records Redis's time and its arg as JSON on ``test:paced:<queue>`` when it starts,
    then works ``seconds``; adds its arg to ``test:paced_done`` (a list: duplicates show)."""

    def perform(self, n, seconds):
        job = kiqpy.current_job() or {}
        queue = job.get("queue", "?")
        r().rpush(f"test:paced:{queue}", json.dumps({"n": n, "at": redis_now()}))
        time.sleep(seconds)
        r().rpush("test:paced_done", f"{queue}:{n}")


class LimitedTwo(kiqpy.Worker, name="LimitedTwo", concurrency_limit=2):
    """At most 2 at once (concurrency_limit=2): records how many ran together on
    ``test:limited_levels`` and its jid on ``test:limited_done``."""

    def perform(self, seconds):
        level = r().incr("test:limited_inside")
        r().rpush("test:limited_levels", level)
        time.sleep(seconds)
        r().decr("test:limited_inside")
        r().rpush("test:limited_done", self.jid)


class Flood(kiqpy.Worker, name="Flood"):
    """A short job of another class; adds its arg to ``test:flood`` when done."""

    def perform(self, n, seconds):
        time.sleep(seconds)
        r().rpush("test:flood", n)


class PerAccount(kiqpy.Worker, name="PerAccount", concurrency_limit=1,
                 concurrency_key=lambda account, seconds: f"acct-{account}"):
    """At most 1 at once per account: records the level inside its account on
    ``test:account_levels`` (``<account>:<level>``) and how many ran at once overall on
    ``test:all_levels``."""

    def perform(self, account, seconds):
        level = r().incr(f"test:inside:{account}")
        overall = r().incr("test:inside_all")
        r().rpush("test:account_levels", f"{account}:{level}")
        r().rpush("test:all_levels", overall)
        time.sleep(seconds)
        r().decr("test:inside_all")
        r().decr(f"test:inside:{account}")
        r().rpush("test:account_done", self.jid)


class LongLimited(kiqpy.Worker, name="LongLimited", concurrency_limit=1):
    """Runs until ``test:long_release`` exists (its slot must outlive its lease meanwhile)."""

    def perform(self):
        r().set("test:long_started", 1)
        while not r().exists("test:long_release"):
            time.sleep(0.02)
        r().rpush("test:long_done", self.jid)
