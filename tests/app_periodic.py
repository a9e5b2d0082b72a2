"""A per-second periodic entry for the worker tests; each run records its tick in
``test:ticks``. The lease is short so a takeover after kill -9 fits in a test."""

from __future__ import annotations

import kiqpy
from tests.app_jobs import r

kiqpy.configure(periodic_lease=2.0)


class Tick(kiqpy.Worker, name="periodic.Tick"):
    def perform(self) -> None:
        job = kiqpy.current_job()
        assert job is not None
        r().rpush("test:ticks", job["periodic_tick"])
        r().sadd(f"test:jids:{job['periodic_tick']}", job["jid"])


kiqpy.periodic("* * * * * *", Tick, name="every-second")
