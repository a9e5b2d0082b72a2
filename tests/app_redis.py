"""A job that talks to Redis through ``kiqpy.redis()`` (loaded with ``-r tests.app_redis``)."""

from __future__ import annotations

import kiqpy


class ConnCount(kiqpy.Worker, name="ConnCount"):
    """INCRs ``test:conn-count`` and records which connection (CLIENT ID) did it."""

    def perform(self, n):
        with kiqpy.redis() as conn:
            pipe = conn.pipeline(transaction=False)
            pipe.incr("test:conn-count")
            pipe.sadd("test:conn-ids", conn.client_id())
            pipe.execute()


class WriteFile(kiqpy.Worker, name="WriteFile"):
    """Appends ``line`` to the file at ``path``: a job that needs no Redis write of its own."""

    def perform(self, path, line):
        with open(path, "a") as out:
            out.write(f"{line}\n")


class Boom(kiqpy.Worker, name="Boom", retry=3):
    """Always fails."""

    def perform(self):
        raise RuntimeError("boom")
