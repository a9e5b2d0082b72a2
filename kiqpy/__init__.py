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

from kiqpy.chain import Chain
from kiqpy.client import Client, enqueue
from kiqpy.config import Config, configure, default_client, default_config
from kiqpy.errors import (
    ArgumentError,
    ConfigurationError,
    KiqpyError,
    NoJobsError,
    OptionsError,
    PayloadError,
    RedisUnavailableError,
    UnknownJobError,
)
from kiqpy.execution import current_job
from kiqpy.options import declare_option
from kiqpy.worker import Worker, registered

if _TYPE_CHECKING:
    from kiqpy.launcher import Embedded as _Embedded

__version__ = "0.1.0"


def embed(config: Config | None = None, **changes: _Any) -> "_Embedded":
    """Run a worker inside this program, in a background thread, with no signal handlers::

        worker = kiqpy.embed(concurrency=5)
        ...
        worker.stop()

    ``config`` defaults to the default configuration; keywords replace its fields. Imported
    lazily so that programs that only enqueue never load the worker."""
    from kiqpy.launcher import embed as _embed

    return _embed(config, **changes)


__all__ = [
    "ArgumentError",
    "Chain",
    "Client",
    "Config",
    "ConfigurationError",
    "KiqpyError",
    "NoJobsError",
    "OptionsError",
    "PayloadError",
    "RedisUnavailableError",
    "UnknownJobError",
    "Worker",
    "__version__",
    "configure",
    "current_job",
    "declare_option",
    "default_client",
    "default_config",
    "embed",
    "enqueue",
    "registered",
]
