"""Which tenant (customer account) and which request the running code works for, carried from
the web request that enqueues a job into the job itself:

- the web code sets ``current_tenant`` and ``current_request_id`` for each request
  (:func:`request_context`; a web framework would do it in its own middleware);
- :class:`StampTenant`, client middleware, copies them into every job pushed meanwhile;
- :class:`RestoreTenant`, server middleware, sets them again around ``perform`` in the worker,
  so code deep inside a job reads the tenant the same way as in a request, and jobs that the
  job enqueues are stamped in turn. It also logs how long each job took, per tenant.

Register both where jobs are pushed and in the worker; ``examples/middleware/jobs.py`` does it
when imported (the worker imports it with ``-r``).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import structlog

log = structlog.get_logger("examples.middleware")

current_tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_tenant", default=None)
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_request_id", default=None)


@contextlib.contextmanager
def request_context(tenant: str, request_id: str | None = None) -> Iterator[str]:
    """Work for ``tenant`` inside the block; yields the request id (a new one if not given)."""
    request_id = request_id or uuid.uuid4().hex[:12]
    tokens = current_tenant.set(tenant), current_request_id.set(request_id)
    try:
        yield request_id
    finally:
        current_tenant.reset(tokens[0])
        current_request_id.reset(tokens[1])


class StampTenant:
    """Client middleware: stamp the current tenant and request id into the job. A job pushed
    outside any request (a cron script) gets none."""

    def __call__(self, worker_class: Any, job: dict[str, Any], queue: str, redis: Any,
                 next: Callable[[], Any]) -> Any:
        tenant = current_tenant.get()
        if tenant is not None:
            job["tenant"] = tenant
            job["request_id"] = current_request_id.get()
        return next()


class RestoreTenant:
    """Server middleware: the job's tenant and request id in the ContextVars (and in every
    log line) while it runs, and a ``timing`` log line when it ends."""

    def __call__(self, worker: Any, job: dict[str, Any], queue: str,
                 next: Callable[[], Any]) -> Any:
        tenant, request_id = job.get("tenant"), job.get("request_id")
        tokens = current_tenant.set(tenant), current_request_id.set(request_id)
        started = time.perf_counter()
        try:
            with structlog.contextvars.bound_contextvars(tenant=tenant, request_id=request_id):
                try:
                    return next()
                finally:
                    log.info("timing", job_class=job["class"],
                             ms=round((time.perf_counter() - started) * 1000, 3))
        finally:
            # Processor threads are reused: the next job must not see this job's tenant.
            current_tenant.reset(tokens[0])
            current_request_id.reset(tokens[1])
