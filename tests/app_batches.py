"""Job classes for the batch, workflow and result tests (tests/test_batches.py). Each records
what it did in Redis under keys prefixed ``test:``, so the test process can see it."""

from __future__ import annotations

import asyncio
import json
import os
import time

import kiqpy
from tests.job_redis import r


class Callback(kiqpy.Worker, name="Callback"):
    """A batch callback: appends {event, bid, options, failures, pending} to ``test:callbacks``."""

    def perform(self, status, options):
        r().rpush("test:callbacks", json.dumps({
            "event": status["event"], "bid": status["bid"], "options": options,
            "failures": status["failures"], "pending": status["pending"],
            "ran": int(r().get("test:ran") or 0)}))


class Row(kiqpy.Worker, name="Row"):
    """Counts a run in ``test:ran``; a row listed in ``test:fail-once`` fails its first run and
    is retried at once. ``pause`` seconds of work first."""

    def perform(self, n, pause=0.0):
        if pause:
            time.sleep(pause)
        if r().sismember("test:fail-once", n) and r().sadd("test:failed", n):
            raise RuntimeError(f"row {n} fails once")
        r().incr("test:ran")
        r().sadd("test:rows", n)

    def kiqpy_retry_in(self, count, exc, job):
        return 0


class Dies(kiqpy.Worker, name="Dies", retry=0):
    """Goes to the dead set at its first failure."""

    def perform(self):
        raise RuntimeError("this job dies")


class Adder(kiqpy.Worker, name="Adder"):
    """Adds ``n`` rows to its own batch, from inside the job."""

    def perform(self, first, n):
        with self.batch.jobs():
            Row.perform_bulk([[first + i] for i in range(n)])
        r().incr("test:ran")


class Nester(kiqpy.Worker, name="Nester"):
    """Creates a child batch of ``n`` rows, with its own callbacks."""

    def perform(self, first, n):
        child = kiqpy.Batch(description="child")
        child.on("complete", Callback, {"who": "child"})
        child.on("success", Callback, {"who": "child"})
        with child.jobs():
            Row.perform_bulk([[first + i, 0.01] for i in range(n)])
        r().set("test:child", child.bid)
        r().incr("test:ran")


class Step(kiqpy.Worker, name="Step"):
    """A workflow step: records its name in ``test:steps`` and returns it with the results of
    its dependencies."""

    def perform(self, name):
        deps = self.dependency_results()
        r().rpush("test:steps", name)
        return {"name": name, "deps": {k: v for k, v in sorted(deps.items())
                                       if not isinstance(v, Exception)}}


class Answer(kiqpy.Worker, name="Answer", store_result=True):
    """Returns twice its argument, after ``pause`` seconds."""

    def perform(self, x, pause=0.0):
        time.sleep(pause)
        return x * 2


class BadResult(kiqpy.Worker, name="BadResult", store_result=True, retry=0):
    """Returns a value that cannot be stored."""

    def perform(self):
        return object()


class DiesWithResult(kiqpy.Worker, name="DiesWithResult", result_ttl=60, retry=0):
    def perform(self):
        raise ValueError("no answer")


class Gated(kiqpy.Worker, name="Gated"):
    """Waits at the gate (a list the test pushes to), so jobs in several processes finish at
    the same moment; records the pid it ran in."""

    def perform(self, gate):
        conn = r()
        conn.sadd("test:gated-pids", os.getpid())
        conn.incr(f"{gate}:waiting")
        conn.blpop(gate, 30)


class FlakyNester(kiqpy.Worker, name="FlakyNester"):
    """Creates a child batch of 3 rows, then fails its first attempt (retried at once)."""

    def perform(self, first):
        child = kiqpy.Batch(description="flaky child")
        child.on("success", Callback, {"who": "flaky child"})
        with child.jobs():
            Row.perform_bulk([[first + i] for i in range(3)])
        r().rpush("test:flaky-children", child.bid)
        if r().incr("test:flaky-runs") == 1:
            raise RuntimeError("fails after creating its child")

    def kiqpy_retry_in(self, count, exc, job):
        return 0


class AsyncAnswer(kiqpy.Worker, name="AsyncAnswer", store_result=True):
    """An ``async def perform`` that returns twice its argument (its result is kept)."""

    async def perform(self, x):
        await asyncio.sleep(0.01)
        return x * 2


class AsyncRow(kiqpy.Worker, name="AsyncRow"):
    """An async job of a batch: counts a run in ``test:ran``."""

    async def perform(self, n):
        await asyncio.sleep(0.005)
        r().incr("test:ran")
