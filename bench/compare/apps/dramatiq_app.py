"""Dramatiq with its Redis broker, at its defaults (default middleware, no result backend); the
worker is ``dramatiq dramatiq_app --processes 1 --threads 10``. The job INCRs through the
broker's own redis.Redis client. Dramatiq writes no per-job log line at INFO (its default), so
"logs on" and "logs off" differ only in that off also sets its logger to WARNING.
"""

from __future__ import annotations

import logging
import time
from importlib import metadata

import dramatiq
import redis
from common import KEY, logs_on, redis_url
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=redis_url())
dramatiq.set_broker(broker)
if not logs_on():
    logging.getLogger("dramatiq").setLevel(logging.WARNING)


@dramatiq.actor
def incr(i: int) -> None:
    broker.client.incr(KEY)


def version() -> str:
    return (f"Dramatiq {metadata.version('dramatiq')}, redis-py {redis.__version__}, "
            f"hiredis {'yes' if redis.utils.HIREDIS_AVAILABLE else 'no'}")


def enqueue(n: int, bulk: bool) -> float:
    # Dramatiq has no bulk enqueue (group() sends its messages one by one).
    incr.send(0)
    start = time.perf_counter()
    for i in range(1, n):
        incr.send(i)
    return time.perf_counter() - start

