"""Job classes for the dashboard's browser tests (loaded by their worker with
``-r tests.web_jobs``). Each records what it did in Redis under keys prefixed ``test:``."""

from __future__ import annotations

import time

import kiqpy
from tests.app_jobs import r  # the same REDIS_URL client


class FailsUntilFixed(kiqpy.Worker, name="FailsUntilFixed", retry=5):
    """Raises until ``test:fixed`` is set, then pushes its tag onto ``test:ran``. Its next try
    is an hour away, so it waits in the retry set until someone clicks Retry now."""

    def perform(self, tag: str) -> None:
        if not r().get("test:fixed"):
            raise RuntimeError(f"the service for {tag} is down")
        r().rpush("test:ran", tag)

    def kiqpy_retry_in(self, count: int, exc: BaseException, job: dict) -> int:
        return 3600


class Nap(kiqpy.Worker, name="Nap"):
    """Sleeps ``seconds`` (a job to see on the Busy page)."""

    def perform(self, seconds: float, note: str = "") -> None:
        time.sleep(seconds)


class Tick(kiqpy.Worker, name="Tick"):
    """Does nothing: processed jobs for the live graph."""

    def perform(self, n: int) -> None:
        return None
