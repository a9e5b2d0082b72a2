"""A long job that stops when cancelled, recording how it ended."""

from __future__ import annotations

import time

import kiqpy
from tests.app_jobs import r


class LongExport(kiqpy.Worker, name="cancel.LongExport"):
    def perform(self, rows: int) -> None:
        r().rpush("test:started", self.jid)
        for row in range(rows):
            if self.cancelled:
                r().rpush("test:stopped", row)
                raise RuntimeError("export cancelled")  # stops; neither retried nor dead
            time.sleep(0.05)
        r().rpush("test:finished", self.jid)
