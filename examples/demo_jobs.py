"""Example job classes for ``examples/demo.py``.

A worker runs them with ``kiqpy -r demo_jobs -q default,mail`` from this directory: job names are
``<module>.<class>``, so the worker must import this module under the same name as the code that
enqueued the jobs (``demo.py`` imports it as ``demo_jobs``).
"""

from __future__ import annotations

import time

import kiqpy


class Sleeper(kiqpy.Worker):
    """Sleeps for ``seconds``: stands in for a slow call to another service."""

    def perform(self, seconds: float) -> None:
        time.sleep(seconds)


class WordCount(kiqpy.Worker, retry=3):
    """Counts the words of ``text``; a failure would be retried 3 times, not the default 25."""

    def perform(self, text: str) -> int:
        count = len(text.split())
        # One write per line (the newline inside it): the worker's log lines, written by
        # other threads, then never land in the middle of it.
        print(f"WordCount: {count} words in {text!r}\n", end="", flush=True)
        return count


class Greeter(kiqpy.Worker, queue="mail"):
    """Greets ``name``; its jobs go to the ``mail`` queue unless a push says otherwise."""

    def perform(self, name: str) -> None:
        print(f"Hello, {name}!\n", end="", flush=True)  # one write: see WordCount
