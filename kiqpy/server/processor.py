"""One job's life in a processor thread: decode -> log context -> retry guard -> server chain ->
perform -> ack. A job whose class has an ``async def perform`` is handed to the event loop
(kiqpy/server/aio.py) after the decode; its outcome goes through the same
:meth:`Processor.conclude` and :meth:`Processor.finish`. Formats no key strings and talks to
Redis only through the fetcher (acks) and the retrier (failures).
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from typing import Any, Protocol

import structlog

from kiqpy.chain import Chain
from kiqpy.client.execution import execute, set_stop_event
from kiqpy.client.registry import lookup
from kiqpy.client.results import encode_result
from kiqpy.errors import ConfigurationError, Interrupted, JobTimeout, OverLimit, PayloadError
from kiqpy.limiter import Slot, concurrent
from kiqpy.payload import decode
from kiqpy.server.batches import HANDED_OVER
from kiqpy.server.fetch import STOP, Fetcher
from kiqpy.server.metrics import Recorder
from kiqpy.server.retry import Retrier
from kiqpy.server.watchdog import Watchdog, settle


class AsyncHandOff(Protocol):
    """What a processor needs of the event loop that runs async jobs
    (:class:`kiqpy.server.aio.AsyncRunner`, which imports this module, not the reverse)."""

    def takes(self, job: dict[str, Any]) -> bool: ...

    def submit(self, queue: str, payload: bytes, job: dict[str, Any]) -> None: ...


# The lease of a concurrency_limit slot: the heartbeat renews the slots of running jobs every
# beat (heartbeat_interval, 10 s by default), so a job may run for as long as it needs, and a
# slot held by a killed process is free again at most this long after its last renewal.
CLASS_LEASE = 60.0

_bind = structlog.contextvars.bind_contextvars
_clear = structlog.contextvars.clear_contextvars


class Processor:
    """Loop (thread ``kiqpy.processor-N``): take a job from the fetcher's work queue, run it,
    record the outcome, ack it. Owns its counters (read by the heartbeat) and its entry in the
    manager's busy map. Exits on the STOP sentinel; a job it is running when the process is
    forced down is never acked, so it is requeued or recovered."""

    def __init__(self, name: str, fetcher: Fetcher, retrier: Retrier, chain: Chain,
                 busy: dict[str, tuple[str, dict[str, Any], float]], halt: threading.Event,
                 log: Any, metrics: Recorder | None = None, watchdog: Watchdog | None = None,
                 default_timeout: float | None = None, aio: AsyncHandOff | None = None,
                 leases: dict[str, Slot] | None = None) -> None:
        self.name, self.fetcher, self.retrier, self.chain = name, fetcher, retrier, chain
        self.leases = leases if leases is not None else {}
        self.busy, self.halt, self.log = busy, halt, log
        self.processed = 0
        self.failed = 0
        # Per class and minute, flushed by the heartbeat (NoMetrics with --no-metrics).
        self.metrics = metrics if metrics is not None else Recorder()
        self.watchdog, self.default_timeout = watchdog, default_timeout
        self.aio = aio  # the event loop for async jobs (None: no async job class is known)

    def run(self) -> None:
        # The logger as configured now, bound once: each call on the lazy proxy get_logger()
        # returns would look the configuration up again (two lines per job).
        self.log = self.log.bind()
        set_stop_event(self.halt)  # iterable jobs stop between iterations once it is set
        work = self.fetcher.work
        while True:
            unit = work.get()
            if unit is STOP:
                return
            if self.halt.is_set():
                # Shutting down: a job not started yet stays in-flight for the requeue.
                self.fetcher.release(*unit)
                continue
            if unit[0] in self.fetcher.paused:
                # Its queue was paused after the job was taken (prefetched): not started, so
                # it goes back to the front of its queue.
                self.fetcher.give_back(unit[0], unit[1], self.retrier.give_up)
                continue
            self.process(*unit)

    def process(self, queue: str, payload: bytes) -> None:
        try:
            job = decode(payload)
        except PayloadError as exc:
            self.processed += 1
            self.failed += 1
            if self.retrier.malformed(queue, payload, str(exc)) is not None:
                self.fetcher.done(queue, payload)
            else:  # forced down before it reached the dead set: it stays in-flight
                self.fetcher.release(queue, payload)
            return
        if self.aio is not None and self.aio.takes(job):
            # An ``async def perform``: the event loop runs it; this thread goes back to
            # fetching once the loop has a free slot for it (kiqpy/server/aio.py).
            self.aio.submit(queue, payload, job)
            return
        cls = None
        self.busy[self.name] = (queue, job, time.time())
        _bind(jid=job["jid"], job_class=job["class"], queue=queue)
        self.log.info("start")
        started = time.perf_counter()
        error: BaseException | None = None
        limit = timeout = outcome = value = None
        failed = False
        try:
            cls = lookup(job["class"])
            options = cls.kiqpy_options_resolved
            # The push's timeout, else the class's here (a job pushed by name from elsewhere
            # carries none), else the worker's --default-timeout.
            timeout = job.get("timeout") or options.get("timeout", self.default_timeout)
            limit = options.get("concurrency_limit")
            if limit is None:
                value = self._run(cls, job, timeout)
            else:
                with ExitStack() as slot:
                    if not self._take_slot(slot, job, options, limit):
                        raise Throttled
                    value = self._run(cls, job, timeout)
        except BaseException as exc:  # a job's SystemExit must not end the worker either
            error = exc
        try:
            outcome, failed = self.conclude(queue, job, payload, cls, error, started, limit,
                                          timeout, value)
        finally:
            self.processed += outcome != "throttled"  # a put-back is not a run
            self.failed += failed
            del self.busy[self.name]
            _clear()
        self.finish(queue, payload, outcome, started)

    def conclude(self, queue: str, job: dict[str, Any], payload: bytes, cls: Any,
                 error: BaseException | None, started: float, limit: Any, timeout: Any,
                 value: Any = None, hand_over: bool = True) -> tuple[str | None, bool]:
        """The outcome of one run, logged, counted in the metrics and written (retry set,
        dead set, schedule) through the retrier: (outcome, failed). The outcome is None when
        the job must not be acked (interrupted for the shutdown, or a forced shutdown cut
        the retrier's write short). Shared by the processor threads and the event loop's
        tasks (which call it in an I/O thread when ``error`` is set); touches no counter of
        ``self``, so several threads may call it at once.

        A success of a batch's job, or of a job whose result is kept (``value``: perform's
        return value), is written through the retrier's outcomes: with ``hand_over`` the batch
        reporter thread takes it and acks it itself (outcome ``HANDED_OVER``)."""
        elapsed = time.perf_counter() - started
        stored: bytes | None = None
        if error is None and ("result_ttl" in job or job.get("store_result")):  # kept result
            try:
                stored = encode_result(value)
            except BaseException as exc:  # a value it cannot store fails the job
                error = exc
        if error is None:
            self.metrics.record(job["class"], elapsed, False)
            self.log.info("done", elapsed=round(elapsed, 6))
            if "bid" in job or stored is not None:  # a batch's job, or a result to keep
                unit = (queue, payload, time.perf_counter() - started) if hand_over else None
                return self.retrier.outcomes.succeeded(job, stored, unit), False
            return "done", False
        if isinstance(error, Interrupted):
            # An iterable job stopped for the shutdown (or an async job cancelled by it):
            # not acked, so the shutdown requeues it.
            self.log.info("interrupted for the shutdown; will resume", elapsed=round(elapsed, 6))
            return None, False
        if isinstance(error, Throttled):
            # Its class is at its concurrency_limit: back in a second, nothing counted; the
            # thread is free at once for jobs of other classes.
            self.log.info("throttled", concurrency_limit=limit)
            return self.retrier.put_back(job, payload) and "throttled", False
        if isinstance(error, OverLimit):
            # A full limiter is not a failure: the job goes back to the schedule set for
            # later, counted in its `overrated` field only (a failure after MAX_OVERRATED).
            self.log.info("overrated", elapsed=round(elapsed, 6), limiter=error.limiter)
            outcome = self.retrier.overrated(queue, job, error, cls, payload)
            if outcome in ("overrated", None):
                return outcome, False
            self.metrics.record(job["class"], elapsed, True)  # rescheduled too often
            return outcome, True
        if isinstance(error, JobTimeout) and not error.args:  # sent by the watchdog
            error = JobTimeout(f"{job['class']} ran longer than its timeout of {timeout} s")
        self.metrics.record(job["class"], elapsed, True)
        self.log.warning("fail", elapsed=round(elapsed, 6),
                         error_class=type(error).__name__, error=_describe(error))
        return self.retrier.failed(queue, job, error, cls, payload), True

    def finish(self, queue: str, payload: bytes, outcome: str | None, started: float,
               held: bool = True) -> None:
        """Ack a job with a recognised outcome; release one without (it stays in-flight for
        the requeue). ``held``: False for a job the fetcher no longer counts (async)."""
        if outcome == HANDED_OVER:  # the batch reporter acks it once it has reported it
            return
        if outcome is not None:
            self.fetcher.done(queue, payload, time.perf_counter() - started, held)
        else:
            self.fetcher.release(queue, payload, held)

    def _run(self, cls: Any, job: dict[str, Any], timeout: Any) -> Any:
        """Run the job, under the watchdog when it has a timeout; perform's return value."""
        if type(timeout) not in (int, float) or timeout <= 0 or self.watchdog is None:
            return execute(cls, job, self.chain)
        try:
            self.watchdog.arm(job["jid"], float(timeout))
            return execute(cls, job, self.chain)
        finally:
            self.watchdog.disarm()
            settle()

    def _take_slot(self, slot: ExitStack, job: dict[str, Any], options: dict[str, Any],
                   limit: int, holder: str | None = None) -> bool:
        """A slot of the class's concurrent limiter (per concurrency_key when the class has
        one), held until ``slot`` closes and renewed by the heartbeat meanwhile; False when
        all ``limit`` are taken (no waiting)."""
        name = f"class:{job['class']}"
        key_of = options.get("concurrency_key")
        if key_of is not None:
            key = key_of(*job.get("args", ()))
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise ConfigurationError(f"{job['class']}: concurrency_key returned {key!r}; "
                                         "it must return a str")
            name = f"{name}:{key}"
        # Renewed at every beat: the lease outlasts several beats even when they are slow.
        lease = max(CLASS_LEASE, 6 * self.retrier.config.heartbeat_interval)
        gate = concurrent(name, limit, wait_timeout=0, lock_timeout=lease,
                          config=self.retrier.config)
        try:
            held = slot.enter_context(gate.within_limit())
        except OverLimit:
            return False
        holder = holder or self.name  # an async job's task name (they share one Processor)
        self.leases[holder] = held
        slot.callback(self.leases.pop, holder, None)
        return True


def writes_on_success(job: dict[str, Any]) -> bool:
    """Whether a success of ``job`` writes to Redis before its ack: a batch's job (its report)
    or a job whose result is kept."""
    return "bid" in job or "result_ttl" in job or bool(job.get("store_result"))


class Throttled(Exception):
    """Raised inside a run when a job's class has no free concurrency slot."""


def _describe(exc: BaseException) -> str:
    """``str(exc)`` for the log, even for an exception whose ``__str__`` raises."""
    try:
        return str(exc)[:500]
    except Exception:
        return f"<{type(exc).__name__}: str() failed>"
