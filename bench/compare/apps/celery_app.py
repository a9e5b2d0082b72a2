"""Celery with the Redis broker, at its defaults (no result backend, prefetch multiplier 4, acks
on receipt); the worker is ``celery -A celery_app worker --pool threads -c 10``. Celery's default
log level is WARNING, which writes no per-job line: "logs on" is ``-l info`` (its per-job
"received" and "succeeded" lines), "logs off" its default. The job INCRs through a module-level
redis.Redis (one shared pool), as a Celery app would.
"""

from __future__ import annotations

import time
from importlib import metadata

import redis
from celery import Celery
from common import KEY, redis_url

app = Celery("celery_app", broker=redis_url())
_redis = redis.Redis.from_url(redis_url())


@app.task
def incr(i: int) -> None:
    _redis.incr(KEY)


def version() -> str:
    return (f"Celery {metadata.version('celery')}, kombu {metadata.version('kombu')}, redis-py "
            f"{redis.__version__}, hiredis {'yes' if redis.utils.HIREDIS_AVAILABLE else 'no'}")


def enqueue(n: int, bulk: bool) -> float:
    # Celery has no bulk enqueue (a group publishes its messages one by one).
    incr.delay(0)
    start = time.perf_counter()
    for i in range(1, n):
        incr.delay(i)
    return time.perf_counter() - start

