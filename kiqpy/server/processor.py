"""One job's life in a processor thread: decode -> log context -> retry guard -> server chain ->
perform -> ack. Formats no key strings and talks to Redis only through the fetcher (acks) and
the retrier (failures).
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from typing import Any

import structlog

from kiqpy.chain import Chain
from kiqpy.client.execution import execute, set_stop_event
from kiqpy.client.registry import lookup
from kiqpy.client.results import encode_result
from kiqpy.errors import Interrupted, JobTimeout, OverLimit, PayloadError
from kiqpy.limiter import concurrent
from kiqpy.payload import decode
from kiqpy.server.batches import HANDED_OVER
from kiqpy.server.fetch import STOP, Fetcher
from kiqpy.server.metrics import Recorder
from kiqpy.server.retry import Retrier
from kiqpy.server.watchdog import Watchdog, settle

# How long a concurrency_limit slot is held at most: a job of a limited class running longer no
# longer counts against the limit, and a slot held by a killed process is free after this.
CLASS_LEASE = 300.0

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
                 default_timeout: float | None = None) -> None:
        self.name, self.fetcher, self.retrier, self.chain = name, fetcher, retrier, chain
        self.busy, self.halt, self.log = busy, halt, log
        self.processed = 0
        self.failed = 0
        # Per class and minute, flushed by the heartbeat (NoMetrics with --no-metrics).
        self.metrics = metrics if metrics is not None else Recorder()
        self.watchdog, self.default_timeout = watchdog, default_timeout

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
        cls = None
        self.busy[self.name] = (queue, job, time.time())
        _bind(jid=job["jid"], job_class=job["class"], queue=queue)
        self.log.info("start")
        started = time.perf_counter()
        outcome: str | None = "done"
        stored: bytes | None = None  # the encoded result, for store_result / result_ttl
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
                    if not self._take_slot(slot, job["class"], limit):
                        raise _Throttled
                    value = self._run(cls, job, timeout)
            if "result_ttl" in job or job.get("store_result"):
                stored = encode_result(value)  # a value it cannot store fails the job
        except Interrupted:
            # An iterable job stopped for the shutdown: not acked, so the shutdown requeues it.
            self.log.info("interrupted for the shutdown; will resume",
                          elapsed=round(time.perf_counter() - started, 6))
            outcome = None
        except _Throttled:
            # Its class is at its concurrency_limit: back in a second, nothing counted; the
            # thread is free at once for jobs of other classes.
            self.log.info("throttled", concurrency_limit=limit)
            outcome = self.retrier.put_back(job, payload)
            self.processed -= 1  # not a run (the finally below counts one)
        except OverLimit as exc:
            # A full limiter is not a failure: the job goes back to the schedule set for
            # later, counted in its `overrated` field only (a failure after MAX_OVERRATED).
            elapsed = time.perf_counter() - started
            self.log.info("overrated", elapsed=round(elapsed, 6), limiter=exc.limiter)
            outcome = self.retrier.overrated(queue, job, exc, cls, payload)
            if outcome not in ("overrated", None):  # rescheduled too often: a failure
                self.failed += 1
                self.metrics.record(job["class"], elapsed, True)
        except BaseException as exc:  # a job's SystemExit must not end the worker either
            if isinstance(exc, JobTimeout) and not exc.args:  # sent by the watchdog
                exc = JobTimeout(f"{job['class']} ran longer than its timeout of {timeout} s")
            elapsed = time.perf_counter() - started
            self.failed += 1
            self.metrics.record(job["class"], elapsed, True)
            self.log.warning("fail", elapsed=round(elapsed, 6),
                             error_class=type(exc).__name__, error=_describe(exc))
            outcome = self.retrier.failed(queue, job, exc, cls, payload)
        else:
            elapsed = time.perf_counter() - started
            self.metrics.record(job["class"], elapsed, False)
            self.log.info("done", elapsed=round(elapsed, 6))
            if "bid" in job or stored is not None:  # a batch's job, or a result to keep
                outcome = self.retrier.outcomes.succeeded(
                    job, stored, (queue, payload, time.perf_counter() - started))
        finally:
            self.processed += 1
            del self.busy[self.name]
            _clear()
        if outcome == HANDED_OVER:  # the batch reporter acks it once it has reported it
            return
        if outcome is not None:
            self.fetcher.done(queue, payload, time.perf_counter() - started)
        else:
            self.fetcher.release(queue, payload)


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

    def _take_slot(self, slot: ExitStack, name: str, limit: int) -> bool:
        """A slot of the class's concurrent limiter, held until ``slot`` closes; False when
        all ``limit`` are taken (no waiting)."""
        gate = concurrent(f"class:{name}", limit, wait_timeout=0, lock_timeout=CLASS_LEASE,
                          config=self.retrier.config)
        try:
            slot.enter_context(gate.within_limit())
        except OverLimit:
            return False
        return True


class _Throttled(Exception):
    """Raised inside Processor.process when a job's class has no free concurrency slot."""


def _describe(exc: BaseException) -> str:
    """``str(exc)`` for the log, even for an exception whose ``__str__`` raises."""
    try:
        return str(exc)[:500]
    except Exception:
        return f"<{type(exc).__name__}: str() failed>"
