"""Dramatiq with its Redis broker at its defaults, one process of 10 threads (its default is one
process per core of 8 threads; -c 10 in one process is what every system here gets)."""

from __future__ import annotations

from .base import System, compare_bin

SYSTEM = System(
    name="dramatiq",
    defaults="dramatiq --processes 1 --threads 10, defaults otherwise; INCR through "
             "broker.client; no per-job log line at INFO, so logs on = its default",
    worker=lambda logs, url: [compare_bin("dramatiq", "dramatiq"), "dramatiq_app",
                         "--processes", "1", "--threads", "10"],
    app=[compare_bin("dramatiq", "python"), "-m", "appcli", "dramatiq_app"],
    has_bulk=False,
)
