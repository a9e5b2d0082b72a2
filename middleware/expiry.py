"""Job expiry, like Sidekiq Pro's ``expires_in``: a job not started within its time is skipped.

    import kiqpy
    import kiqpy_middleware.expiry

    kiqpy_middleware.expiry.install()    # where jobs are pushed and in the worker (a -r module)

    class PriceAlert(kiqpy.Worker, expires_in=300):        # seconds or a timedelta
        def perform(self, symbol): ...

    PriceAlert.perform_async("ACME")        # skipped if no worker starts it within 5 minutes
    PriceAlert.perform_in(3600, "ACME")     # the 5 minutes count from its run time

Importing this module declares the worker option ``expires_in`` (seconds or timedelta, > 0).
:class:`ExpiryClient` stamps the job with ``expires_at`` (epoch seconds, float): its run time
(``at``, for a scheduled job) or the push time, plus ``expires_in``. :class:`ExpiryServer`
skips a job whose ``expires_at`` has passed: ``perform`` is not called, an info line "expired"
is logged, and the job counts as done (it is acked, not retried). A retry that comes due after
the job has expired is skipped the same way. Jobs without the option pass through at the cost
of one dict lookup on each side.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

import kiqpy
from kiqpy.client.options import seconds

__all__ = ["ExpiryClient", "ExpiryServer", "install"]

OWNER = "kiqpy_middleware.expiry"

kiqpy.declare_option("expires_in", seconds, OWNER)


class ExpiryClient:
    """Client middleware: stamps ``expires_at`` on jobs that have ``expires_in``."""

    def __call__(self, worker_class: Any, job: dict[str, Any], queue: str, redis: Any,
                 next: Callable[[], Any]) -> Any:
        expires_in = job.get("expires_in")
        if expires_in is not None:
            start = job.get("at")
            job["expires_at"] = (time.time() if start is None else start) + expires_in
        return next()


class ExpiryServer:
    """Server middleware: skips (does not run) a job whose ``expires_at`` has passed."""

    def __init__(self, log: Any = None) -> None:
        self.log = log if log is not None else structlog.get_logger("kiqpy")

    def __call__(self, worker: Any, job: dict[str, Any], queue: str,
                 next: Callable[[], Any]) -> Any:
        expires_at = job.get("expires_at")
        if expires_at is not None and type(expires_at) in (int, float):
            now = time.time()
            if now > expires_at:
                self.log.info("expired", expires_at=expires_at,
                              late=round(now - expires_at, 3))
                return None
        return next()


def install(config: kiqpy.Config | None = None) -> None:
    """Add :class:`ExpiryClient` and :class:`ExpiryServer` to the middleware chains of
    ``config`` (the default configuration when None). Calling it again changes nothing but
    moves them to the end of the chains.

        import kiqpy_middleware.expiry
        kiqpy_middleware.expiry.install()
    """
    target = config if config is not None else kiqpy.default_config()
    target.client_middleware.add(ExpiryClient)
    target.server_middleware.add(ExpiryServer)
