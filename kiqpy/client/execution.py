"""Running one job's ``perform`` through the server middleware chain, ``current_job()``, and
``perform_inline``.

Shared by the worker's processor threads, inline mode and the fake mode's ``drain``, so a job
runs the same way everywhere. Does no Redis I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from kiqpy.errors import JobTimeout, KiqpyError
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
    ``next()`` the job is skipped (and counts as done). An ``async def perform`` outside the
    worker (inline mode, ``perform_inline``, the fake mode's ``drain``) runs to its end on a
    new event loop here (:func:`asyncio.run`), or is refused in a thread that already runs
    one (await ``execute_async``: ``Job.adrain()``, ``Job.aperform_inline()``).
    """
    if is_async(cls):
        if _loop_running():
            raise KiqpyError(f"{cls.__qualname__}.perform is 'async def' and this thread runs "
                             f"an event loop: await {cls.__name__}.adrain() / "
                             f"aperform_inline() instead of the blocking call")
        return asyncio.run(execute_async(cls, job, chain))
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


def is_async(cls: Any) -> bool:
    """Whether ``cls`` is a job class whose ``perform`` is ``async def``."""
    return bool(getattr(cls, "kiqpy_async", False))


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def execute_async(cls: JobType, job: Job, chain: Chain, timeout: Any = None) -> Any:
    """Run an ``async def perform`` inside ``chain`` on the running loop; return its result.

    ``current_job()`` is the job in the task (and in the chain's thread). ``timeout``
    (seconds) is exact: :func:`asyncio.timeout` cancels ``perform`` and
    :class:`~kiqpy.JobTimeout` is raised.

    Server middleware are plain callables around ``next()``. With an empty chain the job
    runs on the loop alone. Otherwise the chain runs in a thread of the loop's default
    executor, and its ``next()`` blocks that thread until ``perform`` has finished on the
    loop: so a middleware's code before and after ``next()`` runs before and after the
    job, its ``try``/``finally`` and exceptions work as for a sync job, and blocking calls
    in a middleware never hold the loop. The cost is one executor thread per running async
    job while the server chain is not empty."""
    instance = cls()
    instance.jid = job["jid"]
    token = _current_job.set(job)
    try:
        if not chain:
            return await _timed(instance.perform(*job["args"]), timeout, cls)
        loop = asyncio.get_running_loop()
        inner: list[Any] = []

        def step() -> Any:  # in the chain's thread; the job itself runs on the loop
            # Scheduled from this thread, so its task starts with a copy of this thread's
            # context: current_job() and the log context carry over.
            future = asyncio.run_coroutine_threadsafe(
                _timed(instance.perform(*job["args"]), timeout, cls), loop)
            inner.append(future)
            return future.result()

        context = contextvars.copy_context()
        outer = loop.run_in_executor(None, context.run, chain.invoke, step, instance, job,
                                     job["queue"])
        try:
            return await asyncio.shield(outer)
        except asyncio.CancelledError:
            # Cancelled (the shutdown's deadline): cancel the job on the loop, let the
            # middleware see it end, then say so.
            for future in inner:
                future.cancel()
            with contextlib.suppress(BaseException):
                await outer
            raise
    finally:
        _current_job.reset(token)


async def _timed(awaitable: Any, timeout: Any, cls: JobType) -> Any:
    """Await ``perform``'s coroutine, within ``timeout`` seconds when that is a positive
    number."""
    if type(timeout) not in (int, float) or timeout <= 0:
        return await awaitable
    message = f"{cls.__qualname__} ran longer than its timeout of {timeout} s"
    timeout_cm = getattr(asyncio, "timeout", None)  # Python 3.11+
    if timeout_cm is None:
        try:
            return await asyncio.wait_for(awaitable, float(timeout))
        except asyncio.TimeoutError:
            raise JobTimeout(message) from None
    limit = timeout_cm(float(timeout))
    try:
        async with limit:
            return await awaitable
    except TimeoutError:
        if limit.expired():  # ours, not a TimeoutError of the job's own
            raise JobTimeout(message) from None
        raise


def _ran(result: Any, cls: JobType) -> Any:
    """``perform``'s result, unless it is an awaitable: then nothing of the job has run (a
    ``perform`` wrapped or assigned after the class was defined, so the class check missed
    it), and counting it as done would lose the job. It fails instead, and is retried."""
    if result is not None and inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # no "coroutine was never awaited" warning on top of the error
        raise KiqpyError(f"{cls.__qualname__}.perform returned {type(result).__name__}, an "
                         f"awaitable nobody awaits: the job did not run (define perform with "
                         f"'async def' in the class body, so kiqpy knows to await it)")
    return result


def _inline_job(cls: JobType, args: Sequence[Any], options: dict[str, Any],
                fields: dict[str, Any] | None) -> tuple[Job | None, Chain]:
    active = mode.active()
    if active is not None:
        config, chain = active.config, active.server_middleware
    else:
        config = default_config()
        chain = config.server_middleware
    job = JobBuilder(config).build(cls, args, options, None, fields=fields)
    if job is None:
        return None, chain
    job["enqueued_at"] = config.now_stamp()
    return round_trip(job, config.serializer), chain


async def arun_inline(cls: JobType, args: Sequence[Any], options: dict[str, Any],
                      fields: dict[str, Any] | None = None) -> Any:
    """``aperform_inline``: :func:`run_inline` for code on an event loop; an async job is
    awaited on the running loop, a sync one runs in this thread."""
    job, chain = _inline_job(cls, args, options, fields)
    if job is None:
        return None
    if is_async(cls):
        return await execute_async(cls, job, chain)
    return execute(cls, job, chain)


def run_inline(cls: JobType, args: Sequence[Any], options: dict[str, Any],
               fields: dict[str, Any] | None = None) -> Any:
    """``perform_inline``: the serialization round trip of a real push, then the job, through
    the server chain of the testing mode in place (fake or inline), else the default
    configuration's."""
    job, chain = _inline_job(cls, args, options, fields)
    return None if job is None else execute(cls, job, chain)
