"""A worker takes no more jobs than it can hold: a job pushed while every processor is busy
(and prefetch is off) stays in its queue, free for an idle process (kiqpy/server/fetch.py)."""

from __future__ import annotations

import time

from tests import app_jobs
from tests.conftest import wait_for
from tests.workers import WorkerProcess


def test_a_busy_worker_leaves_a_new_job_in_its_queue(config, r, redis_url):
    with WorkerProcess(redis_url, "-c", "1", "--prefetch", "0") as worker:
        wait_for(lambda: r.scard("processes") == 1, timeout=20, message="the worker")
        # Given the only processor busy with a slow job taken by an idle worker's waiter
        app_jobs.Sleepy.perform_async("a", 1.5)
        wait_for(lambda: r.get("test:started:a"), message="job a to start")
        # When another job is pushed while it runs
        app_jobs.Sleepy.perform_async("b", 0)
        # Then it stays in the queue for as long as job a runs
        seen = []
        while not r.get("test:finished:a"):
            seen.append(r.llen("queue:default"))
            time.sleep(0.01)  # sampling rate while waiting for job a; not a timing assumption
        assert seen and set(seen) == {1}, seen
        wait_for(lambda: r.get("test:finished:b"), message="job b once a is done")
        worker.terminate()
        assert worker.wait(20) == 0
