"""Jobs for the timeout tests: one that spins in Python (interruptible), one stuck in a
blocking C call (time.sleep), and a quick one; each records what happened in Redis."""

from __future__ import annotations

import time

import kiqpy
from tests.app_jobs import r

kiqpy.configure(timeout_grace=1.0)


class Spin(kiqpy.Worker, name="timeouts.Spin", timeout=1, retry=1):
    def perform(self, seconds: float) -> None:
        r().rpush("test:started", "spin")
        end = time.monotonic() + seconds
        while time.monotonic() < end:  # pure Python: the timeout interrupts it
            pass
        r().rpush("test:finished", "spin")


class Stuck(kiqpy.Worker, name="timeouts.Stuck", timeout=1):
    def perform(self, seconds: float) -> None:
        r().rpush("test:started", "stuck")
        time.sleep(seconds)  # blocking in C: the timeout cannot interrupt it
        r().rpush("test:finished", "stuck")


class Quick(kiqpy.Worker, name="timeouts.Quick"):
    def perform(self, n: int) -> None:
        r().rpush("test:quick", n)


class Loop(kiqpy.Worker, name="timeouts.Loop", retry=1):
    """No timeout of its own: the worker's --default-timeout applies."""

    def perform(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
        r().rpush("test:finished", "loop")
