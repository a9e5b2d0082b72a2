"""Async job classes for worker tests (``-r tests.app_async_jobs``; the sync classes of
``tests.app_jobs`` load with them). Each records what it did in Redis under ``test:`` keys,
through :func:`kiqpy.aredis`, so the test (another process) can see it."""

from __future__ import annotations

import asyncio
import time

import kiqpy
from tests import app_jobs  # the sync classes load too, for mixed workers


class ARecord(kiqpy.Worker, name="ARecord"):
    """Appends its args (as repr) to ``test:ran``, with the jid, current_job()'s jid and
    whether it ran on the worker's loop thread."""

    async def perform(self, *args):
        await asyncio.sleep(0)
        job = kiqpy.current_job()
        conn = kiqpy.aredis()
        await conn.rpush("test:ran", repr(args))
        await conn.rpush("test:jids", f"{self.jid}|{job['jid'] if job else None}")


class ASleep(kiqpy.Worker, name="ASleep"):
    """Records ``test:started`` (its arg), sleeps ``seconds`` on the loop, records
    ``test:finished``."""

    async def perform(self, n, seconds):
        await kiqpy.aredis().sadd("test:started", n)
        await asyncio.sleep(seconds)
        await kiqpy.aredis().sadd("test:finished", n)


class AFail(kiqpy.Worker, name="AFail", retry=2):
    """Always raises ValueError after an await."""

    async def perform(self, message):
        await asyncio.sleep(0)
        raise ValueError(message)


class ATimeout(kiqpy.Worker, name="ATimeout", retry=1, timeout=0.3):
    """Awaits longer than its timeout option."""

    async def perform(self):
        await kiqpy.aredis().incr("test:atimeout-started")
        await asyncio.sleep(30)
        await kiqpy.aredis().incr("test:atimeout-finished")


class ABlock(kiqpy.Worker, name="ABlock"):
    """Blocks the event loop with time.sleep (a bug the worker must report)."""

    async def perform(self, seconds):
        time.sleep(seconds)
        await kiqpy.aredis().incr("test:ablock")


class AFailFast(kiqpy.Worker, name="AFailFast", retry=2):
    """Always fails, retried at once; records its jid in ``test:exhausted`` at the end."""

    async def perform(self, message="boom"):
        await kiqpy.aredis().incr("test:afailfast_attempts")
        raise ValueError(message)

    def kiqpy_retry_in(self, count, exc, job):
        return 0

    def kiqpy_retries_exhausted(self, job, exc):
        app_jobs.r().rpush("test:exhausted", job["jid"])


class ALimited(kiqpy.Worker, name="ALimited", concurrency_limit=1):
    """At most one runs at a time across the cluster: records in ``test:overlap`` any run that
    saw another one running."""

    async def perform(self, n):
        conn = kiqpy.aredis()
        if await conn.incr("test:running") > 1:
            await conn.sadd("test:overlap", n)
        await asyncio.sleep(0.2)
        await conn.decr("test:running")
        await conn.sadd("test:finished", n)
