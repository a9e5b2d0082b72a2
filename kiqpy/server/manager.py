"""The pool of processor threads, the map of what each one is running, and the counters the
heartbeat reports. Does no Redis I/O of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kiqpy.chain import Chain
from kiqpy.limiter import Slot
from kiqpy.server.aio import AsyncRunner
from kiqpy.server.fetch import STOP, Fetcher
from kiqpy.server.metrics import NoMetrics, Recorder
from kiqpy.server.processor import Processor
from kiqpy.server.retry import Retrier
from kiqpy.server.watchdog import Watchdog


class Manager:
    """Owns ``concurrency`` processor threads (``kiqpy.processor-1`` ...) and the event loop
    for async jobs (:class:`AsyncRunner`, up to ``async_concurrency`` jobs). :meth:`stop`
    tells them to finish their current jobs and take no more; :meth:`join` waits for them
    with a deadline; :meth:`abandon` then cancels the async jobs still running."""

    def __init__(self, concurrency: int, fetcher: Fetcher, retrier: Retrier, chain: Chain,
                 log: Any, metrics: bool = True, watchdog: Watchdog | None = None,
                 default_timeout: float | None = None, async_concurrency: int = 100) -> None:
        self.fetcher = fetcher
        # thread name (or async task name) -> (queue, job map, start time); written only by
        # that thread (the loop thread for its tasks)
        self.busy: dict[str, tuple[str, dict[str, Any], float]] = {}
        # thread name -> the concurrency_limit slot its job holds; renewed by the heartbeat
        self.leases: dict[str, Slot] = {}
        self.halt = threading.Event()
        # Settles async jobs (logs, metrics, retries, acks); runs no thread itself.
        self.async_outcomes = Processor("kiqpy.asyncio", fetcher, retrier, chain, self.busy,
                                        self.halt, log, Recorder() if metrics else NoMetrics(),
                                        None, default_timeout, leases=self.leases)
        self.aio = AsyncRunner(async_concurrency, self.async_outcomes, chain, self.halt)
        self.processors = [
            Processor(f"kiqpy.processor-{n}", fetcher, retrier, chain, self.busy, self.halt, log,
                      Recorder() if metrics else NoMetrics(), watchdog, default_timeout,
                      self.aio, self.leases)
            for n in range(1, concurrency + 1)
        ]
        self.threads: list[threading.Thread] = []

    def start(self, spawn: Callable[[str, Callable[[], None]], threading.Thread]) -> None:
        self.aio.start(spawn)
        for processor in self.processors:
            self.threads.append(spawn(processor.name, processor.run))

    def stop(self) -> None:
        """Each processor finishes the job it is running, then exits; queued jobs stay
        in-flight. Async jobs running go on; no new one starts."""
        self.halt.set()
        for _ in self.processors:
            self.fetcher.work.put(STOP)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when every processor has exited and no async
        job is left (the loop is then closed)."""
        end = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, end - time.monotonic()))
        threads_done = not any(thread.is_alive() for thread in self.threads)
        if not self.aio.wait(max(0.0, end - time.monotonic())) or not threads_done:
            return False
        self.aio.close()
        return True

    def abandon(self) -> None:
        """After the deadline: cancel the async jobs still running (released, not acked: the
        shutdown's requeue puts them back) and close the loop."""
        self.aio.cancel()
        self.aio.close()

    def held_slots(self) -> list[Slot]:
        """The concurrency_limit slots the running jobs hold (safe to read while they run)."""
        return list(self.leases.values())

    def counts(self) -> tuple[int, int]:
        """Jobs (processed, failed) since start, summed over processors and async jobs."""
        processed = sum(p.processed for p in self.processors) + self.aio.processed
        failed = sum(p.failed for p in self.processors) + self.aio.failed
        return processed, failed

    def recorders(self) -> list[Recorder]:
        """Every metrics recorder, for the heartbeat to flush."""
        return [p.metrics for p in self.processors] + [self.async_outcomes.metrics]

    def snapshot(self) -> dict[str, tuple[str, dict[str, Any], float]]:
        """A copy of the busy map (safe to read while processors run)."""
        return dict(self.busy)
