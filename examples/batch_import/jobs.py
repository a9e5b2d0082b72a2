"""The batch import example: import rows, then email the user once when every row is done.

    kiqpy -r examples.batch_import.jobs

``ImportRow`` stores one row (in a Redis hash, standing in for a database table); rows whose
email is missing fail their first attempt (a flaky lookup) and succeed on the retry, a second
later. The batch's ``success`` callback ``ImportDone`` "emails" the user by appending a line to
``examples/batch_import/var/outbox.txt`` (``BATCH_IMPORT_OUTBOX`` overrides it); ``complete``
runs ``ImportReport``, which logs how many rows had to be retried.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import structlog

import kiqpy

log = structlog.get_logger("examples.batch_import")

DEFAULT_OUTBOX = Path(__file__).resolve().parent / "var" / "outbox.txt"


def outbox() -> Path:
    return Path(os.environ.get("BATCH_IMPORT_OUTBOX") or DEFAULT_OUTBOX)


class ImportRow(kiqpy.Worker, queue="imports"):
    """Stores one row of import ``import_id``."""

    def perform(self, import_id: int, row: dict[str, Any]) -> None:
        with kiqpy.redis() as conn:
            if not row.get("email") and conn.sadd(f"example:import:{import_id}:slow", row["id"]):
                raise LookupError(f"row {row['id']}: the email lookup timed out")
            conn.hset(f"example:import:{import_id}", row["id"], row.get("email") or "?")

    def kiqpy_retry_in(self, count: int, exc: Exception, job: dict[str, Any]) -> float:
        return 1.0  # a flaky lookup: try again in a second, not in 15


class ImportDone(kiqpy.Worker, queue="imports"):
    """The batch's success callback: every row is imported; tell the user, once."""

    def perform(self, status: dict[str, Any], options: dict[str, Any]) -> None:
        path = outbox()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write(f"To: {options['email']}: import {options['import_id']} is done, "
                      f"{status['total']} rows\n")
        log.info("import done", import_id=options["import_id"], rows=status["total"])


class ImportReport(kiqpy.Worker, queue="imports"):
    """The batch's complete callback: every row ran at least once."""

    def perform(self, status: dict[str, Any], options: dict[str, Any]) -> None:
        log.info("import complete", import_id=options["import_id"], rows=status["total"],
                 failed_first=status["failures"])
