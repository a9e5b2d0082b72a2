"""A resumable export: writes one CSV line per user of a (made-up) account, in batches, and
survives restarts. Stop the worker mid-way (Ctrl-C) and start it again: the export goes on
after the last batch written, not from the start.

    kiqpy -r examples.export.jobs -q exports
"""

from __future__ import annotations

import time
from pathlib import Path

import kiqpy
from kiqpy.log import get_logger

OUT = Path(__file__).resolve().parent / "var"
USERS = 2_000
BATCH = 100


def users(after: int | None, limit: int) -> list[dict]:
    """Stands in for ``SELECT ... WHERE id > :after ORDER BY id LIMIT :limit``."""
    first = (after or 0) + 1
    return [{"id": n, "email": f"user{n}@example.com"}
            for n in range(first, min(first + limit, USERS + 1))]


class ExportUsers(kiqpy.IterableWorker, queue="exports"):
    """One iteration per batch of users; the cursor is the last user id written."""

    def build_enumerator(self, account: str, *, cursor):
        # A "page" of one batch: keyset pagination over the users, BATCH at a time.
        def next_batch(after: int | None) -> list[list[dict]]:
            batch = users(after, BATCH)
            return [batch] if batch else []

        return kiqpy.iteration.keyset_enumerator(next_batch, key=lambda batch: batch[-1]["id"],
                                                 cursor=cursor)

    def each_iteration(self, batch: list[dict], account: str) -> None:
        OUT.mkdir(exist_ok=True)
        with open(OUT / f"{account}.csv", "a", encoding="utf-8") as out:
            out.writelines(f"{user['id']},{user['email']}\n" for user in batch)
        time.sleep(0.05)  # a slow database

    def on_start(self, account: str) -> None:
        (OUT / f"{account}.csv").unlink(missing_ok=True)
        get_logger().info("export started", account=account)

    def on_resume(self, account: str) -> None:
        get_logger().info("export resumed", account=account)

    def on_complete(self, account: str) -> None:
        get_logger().info("export complete", account=account,
                          file=str(OUT / f"{account}.csv"))
