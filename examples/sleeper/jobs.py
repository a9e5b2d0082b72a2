"""The job of the sleeper example. The worker imports it with ``-r examples.sleeper.jobs``:

    kiqpy -r examples.sleeper.jobs -q default
"""

from __future__ import annotations

import time

import structlog

import kiqpy

# kiqpy logs with structlog; a job's lines made with it carry the jid, job_class and queue
# that the worker binds around every job, in the worker's format (console or JSON).
log = structlog.get_logger("examples.sleeper")


class Sleeper(kiqpy.Worker):
    """Sleeps for ``seconds``: stands in for a slow report, an API call or an image resize,
    work that should not make a web request wait."""

    def perform(self, seconds: float) -> None:
        log.info("sleeping", seconds=seconds)
        time.sleep(seconds)
        log.info("awake")
