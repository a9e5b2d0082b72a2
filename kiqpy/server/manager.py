"""The pool of processor threads, the map of what each one is running, and the counters the
heartbeat reports. Does no Redis I/O of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kiqpy.chain import Chain
from kiqpy.limiter import Slot
from kiqpy.server.fetch import STOP, Fetcher
from kiqpy.server.metrics import NoMetrics, Recorder
from kiqpy.server.processor import Processor
from kiqpy.server.retry import Retrier
from kiqpy.server.watchdog import Watchdog


class Manager:
    """Owns ``concurrency`` processor threads (``kiqpy.processor-1`` ...). :meth:`stop` tells
    them to finish their current job and exit; :meth:`join` waits for them with a deadline."""

    def __init__(self, concurrency: int, fetcher: Fetcher, retrier: Retrier, chain: Chain,
                 log: Any, metrics: bool = True, watchdog: Watchdog | None = None,
                 default_timeout: float | None = None) -> None:
        self.fetcher = fetcher
        # thread name -> (queue, job map, start time); written only by that thread
        self.busy: dict[str, tuple[str, dict[str, Any], float]] = {}
        # thread name -> the concurrency_limit slot its job holds; renewed by the heartbeat
        self.leases: dict[str, Slot] = {}
        self.halt = threading.Event()
        self.processors = [
            Processor(f"kiqpy.processor-{n}", fetcher, retrier, chain, self.busy, self.halt, log,
                      Recorder() if metrics else NoMetrics(), watchdog, default_timeout,
                      self.leases)
            for n in range(1, concurrency + 1)
        ]
        self.threads: list[threading.Thread] = []

    def start(self, spawn: Callable[[str, Callable[[], None]], threading.Thread]) -> None:
        for processor in self.processors:
            self.threads.append(spawn(processor.name, processor.run))

    def stop(self) -> None:
        """Each processor finishes the job it is running, then exits; queued jobs stay
        in-flight."""
        self.halt.set()
        for _ in self.processors:
            self.fetcher.work.put(STOP)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when every processor has exited."""
        end = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, end - time.monotonic()))
        return not any(thread.is_alive() for thread in self.threads)

    def held_slots(self) -> list[Slot]:
        """The concurrency_limit slots the running jobs hold (safe to read while they run)."""
        return list(self.leases.values())

    def counts(self) -> tuple[int, int]:
        """Jobs (processed, failed) since start, summed over processors."""
        processed = sum(p.processed for p in self.processors)
        failed = sum(p.failed for p in self.processors)
        return processed, failed

    def snapshot(self) -> dict[str, tuple[str, dict[str, Any], float]]:
        """A copy of the busy map (safe to read while processors run)."""
        return dict(self.busy)
