"""arq at its defaults (results kept an hour) with max_jobs=10 (also its default). On a backlog
its defaults bound it: it polls the queue every poll_delay (0.5 s) for at most queue_read_limit
jobs (max(5 x max_jobs, 100) = 100), so at most about 200 jobs/s. The job INCRs through
``ctx["redis"]``, the worker's own ArqRedis. ``python -m appcli arq_app worker`` does what the
``arq arq_app.WorkerSettings`` command does (arq's default log config, then run_worker), except
that "logs off" then sets the arq logger to WARNING, which its command line cannot.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import time
from importlib import metadata
from typing import Any

import redis
from arq import create_pool
from arq.connections import RedisSettings
from arq.logs import default_log_config
from arq.worker import run_worker
from common import KEY, logs_on, redis_url


async def incr(ctx: dict[str, Any], i: int) -> None:
    await ctx["redis"].incr(KEY)


class WorkerSettings:
    functions = [incr]
    redis_settings = RedisSettings.from_dsn(redis_url())
    max_jobs = 10


def version() -> str:
    return (f"arq {metadata.version('arq')}, redis-py {redis.__version__}, "
            f"hiredis {'yes' if redis.utils.HIREDIS_AVAILABLE else 'no'}")


async def _push(n: int) -> float:
    # arq has no bulk enqueue.
    pool = await create_pool(WorkerSettings.redis_settings)
    await pool.enqueue_job("incr", 0)
    start = time.perf_counter()
    for i in range(1, n):
        await pool.enqueue_job("incr", i)
    seconds = time.perf_counter() - start
    await pool.aclose()
    return seconds


def enqueue(n: int, bulk: bool) -> float:
    return asyncio.run(_push(n))


def worker() -> None:
    logging.config.dictConfig(default_log_config(verbose=False))
    if not logs_on():
        logging.getLogger("arq").setLevel(logging.WARNING)
    run_worker(WorkerSettings)  # type: ignore[arg-type]
