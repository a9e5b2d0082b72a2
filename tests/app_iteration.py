"""Iterable jobs for the tests: each iteration records its item in ``test:items``; callbacks
record themselves in ``test:callbacks``."""

from __future__ import annotations

import os
import time

import kiqpy
from tests.app_jobs import r


class Export(kiqpy.IterableWorker, name="iteration.Export", retry=3):
    save_every = 0.05

    def build_enumerator(self, count: int, fail_at: int = -1, *, cursor):
        return kiqpy.iteration.range_enumerator(0, count, cursor=cursor)

    def each_iteration(self, item: int, count: int, fail_at: int = -1) -> None:
        if item == fail_at and not r().getset("test:failed-once", 1):
            raise RuntimeError(f"item {item} failed once")
        r().rpush("test:items", item)
        time.sleep(float(os.environ.get("KIQPY_TEST_ITEM_SECONDS", "0.002")))

    def on_start(self, *args) -> None:
        r().rpush("test:callbacks", "start")

    def on_resume(self, *args) -> None:
        r().rpush("test:callbacks", "resume")

    def on_stop(self, *args) -> None:
        r().rpush("test:callbacks", "stop")

    def on_complete(self, *args) -> None:
        r().rpush("test:callbacks", "complete")

    def on_cancel(self, *args) -> None:
        r().rpush("test:callbacks", "cancel")


class ShortTurns(Export, name="iteration.ShortTurns"):
    max_iteration_runtime = 0.3
