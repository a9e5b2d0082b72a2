"""Huey with RedisHuey at its defaults (blocking dequeue, results of None not stored); the worker
is ``huey_consumer huey_app.huey -w 10 -k thread`` (``-q`` for logs off: WARNING). The job INCRs
through the storage's own redis.Redis client.
"""

from __future__ import annotations

import time
from importlib import metadata

import redis
from common import KEY, redis_url
from huey import RedisHuey

huey = RedisHuey("bench", url=redis_url())


@huey.task()
def incr(i: int) -> None:
    huey.storage.conn.incr(KEY)


def version() -> str:
    return (f"Huey {metadata.version('huey')}, redis-py {redis.__version__}, "
            f"hiredis {'yes' if redis.utils.HIREDIS_AVAILABLE else 'no'}")


def enqueue(n: int, bulk: bool) -> float:
    # Huey has no bulk enqueue.
    incr(0)
    start = time.perf_counter()
    for i in range(1, n):
        incr(i)
    return time.perf_counter() - start

