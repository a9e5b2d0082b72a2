"""A worker takes no more jobs than it can hold: a job pushed while every processor is busy
(and prefetch is off) stays in its queue, free for an idle process (kiqpy/server/fetch.py)."""

from __future__ import annotations

import time

import pytest

from kiqpy.keys import Keys
from kiqpy.log import get_logger
from kiqpy.server.fetch import Fetcher
from kiqpy.server.outage import Outage
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


@pytest.mark.parametrize(("job_seconds", "extra"), [
    (1.0, 0), (0.025, 0), (0.024, 20), (0.0125, 40), (0.01, 50), (0.006, 80), (0.0001, 80)])
def test_auto_prefetch_holds_about_50_ms_of_short_jobs(config, r, job_seconds: float,
                                                      extra: int) -> None:
    # Given a fetcher of 10 threads whose jobs have lasted job_seconds on average
    fetcher = Fetcher(config.replace(concurrency=10), r, Keys(""), "test:1:abc",
                      Outage(config.redis_url, get_logger()), get_logger())
    fetcher._job_seconds = job_seconds

    # Then it holds that many jobs beyond its threads (none from 25 ms on, 2 x concurrency
    # just under, up to 8 x), and fetches again once it holds half the extra ones or fewer
    limit, low = fetcher._limits()
    assert limit == 10 + extra
    assert low == (limit - 1 if extra == 0 else 10 + extra // 2)
