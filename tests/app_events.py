"""Lifecycle event handlers that record each event, with the thread it ran in, in
``test:events``; with KIQPY_TEST_FAIL_STARTUP set, the startup handler raises."""

from __future__ import annotations

import os
import threading

import kiqpy
from tests.app_jobs import r

config = kiqpy.default_config()


def recorder(event: str):
    def record() -> None:
        r().rpush("test:events", f"{event}:{threading.current_thread().name}")
        if event == "startup" and os.environ.get("KIQPY_TEST_FAIL_STARTUP"):
            raise RuntimeError("the cache could not be warmed")
    return record


for name in ("startup", "heartbeat", "beat", "quiet", "shutdown", "exit"):
    config.on(name, recorder(name))
