"""RQ at its defaults (the forking Worker: one child process per job; results kept 500 s);
the worker is ``rq worker-pool -n 10``, ten such workers. The job INCRs through a module-level
redis.Redis (a forked child opens its own connection).
"""

from __future__ import annotations

import time
from importlib import metadata

import redis
from common import KEY, redis_url
from rq import Queue

_redis = redis.Redis.from_url(redis_url())


def incr(i: int) -> None:
    _redis.incr(KEY)


def version() -> str:
    return (f"RQ {metadata.version('rq')}, redis-py {redis.__version__}, "
            f"hiredis {'yes' if redis.utils.HIREDIS_AVAILABLE else 'no'}")


def enqueue(n: int, bulk: bool) -> float:
    queue = Queue(connection=_redis)
    queue.enqueue(incr, 0)
    start = time.perf_counter()
    if bulk:
        # RQ's bulk API: enqueue_many, one pipeline.
        queue.enqueue_many([Queue.prepare_data(incr, (i,)) for i in range(1, n)])
    else:
        for i in range(1, n):
            queue.enqueue(incr, i)
    return time.perf_counter() - start

