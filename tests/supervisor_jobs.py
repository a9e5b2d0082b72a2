"""Jobs for tests/test_supervisor_more.py: each run is recorded in a Redis LIST (not a set), so
a job that runs twice shows up twice."""

from __future__ import annotations

import time

import kiqpy
from tests.app_jobs import r


class Logged(kiqpy.Worker, name="Logged"):
    """RPUSHes ``n`` onto the list ``test:runs`` when it starts, sleeps ``seconds``, then RPUSHes
    it onto ``test:done``."""

    def perform(self, n, seconds):
        r().rpush("test:runs", n)
        time.sleep(seconds)
        r().rpush("test:done", n)


class Big(kiqpy.Worker, name="Big"):
    """RPUSHes the length of its (large) string argument onto ``test:big``; fails afterwards
    when ``fail`` is true, so that the job lands in the retry set."""

    def perform(self, text, fail=False):
        r().rpush("test:big", len(text))
        if fail:
            raise ValueError("a big job failing on purpose")
