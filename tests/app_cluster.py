"""Job classes for the Redis Cluster tests. They record what they did through
``kiqpy.redis()``, which on a ``redis+cluster://`` URL is a cluster client, under keys that
start with ``test:``."""

from __future__ import annotations

import os
import time

import kiqpy
import kiqpy_middleware.expiry
import kiqpy_middleware.unique

# As a user's jobs module would: the middleware the test asks for, installed on import.
for _name in filter(None, os.environ.get("KIQPY_TEST_MIDDLEWARE", "").split(",")):
    {"unique": kiqpy_middleware.unique, "expiry": kiqpy_middleware.expiry}[_name].install()


class Record(kiqpy.Worker, name="cluster.Record"):
    """Appends ``"<queue>:<n>"`` to ``test:runs``."""

    def perform(self, queue: str, n: int) -> None:
        with kiqpy.redis() as conn:
            conn.rpush("test:runs", f"{queue}:{n}")


class Flaky(kiqpy.Worker, name="cluster.Flaky", retry=3):
    """Fails on its first run and succeeds on the second; retries at once."""

    def perform(self, n: int) -> None:
        with kiqpy.redis() as conn:
            if conn.incr(f"test:flaky:{n}") == 1:
                raise ValueError("first run fails")
            conn.rpush("test:runs", f"flaky:{n}")

    def kiqpy_retry_in(self, count: int, exc: BaseException, job: dict) -> int:
        return 0


class Doomed(kiqpy.Worker, name="cluster.Doomed", retry=1):
    """Always fails; retried once at once, then to the dead set."""

    def perform(self, n: int) -> None:
        raise ValueError(f"doomed {n}")

    def kiqpy_retry_in(self, count: int, exc: BaseException, job: dict) -> int:
        return 0


class Sleepy(kiqpy.Worker, name="cluster.Sleepy"):
    """Counts its starts in ``test:starts:<n>``, sleeps on its first start only, then records
    itself in ``test:runs``."""

    def perform(self, n: int, seconds: float) -> None:
        with kiqpy.redis() as conn:
            starts = conn.incr(f"test:starts:{n}")
        if starts == 1:
            time.sleep(seconds)
        with kiqpy.redis() as conn:
            conn.rpush("test:runs", f"sleepy:{n}")


class Part(kiqpy.Worker, name="cluster.Part", store_result=True):
    """A job of a batch or workflow step: returns twice its argument, records its run."""

    def perform(self, n: int) -> int:
        with kiqpy.redis() as conn:
            conn.rpush("test:runs", f"part:{n}")
        return n * 2


class AsyncPart(kiqpy.Worker, name="cluster.AsyncPart", store_result=True,
                concurrency_limit=2):
    """An async job (at most 2 at once) whose result is kept."""

    async def perform(self, n: int) -> int:
        conn = kiqpy.aredis()
        await conn.rpush("test:runs", f"apart:{n}")
        return n + 100


class Done(kiqpy.Worker, name="cluster.Done"):
    """A batch callback: records the event."""

    def perform(self, status: dict, options: dict) -> None:
        with kiqpy.redis() as conn:
            conn.rpush("test:callbacks", status["event"])
