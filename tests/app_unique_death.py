"""Unique jobs that fail in each way a job can leave for good, for a worker loaded with
``-r tests.app_unique_death`` (tests/test_unique_death.py). Like a user's jobs module, it
installs the unique-jobs middleware when imported. Each job counts its attempts in Redis under
``test:attempts:<name>``, then raises."""

from __future__ import annotations

import kiqpy
import kiqpy_middleware.unique
from tests.app_jobs import r

kiqpy_middleware.unique.install()


class _Failing(kiqpy.Worker):
    def perform(self, *args):
        r().incr(f"test:attempts:{self.kiqpy_job_name}")
        raise RuntimeError("boom")


class NoRetry(_Failing, name="UniqueNoRetry", unique_for=60, retry=False):
    """Dropped after its failure; death handlers run."""


class Exhausted(_Failing, name="UniqueExhausted", unique_for=60, retry=0):
    """No retries: to the dead set."""


class Killed(_Failing, name="UniqueKilled", unique_for=60, retry=5):
    """kiqpy_retry_in says "kill": to the dead set at once."""

    def kiqpy_retry_in(self, count, exc, job):
        return "kill"


class Discarded(_Failing, name="UniqueDiscarded", unique_for=60, retry=5):
    """kiqpy_retry_in says "discard": dropped at once."""

    def kiqpy_retry_in(self, count, exc, job):
        return "discard"


class Retried(_Failing, name="UniqueRetried", unique_for=60, retry=5):
    """Retried in an hour: it has not died, so it keeps its lock."""

    def kiqpy_retry_in(self, count, exc, job):
        return 3600
