"""kiqpy: the job INCRs through ``kiqpy.redis()`` (the worker's own pool), as a Sidekiq job does
through ``Sidekiq.redis``. Runs in kiqpy's dev venv; the worker is ``kiqpy -c 10 -r kiqpy_app``.
"""

from __future__ import annotations

import time
from importlib import metadata

import redis
from common import KEY, redis_url

import kiqpy


class Incr(kiqpy.Worker, name="compare.Incr"):
    def perform(self, i: int) -> None:
        with kiqpy.redis() as conn:
            conn.incr(KEY)


def version() -> str:
    return (f"kiqpy {metadata.version('kiqpy')}, redis-py {redis.__version__}, "
            f"hiredis {'yes' if redis.utils.HIREDIS_AVAILABLE else 'no'}")


def enqueue(n: int, bulk: bool) -> float:
    kiqpy.configure(redis_url=redis_url())
    Incr.perform_async(0)
    start = time.perf_counter()
    if bulk:
        Incr.perform_bulk([[i] for i in range(1, n)])
    else:
        for i in range(1, n):
            Incr.perform_async(i)
    return time.perf_counter() - start

