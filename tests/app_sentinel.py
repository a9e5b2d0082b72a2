"""Job classes for the Sentinel tests: they reach Redis through ``kiqpy.redis()``, which
follows the master across a failover, and make their own record durable with WAIT."""

from __future__ import annotations

import kiqpy


class Record(kiqpy.Worker, name="sentinel.Record"):
    """Appends ``n`` to ``test:runs`` once a replica has it too: a record written to a master
    that is failing over could be lost, so it fails (and is retried) unless replicated."""

    def perform(self, n: int) -> None:
        with kiqpy.redis() as conn:
            pipe = conn.pipeline(transaction=False)
            pipe.rpush("test:runs", n)
            pipe.execute_command("WAIT", 1, 2000)
            if pipe.execute()[-1] < 1:
                raise RuntimeError("the record of this run was not replicated")
