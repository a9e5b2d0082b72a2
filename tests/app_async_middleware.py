"""``-r tests.app_async_middleware``: the async jobs, with a sync server middleware that
records, around each job, what it saw (``test:around``): before/after, the jid from
current_job(), and whether the job had finished by then."""

from __future__ import annotations

import json

import kiqpy
from tests import app_async_jobs  # noqa: F401  (the job classes)
from tests.app_jobs import r


class Around:
    def __call__(self, worker, job, queue, next):
        current = kiqpy.current_job()
        r().rpush("test:around", json.dumps(["before", job["jid"], current["jid"],
                                             r().sismember("test:finished", job["args"][0])]))
        try:
            return next()
        finally:
            r().rpush("test:around", json.dumps(["after", job["jid"], current["jid"],
                                                 r().sismember("test:finished",
                                                               job["args"][0])]))


kiqpy.default_config().server_middleware.add(Around)
