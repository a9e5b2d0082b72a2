"""Async jobs: the worker's event loop, which runs every job whose class has an ``async def
perform``, beside the processor threads.

    processor thread: decode -> class is async? -> wait for a loop slot -> hand the job over
                      (Fetcher.detach: the threads may take another job) -> fetch on
    kiqpy.asyncio-loop: task per job: log context -> server chain -> await perform
                        (asyncio.timeout) -> Processor.conclude (in kiqpy.asyncio-io when it
                        writes to Redis) -> Processor.finish (ack, or release)

Backpressure: a processor thread blocks while all ``--async-concurrency`` slots are taken, so
no more async jobs leave Redis than the loop can run (plus those the threads hold). The loop
never waits on Redis for the worker's own writes: a failure's retry/dead write and a
``concurrency_limit`` slot run in a small thread pool, and an ack is an in-memory hand-over
to the fetcher. A job's own blocking code does hold the loop: the watcher thread logs a
warning, with the loop thread's stack and the job's jid, when the loop has not turned for
``BLOCKED_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from typing import TYPE_CHECKING, Any

import structlog

from kiqpy.client.execution import execute_async, is_async, set_stop_event
from kiqpy.client.registry import lookup
from kiqpy.errors import Interrupted
from kiqpy.server.processor import Processor, Throttled, writes_on_success

if TYPE_CHECKING:
    from kiqpy.chain import Chain

# The loop has not turned for this long: a job blocks it (time.sleep, a sync client, CPU).
BLOCKED_SECONDS = 0.5
# The loop's own tick; the watcher looks at it every TICK seconds too.
TICK = 0.1
# Threads for the Redis writes of async jobs' outcomes (failures, throttles, limiter slots):
# each may hold one connection of the worker's pool, which the launcher sizes for them.
IO_THREADS = 4
# After the shutdown's deadline: how long cancelled jobs get to unwind (their finally blocks).
CANCEL_GRACE = 2.0

_bind = structlog.contextvars.bind_contextvars


class AsyncRunner:
    """Loop (thread ``kiqpy.asyncio-loop``, started with the first async job): an asyncio
    event loop (uvloop's when it is installed) running async jobs, at most ``limit`` at once.
    Owns the loop, its slots, its tasks, their counters, the ``kiqpy.asyncio-io`` pool and
    the watcher thread ``kiqpy.asyncio-watch``. Outcomes go through ``outcomes``, a
    :class:`Processor` that runs no thread of its own, so an async job is logged, retried,
    counted and acked exactly as a sync one. Exits by :meth:`close` (after the shutdown
    waited for the tasks, or cancelled them: a cancelled job is released, never acked)."""

    def __init__(self, limit: int, outcomes: Processor, chain: Chain,
                 halt: threading.Event) -> None:
        self.limit, self.outcomes, self.chain, self.halt = limit, outcomes, chain, halt
        self.processed = 0
        self.failed = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._spawn: Callable[[str, Callable[[], None]], threading.Thread] | None = None
        self._starting = threading.Lock()
        self._ready = threading.Event()
        self._slots = threading.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()
        self._performing: set[asyncio.Task[None]] = set()  # inside perform: cancellable
        self._changed = threading.Condition()
        self._numbers = itertools.count(1)
        self._io = ThreadPoolExecutor(IO_THREADS, "kiqpy.asyncio-io")
        self._tick = time.monotonic()
        self._ident: int | None = None
        self._closed = threading.Event()
        self._cancelling = False
        self._handed = 0  # handed to the loop, task not created yet (under _changed)

    # -- from processor threads ----------------------------------------------------------------
    def start(self, spawn: Callable[[str, Callable[[], None]], threading.Thread]) -> None:
        """Remember how to start threads; the loop starts with the first async job."""
        self._spawn = spawn

    def takes(self, job: dict[str, Any]) -> bool:
        """Whether ``job`` is one of an async class registered here."""
        try:
            return is_async(lookup(job["class"]))
        except LookupError:
            return False  # the thread fails it as an unknown class

    def submit(self, queue: str, payload: bytes, job: dict[str, Any]) -> None:
        """Hand a job to the loop, waiting while every slot is taken. During the shutdown the
        job is not started: it stays in-flight for the requeue."""
        fetcher = self.outcomes.fetcher
        while not self._slots.acquire(timeout=0.25):
            if self.halt.is_set():
                fetcher.release(queue, payload)
                return
        if self.halt.is_set():
            self._slots.release()
            fetcher.release(queue, payload)
            return
        self._ensure_loop()
        assert self.loop is not None
        fetcher.detach()
        with self._changed:  # so wait() does not miss a job between here and its task
            self._handed += 1
        try:
            self.loop.call_soon_threadsafe(self._begin, queue, payload, job)
        except RuntimeError:  # the loop closed meanwhile (shutdown): not started
            with self._changed:
                self._handed -= 1
            self._slots.release()
            fetcher.release(queue, payload, held=False)

    def _ensure_loop(self) -> None:
        if self._ready.is_set():
            return
        with self._starting:
            if not self._ready.is_set():
                spawn = self._spawn or _plain_thread
                spawn("kiqpy.asyncio-loop", self._run)
                self._ready.wait()
                spawn("kiqpy.asyncio-watch", self._watch)

    # -- the loop thread -----------------------------------------------------------------------
    def _run(self) -> None:
        loop = _new_loop()
        asyncio.set_event_loop(loop)
        # The server chain's threads (see execute_async): up to one per running job.
        loop.set_default_executor(ThreadPoolExecutor(self.limit, "kiqpy.asyncio-chain"))
        self.loop, self._ident = loop, threading.get_ident()
        set_stop_event(self.halt)
        loop.call_soon(self._beat)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._closed.set()

    def _beat(self) -> None:
        """The loop's pulse, read by the watcher."""
        self._tick = time.monotonic()
        assert self.loop is not None
        self.loop.call_later(TICK, self._beat)

    def _begin(self, queue: str, payload: bytes, job: dict[str, Any]) -> None:
        assert self.loop is not None
        # A fresh context per task (a task copies the context it is created in): its log
        # context and current_job() are its own; stopping() sees the worker's halt.
        context = contextvars.Context()
        context.run(set_stop_event, self.halt)
        task = context.run(
            self.loop.create_task,
            self._job(f"kiqpy.async-{next(self._numbers)}", queue, payload, job),
            name=str(job.get("jid")))
        with self._changed:
            self._tasks.add(task)
            self._handed -= 1
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._slots.release()
        with self._changed:
            self._tasks.discard(task)
            self._changed.notify_all()
        if not task.cancelled() and task.exception() is not None:  # a bug of ours, not a job's
            self.outcomes.log.error("async job task crashed", error=repr(task.exception()))

    async def _job(self, name: str, queue: str, payload: bytes, job: dict[str, Any]) -> None:
        """One async job, the same path as :meth:`Processor.process` (see there)."""
        out = self.outcomes
        if self._cancelling:  # reached the loop after the shutdown's deadline: not started
            out.finish(queue, payload, None, time.perf_counter(), held=False)
            return
        out.busy[name] = (queue, job, time.time())
        _bind(jid=job["jid"], job_class=job["class"], queue=queue)
        out.log.info("start")
        started = time.perf_counter()
        error: BaseException | None = None
        cls = limit = timeout = value = None
        this = asyncio.current_task()
        assert this is not None
        try:
            cls = lookup(job["class"])
            options = cls.kiqpy_options_resolved
            timeout = job.get("timeout") or options.get("timeout", out.default_timeout)
            limit = options.get("concurrency_limit")
            with ExitStack() as slot:
                if limit is not None and not await self._in_io(
                        out._take_slot, slot, job, options, limit, name):
                    raise Throttled
                self._performing.add(this)
                try:
                    value = await execute_async(cls, job, self.chain, timeout)
                finally:
                    self._performing.discard(this)
                    if limit is not None:  # the slot's release writes to Redis
                        await self._in_io(slot.pop_all().close)
        except asyncio.CancelledError as exc:
            # Cancelled by the shutdown's deadline: not acked, so it is requeued. Any other
            # cancellation (the job's own) is a failure like any error.
            error = Interrupted("cancelled at the shutdown's deadline") if self._cancelling \
                else exc
        except BaseException as exc:  # a job's SystemExit must not end the loop either
            error = exc
        outcome: str | None = None
        failed = False
        try:  # an error of conclude itself leaves outcome None: released, never stranded
            if error is None and not writes_on_success(job):
                # no Redis write: concluded here, on the loop
                outcome, failed = out.conclude(queue, job, payload, cls, None, started, limit,
                                             timeout)
            else:  # a failure, a batch's job or a result to keep: Redis writes, off the loop
                outcome, failed = await self._in_io(out.conclude, queue, job, payload, cls,
                                                    error, started, limit, timeout, value,
                                                    False)
        except Exception as exc:  # the job must still be released below
            out.log.error("async job outcome not written; released for a re-run",
                          error=repr(exc))
        finally:
            self.processed += outcome != "throttled"
            self.failed += failed
            del out.busy[name]
        out.finish(queue, payload, outcome, started, held=False)

    async def _in_io(self, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)`` in the I/O pool, with this task's context (its log context)."""
        assert self.loop is not None
        context = contextvars.copy_context()
        return await self.loop.run_in_executor(self._io, context.run, call, *args)

    # -- the watcher ---------------------------------------------------------------------------
    def _watch(self) -> None:
        """Thread ``kiqpy.asyncio-watch``: warn once per stall when the loop has not turned for
        ``BLOCKED_SECONDS``, naming the job running and where the loop thread is."""
        reported = 0.0
        while not self._closed.wait(TICK):
            tick = self._tick
            late = time.monotonic() - tick
            if late < BLOCKED_SECONDS or tick == reported or self.loop is None:
                continue
            reported = tick
            task = asyncio.current_task(self.loop)  # a dict read; fine from another thread
            frame = sys._current_frames().get(self._ident or -1)
            stack = "".join(traceback.format_stack(frame, limit=8)) if frame else ""
            self.outcomes.log.warning(
                "event loop blocked: an async job runs blocking code (use await, or "
                "asyncio.to_thread for blocking calls)", blocked_for=round(late, 3),
                jid=task.get_name() if task is not None else None, stack=stack)

    # -- shutdown ------------------------------------------------------------------------------
    def running(self) -> int:
        return len(self._tasks) + self._handed

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the running async jobs; True when none is left."""
        end = time.monotonic() + timeout
        with self._changed:
            while self._tasks or self._handed:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.25))
        return True

    def cancel(self) -> None:
        """After the deadline: cancel every job still inside perform and wait (up to
        ``CANCEL_GRACE``) for them to unwind; they are released, not acked, so the shutdown's
        requeue puts them back. A job settling its failure finishes that first."""
        loop = self.loop
        if loop is None or not self.running():
            return

        def cancel_all() -> None:
            self._cancelling = True
            for task in list(self._performing):
                task.cancel()

        try:
            loop.call_soon_threadsafe(cancel_all)
        except RuntimeError:
            return
        self.wait(CANCEL_GRACE)

    def close(self) -> None:
        """Stop the loop (after :meth:`wait` or :meth:`cancel`)."""
        loop = self.loop
        if loop is not None and not self._closed.is_set():
            with suppress(RuntimeError):  # already closed
                loop.call_soon_threadsafe(loop.stop)
            self._closed.wait(CANCEL_GRACE)
        self._io.shutdown(wait=False)


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when uvloop is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _plain_thread(name: str, body: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread
