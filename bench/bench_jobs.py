"""Jobs for the benchmark (loaded by the worker with -r bench.bench_jobs)."""

from __future__ import annotations

import os
import time

import redis

import kiqpy
from kiqpy import limiter

_redis: redis.Redis | None = None


def _own_client() -> redis.Redis:
    """The app's own module-level client, made on first use (under `make bench --cluster` the
    URL is a redis+cluster:// one, which redis.Redis.from_url cannot read; that run never
    uses this)."""
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
    return _redis


class Noop(kiqpy.Worker, name="bench.Noop"):
    def perform(self, n: int) -> None:
        pass


class NoopIncr(kiqpy.Worker, name="bench.NoopIncr"):
    """The job of the performance targets (docs/architecture.md): a no-op that INCRs a counter,
    through ``kiqpy.redis()`` as a Sidekiq job does through ``Sidekiq.redis``."""

    def perform(self, n: int) -> None:
        with kiqpy.redis() as conn:
            conn.incr("bench:count")


# A concurrent limiter roomy enough never to turn a job away: what its block costs per job.
ROOMY = limiter.concurrent("bench:roomy", 1000, wait_timeout=0)


class NoopIncrLimited(kiqpy.Worker, name="bench.NoopIncrLimited"):
    """NoopIncr inside ``ROOMY.within_limit()`` (take and give back a slot: 2 scripts)."""

    def perform(self, n: int) -> None:
        with ROOMY.within_limit(), kiqpy.redis() as conn:
            conn.incr("bench:count")


class NoopIncrOwnClient(kiqpy.Worker, name="bench.NoopIncrOwnClient"):
    """The same INCR through the app's own module-level ``redis.Redis`` (one shared pool)."""

    def perform(self, n: int) -> None:
        _own_client().incr("bench:count")


class Stamp(kiqpy.Worker, name="bench.Stamp"):
    """Records push-to-start latency: its arg is the push time."""

    def perform(self, pushed_at: float) -> None:
        started = time.time()
        _own_client().rpush("bench:latency", started - pushed_at)


class Burn(kiqpy.Worker, name="bench.Burn"):
    """A few milliseconds of pure Python."""

    def perform(self, n: int) -> None:
        total = 0
        for i in range(n):
            total += i * i


class ANoop(kiqpy.Worker, name="bench.ANoop"):
    """An async no-op, run on the worker's event loop."""

    async def perform(self, n: int) -> None:
        pass


class NoopIncrAsync(kiqpy.Worker, name="bench.NoopIncrAsync"):
    """NoopIncr as an async job: the INCR through ``kiqpy.aredis()`` (redis.asyncio)."""

    async def perform(self, n: int) -> None:
        await kiqpy.aredis().incr("bench:count")


class ASleep(kiqpy.Worker, name="bench.ASleep"):
    """Awaits ``asyncio.sleep(seconds)``: an async job waiting on I/O."""

    async def perform(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)
