"""Running one job's ``perform`` through the server middleware chain, ``current_job()``, and
``perform_inline``.

Shared by the worker's processor threads, inline mode and the fake mode's ``drain``, so a job
runs the same way everywhere. Does no Redis I/O.
"""

from __future__ import annotations

import contextvars
import inspect
import threading
from collections.abc import Sequence
from typing import Any

from kiqpy.chain import Chain
from kiqpy.client import mode
from kiqpy.client.build import JobBuilder
from kiqpy.client.registry import JobType
from kiqpy.config import default_config
from kiqpy.errors import KiqpyError
from kiqpy.payload import Job, round_trip

_current_job: contextvars.ContextVar[Job | None] = contextvars.ContextVar(
    "kiqpy_current_job", default=None)


# Set by the worker in each processor thread: the event its shutdown sets. Iterable jobs stop
# between iterations once it is set.
_stopping: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "kiqpy_stopping", default=None)


def stopping() -> bool:
    """True when the worker running this job is shutting down (False outside a worker)."""
    event = _stopping.get()
    return event is not None and event.is_set()


def set_stop_event(event: threading.Event) -> None:
    """For the worker: the event that says, in this thread, that the process shuts down."""
    _stopping.set(event)


def current_job() -> Job | None:
    """The job map of the job running in this thread, or None outside a job."""
    return _current_job.get()


def execute(cls: JobType, job: Job, chain: Chain) -> Any:
    """Instantiate ``cls`` and run ``perform(*args)`` inside ``chain``; return its result.

    Server middleware gets ``(worker_instance, job, queue, next)``; if it does not call
    ``next()`` the job is skipped (and counts as done).
    """
    instance = cls()
    instance.jid = job["jid"]
    token = _current_job.set(job)
    try:
        if not chain:
            return _ran(instance.perform(*job["args"]), cls)
        return chain.invoke(lambda: _ran(instance.perform(*job["args"]), cls), instance, job,
                            job["queue"])
    finally:
        _current_job.reset(token)


def _ran(result: Any, cls: JobType) -> Any:
    """``perform``'s result, unless it is an awaitable: then nothing of the job has run (a
    ``perform`` wrapped or assigned after the class was defined, so the class check missed
    it), and counting it as done would lose the job. It fails instead, and is retried."""
    if result is not None and inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # no "coroutine was never awaited" warning on top of the error
        raise KiqpyError(f"{cls.__qualname__}.perform returned {type(result).__name__}, an "
                         f"awaitable nobody awaits: the job did not run (kiqpy runs only plain "
                         f"'def perform' methods so far)")
    return result


def run_inline(cls: JobType, args: Sequence[Any], options: dict[str, Any],
               fields: dict[str, Any] | None = None) -> Any:
    """``perform_inline``: the serialization round trip of a real push, then the job, through
    the server chain of the testing mode in place (fake or inline), else the default
    configuration's."""
    active = mode.active()
    if active is not None:
        config, chain = active.config, active.server_middleware
    else:
        config = default_config()
        chain = config.server_middleware
    job = JobBuilder(config).build(cls, args, options, None, fields=fields)
    if job is None:
        return None
    job["enqueued_at"] = config.now_stamp()
    return execute(cls, round_trip(job, config.serializer), chain)
