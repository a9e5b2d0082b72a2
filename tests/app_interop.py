"""The kiqpy side of tests/test_sidekiq_interop.py: jobs Ruby pushes under their ``name``, and
stand-ins for the Ruby classes, so Python pushes them by their Ruby name. Each job records its
job map (as kiqpy read it) in the list ``interop:python``."""

from __future__ import annotations

import json
import time

import kiqpy
from tests.job_redis import r


def record() -> None:
    job = kiqpy.current_job() or {}
    seen = {**job, "latency": time.time() - _seconds(job.get("enqueued_at"))}
    r().rpush("interop:python", json.dumps(seen))


def _seconds(value: object) -> float:
    # What kiqpy itself accepts: float seconds (Sidekiq 6/7) or int ms (Sidekiq 8).
    if type(value) is int and value > 100_000_000_000:
        return value / 1000
    return float(value) if isinstance(value, (int, float)) else 0.0


class PyRecord(kiqpy.Worker, name="PyRecord", queue="python"):
    def perform(self, tag):
        record()


class PyFails(kiqpy.Worker, name="PyFails", queue="python", retry=3):
    def perform(self, tag):
        record()
        raise ValueError(f"python fails {tag}")


class PySlow(kiqpy.Worker, name="PySlow", queue="python"):
    def perform(self, seconds):
        record()
        time.sleep(seconds)


# -- the Ruby classes (tests/interop_jobs.rb), pushed from Python by name -----------------------
class RubyJob(kiqpy.Worker):
    """A job that runs in Ruby: a kiqpy worker that fetched it would retry it with this error."""

    def perform(self, *args):
        raise NotImplementedError(f"{self.kiqpy_job_name} runs in Ruby Sidekiq")


class RubyRecord(RubyJob, name="RubyRecord", queue="ruby"):
    pass


class RubyFails(RubyJob, name="RubyFails", queue="ruby", retry=3):
    pass


class RubySlow(RubyJob, name="RubySlow", queue="ruby"):
    pass
