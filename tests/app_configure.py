"""A jobs module that sets its own defaults with ``kiqpy.configure`` at import time, as an app's
``-r`` module may; loaded by tests/test_cli_precedence.py with ``-r tests.app_configure``."""

from __future__ import annotations

import kiqpy

kiqpy.configure(concurrency=3, tag="app", queues=(("appq", 0),), namespace="appns")


class Configured(kiqpy.Worker, name="Configured"):
    def perform(self) -> None:
        pass
