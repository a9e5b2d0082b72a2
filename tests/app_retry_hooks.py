"""Jobs whose ``kiqpy_retry_in`` picks the outcome of their failure, for a worker loaded with
``-r tests.app_retry_hooks`` (tests/test_retry_hooks.py). Each counts its attempts in Redis
under ``test:attempts:<name>``, then raises."""

from __future__ import annotations

import kiqpy
from tests.app_jobs import r


class _Failing(kiqpy.Worker):
    def perform(self, *args):
        r().incr(f"test:attempts:{self.kiqpy_job_name}")
        raise RuntimeError("boom")


class KillNow(_Failing, name="HookKill", retry=5):
    """"kill": to the dead set at once, retries left or not."""

    def kiqpy_retry_in(self, count, exc, job):
        return "kill"


class DiscardNow(_Failing, name="HookDiscard", retry=5):
    """"discard": dropped at once, kept nowhere."""

    def kiqpy_retry_in(self, count, exc, job):
        return "discard"


class RetryLater(_Failing, name="HookLater", retry=5):
    """Seconds: to the retry set, due in an hour (the control case)."""

    def kiqpy_retry_in(self, count, exc, job):
        return 3600


def innermost():
    raise ValueError("deep down")


def middle():
    innermost()


class DeepFailure(kiqpy.Worker, name="HookDeep", retry=5, backtrace=True):
    """Fails two calls below ``perform``, keeping its backtrace; retried in an hour."""

    def perform(self):
        r().incr(f"test:attempts:{self.kiqpy_job_name}")
        middle()

    def kiqpy_retry_in(self, count, exc, job):
        return 3600
