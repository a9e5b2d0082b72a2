"""Job classes for the admin commands' tests (tests/test_cli_admin.py, tests/test_cli_top.py):
named by their module path, as an application's are (``tests.app_admin.Report``)."""

from __future__ import annotations

import os
import time

import redis

import kiqpy


class Report(kiqpy.Worker, queue="reports", retry=3):
    """Does nothing; what matters is how it is pushed."""

    def perform(self, *args):
        pass


class Nap(kiqpy.Worker):
    """Sleeps until the list ``test:wake`` has an item (or 30 s), so it shows as busy."""

    def perform(self, tag):
        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not client.llen("test:wake"):
            time.sleep(0.05)
