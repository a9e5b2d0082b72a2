"""The jobs of the middleware example, and the registration of its middleware: the worker
imports this module with ``kiqpy -r examples.middleware.jobs``, and the web code imports it to
push jobs, so both get the middleware.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import structlog

import kiqpy
from examples.middleware.tenancy import (
    RestoreTenant,
    StampTenant,
    current_request_id,
    current_tenant,
)

log = structlog.get_logger("examples.middleware")

# Added to the default configuration at import time, before any push. (A later
# kiqpy.configure(redis_url=...) keeps them; kiqpy.configure(Config(...)) would not.)
config = kiqpy.default_config()
config.client_middleware.add(StampTenant)
config.server_middleware.add(RestoreTenant)

DEFAULT_OUT = Path(__file__).resolve().parent / "var"


class BuildReport(kiqpy.Worker):
    """Builds a report for the current tenant, then has it mailed. Neither takes the tenant
    as an argument: the middleware carries it."""

    def perform(self, report: str) -> None:
        record("BuildReport", report)
        EmailReport.perform_async(report)  # stamped with the tenant restored for this job


class EmailReport(kiqpy.Worker):
    def perform(self, report: str) -> None:
        record("EmailReport", report)


def record(job: str, report: str) -> None:
    """What a job did, for whom: a JSON line in ``$MIDDLEWARE_OUT/reports.log`` (else
    ``var/reports.log`` next to this file)."""
    line = json.dumps({"job": job, "report": report, "tenant": current_tenant.get(),
                       "request_id": current_request_id.get()})
    path = Path(os.environ.get("MIDDLEWARE_OUT") or DEFAULT_OUT) / "reports.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    log.info("recorded", job=job, report=report)
