"""kiqpy: Sidekiq for Python. Background jobs in Redis, run by a threaded worker through a
middleware chain, with retries, scheduling and a dashboard.

    import kiqpy

    class HardWorker(kiqpy.Worker, queue="mail"):
        def perform(self, name, count): ...

    HardWorker.perform_async("bob", 5)

Then run ``kiqpy -r myapp.jobs -q default,mail``.
"""

# No `from __future__ import annotations` here: it would add a public name, `annotations`,
# to the package (tests/test_public_api.py keeps the surface to exactly __all__).
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from kiqpy import limiter
from kiqpy.chain import Chain
from kiqpy.client import iteration  # noqa: F401  (kiqpy.iteration.range_enumerator...)
from kiqpy.client.batch import Batch
from kiqpy.client.execution import current_job
from kiqpy.client.iteration import IterableWorker
from kiqpy.client.options import declare_option
from kiqpy.client.periodic import periodic
from kiqpy.client.push import Client, aenqueue, default_client, enqueue
from kiqpy.client.registry import registered
from kiqpy.client.results import result
from kiqpy.client.worker import Worker
from kiqpy.client.workflow import Signature, Workflow, chain, group
from kiqpy.config import Config, configure, default_config
from kiqpy.connection import loop_client as _loop_client
from kiqpy.connection import thread_client as _thread_client
from kiqpy.errors import (
    ArgumentError,
    ConfigurationError,
    Interrupted,
    JobFailed,
    JobTimeout,
    KiqpyError,
    NoJobsError,
    NotReplicatedError,
    OptionsError,
    PayloadError,
    PoisonPill,
    RedisRefusedError,
    RedisUnavailableError,
    ResultError,
    UnknownJobError,
    WorkflowError,
)
from kiqpy.version import __version__

if _TYPE_CHECKING:
    import redis as _redis
    import redis.asyncio as _aredis

    from kiqpy.server.launcher import Embedded as _Embedded



def embed(config: Config | None = None, **changes: _Any) -> "_Embedded":
    """Run a worker inside this program, in a background thread, with no signal handlers::

        worker = kiqpy.embed(concurrency=5)
        ...
        worker.stop()

    ``config`` defaults to the default configuration; keywords replace its fields. Imported
    lazily so that programs that only enqueue never load the worker."""
    from kiqpy.server.launcher import embed as _embed

    return _embed(config, **changes)


class _Borrowed:
    """``with kiqpy.redis() as conn``: hands out the thread's client, closes nothing."""

    __slots__ = ("client",)

    def __init__(self, client: "_redis.Redis") -> None:
        self.client = client

    def __enter__(self) -> "_redis.Redis":
        return self.client

    def __exit__(self, *exc_info: object) -> None:
        return None


def redis(config: Config | None = None) -> _Borrowed:
    """A Redis connection for your own commands, as ``Sidekiq.redis`` gives one::

        class Counter(kiqpy.Worker):
            def perform(self, key):
                with kiqpy.redis() as conn:
                    conn.incr(key)

    The connection goes to ``config``'s Redis (default: the default configuration's, which in
    a worker is the one it runs with) and belongs to the calling thread: each processor thread
    keeps its own, so commands pay no pool checkout and threads never wait for each other.
    Errors are redis-py's own (a failing job is retried as usual). Keys are used as given:
    the ``namespace`` setting applies only to kiqpy's own keys."""
    config = config if config is not None else default_config()
    return _Borrowed(_thread_client(config.redis_url, config.socket_timeout,
                                    config.sentinel_auth))


def aredis(config: Config | None = None) -> "_aredis.Redis":
    """An async Redis client (``redis.asyncio``) for code on an event loop, as
    :func:`redis` is for threads::

        class Counter(kiqpy.Worker):
            async def perform(self, key):
                await kiqpy.aredis().incr(key)

    One client (and pool) per event loop and Redis, made on first use on that loop; never
    close it. It goes to ``config``'s Redis (default: the default configuration's). Errors
    are redis-py's own. Raises :class:`ConfigurationError` outside a running event loop."""
    config = config if config is not None else default_config()
    return _loop_client(config.redis_url, config.socket_timeout, config.sentinel_auth)


__all__ = [
    "ArgumentError",
    "Batch",
    "Chain",
    "Client",
    "Config",
    "ConfigurationError",
    "Interrupted",
    "IterableWorker",
    "JobFailed",
    "JobTimeout",
    "KiqpyError",
    "NoJobsError",
    "NotReplicatedError",
    "OptionsError",
    "PayloadError",
    "PoisonPill",
    "RedisRefusedError",
    "RedisUnavailableError",
    "ResultError",
    "Signature",
    "UnknownJobError",
    "Worker",
    "Workflow",
    "WorkflowError",
    "__version__",
    "aenqueue",
    "aredis",
    "chain",
    "configure",
    "current_job",
    "declare_option",
    "default_client",
    "default_config",
    "embed",
    "enqueue",
    "group",
    "limiter",
    "periodic",
    "redis",
    "registered",
    "result",
]
