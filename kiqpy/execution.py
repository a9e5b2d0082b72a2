"""Running one job's ``perform`` through the server middleware chain, and ``current_job()``.

Shared by the worker's processor threads, inline mode and the fake mode's ``drain``, so a job
runs the same way everywhere. Does no Redis I/O.
"""

from __future__ import annotations

import contextvars
from typing import Any

from kiqpy.chain import Chain
from kiqpy.payload import Job
from kiqpy.worker import Worker

_current_job: contextvars.ContextVar[Job | None] = contextvars.ContextVar(
    "kiqpy_current_job", default=None)


def current_job() -> Job | None:
    """The job map of the job running in this thread, or None outside a job."""
    return _current_job.get()


def execute(cls: type[Worker], job: Job, chain: Chain) -> Any:
    """Instantiate ``cls`` and run ``perform(*args)`` inside ``chain``; return its result.

    Server middleware gets ``(worker_instance, job, queue, next)``; if it does not call
    ``next()`` the job is skipped (and counts as done).
    """
    instance = cls()
    instance.jid = job["jid"]
    token = _current_job.set(job)
    try:
        if not chain:
            return instance.perform(*job["args"])
        return chain.invoke(lambda: instance.perform(*job["args"]), instance, job, job["queue"])
    finally:
        _current_job.reset(token)
