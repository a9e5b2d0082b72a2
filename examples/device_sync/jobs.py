"""The jobs of the device_sync example, after a mobile sync server's adapter jobs.

    kiqpy -C examples/device_sync/kiqpy.toml
    kiqpy -r examples.device_sync.jobs -q default,product,customer,bulk

- ``SourceJob``: runs one source adapter's query for an app, a user and the client (device)
  that asked, stores the records for the devices to fetch, then enqueues a ``PingJob``.
- ``PingJob``: notifies the user's devices that there is new data (here: one JSON line
  appended to ``pings.log``; a real one would call a push service).
- ``BulkDataJob``: writes every record of some sources to one file a new device downloads
  instead of syncing record by record.

Push them with :func:`enqueue_source` and :func:`enqueue_bulk_data`, which send each to the
queue that ``settings.toml`` gives it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import structlog

import kiqpy
from examples.device_sync import settings
from examples.device_sync.adapters import adapter_for

log = structlog.get_logger("examples.device_sync")

PING_FIELDS = ("user_id", "message", "badge", "sources")


class PingJob(kiqpy.Worker, retry=3):
    """``perform({"user_id", "message", "badge", "sources"})``: notify a user's devices."""

    def perform(self, ping: dict[str, Any]) -> None:
        missing = [name for name in PING_FIELDS if name not in ping]
        if missing:
            raise ValueError(f"ping without {', '.join(missing)}: {ping!r}")
        line = json.dumps({**{name: ping[name] for name in PING_FIELDS}, "at": time.time()})
        path = settings.data_dir() / "pings.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")  # one write per line: threads' lines do not interleave
        log.info("pinged", user_id=ping["user_id"], badge=ping["badge"])


class SourceJob(kiqpy.Worker):
    """Query one source for a user, store the records, ping the user's devices. Its queue
    is chosen per source at push time (:func:`enqueue_source`)."""

    def perform(self, source: str, app_name: str, user_id: str, client_id: str,
                params: dict[str, Any] | None = None) -> None:
        records = adapter_for(source, app_name, user_id).query(params)
        write_atomically(store_path(app_name, user_id, source), json.dumps(
            {"source": source, "requested_by": client_id, "records": records}, indent=2))
        log.info("queried", source=source, user_id=user_id, records=len(records))
        # The follow-up is a job of its own: the ping is retried on its own if the push
        # service fails, without querying the back end again.
        PingJob.perform_async({"user_id": user_id, "message": f"{len(records)} {source} records",
                               "badge": len(records), "sources": [source]})


class BulkDataJob(kiqpy.Worker):
    """Write every record of ``sources`` for a user to one JSON-lines file."""

    def perform(self, app_name: str, user_id: str, sources: list[str]) -> None:
        lines = []
        for source in sources:
            for record_id, record in adapter_for(source, app_name, user_id).query().items():
                lines.append(json.dumps({"source": source, "id": record_id, **record}))
        path = settings.data_dir() / "bulk" / f"{app_name}-{user_id}.jsonl"
        write_atomically(path, "".join(line + "\n" for line in lines))
        log.info("bulk data ready", path=str(path), records=len(lines))


def enqueue_source(source: str, app_name: str, user_id: str, client_id: str,
                   params: dict[str, Any] | None = None) -> str | None:
    """Push a SourceJob to the queue ``settings.toml`` gives ``source``."""
    return SourceJob.set(queue=settings.queue_for(source)).perform_async(
        source, app_name, user_id, client_id, params)


def enqueue_bulk_data(app_name: str, user_id: str, sources: list[str]) -> str | None:
    return BulkDataJob.set(queue=settings.bulk_queue()).perform_async(app_name, user_id, sources)


def store_path(app_name: str, user_id: str, source: str) -> Path:
    return settings.data_dir() / "store" / app_name / user_id / f"{source}.json"


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file, then rename: a reader sees the old file or the new one,
    never half of one, even if the job dies mid-write and runs again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # unique per writer
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
