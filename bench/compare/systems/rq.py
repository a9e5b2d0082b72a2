"""RQ at its defaults (a forked child per job): ``rq worker-pool -n 10``, ten such workers."""

from __future__ import annotations

from .base import System, compare_bin

SYSTEM = System(
    name="rq",
    defaults="rq worker-pool -n 10 (forking workers), defaults otherwise; INCR through an app "
             "redis.Redis; logs off = -q",
    worker=lambda logs, url: [compare_bin("rq", "rq"), "worker-pool", "-n", "10", "--url",
                         url, *([] if logs else ["-q"])],
    app=[compare_bin("rq", "python"), "-m", "appcli", "rq_app"],
    has_bulk=True,
)
