"""Huey with RedisHuey at its defaults: ``huey_consumer huey_app.huey -w 10 -k thread``."""

from __future__ import annotations

from .base import System, compare_bin

SYSTEM = System(
    name="huey",
    defaults="huey_consumer -w 10 -k thread, defaults otherwise; INCR through "
             "huey.storage.conn; logs off = -q",
    worker=lambda logs, url: [compare_bin("huey", "huey_consumer"), "huey_app.huey", "-w", "10",
                         "-k", "thread", *([] if logs else ["-q"])],
    app=[compare_bin("huey", "python"), "-m", "appcli", "huey_app"],
    has_bulk=False,
)
