"""Loaded into a worker with ``-r tests.app_middleware``: the job classes of tests/app_jobs.py,
plus server middleware added to the default configuration at import time, the way an
application would. Each middleware records what it saw on ``test:trace``.

Never import this module from the test process itself: it edits the default configuration.
"""

from __future__ import annotations

import kiqpy
from tests.app_jobs import r


class Outer:
    def __call__(self, worker, job, queue, next):
        tag = job["args"][0]
        r().rpush("test:trace", f"outer:before:{tag}:{queue}:{type(worker).__name__}")
        try:
            return next()
        finally:
            r().rpush("test:trace", f"outer:after:{tag}")


class Skip:
    """Skips (never calls ``next``) jobs whose first arg starts with "skip"."""

    def __call__(self, worker, job, queue, next):
        tag = job["args"][0]
        if str(tag).startswith("skip"):
            r().rpush("test:trace", f"skip:{tag}")
            return None
        return next()


class Inner:
    def call(self, worker, job, queue, next):  # `call` works as well as `__call__`
        tag = job["args"][0]
        r().rpush("test:trace", f"inner:before:{tag}")
        result = next()
        r().rpush("test:trace", f"inner:after:{tag}")
        return result


chain = kiqpy.default_config().server_middleware
chain.add(Outer)
chain.add(Skip)
chain.add(Inner)
