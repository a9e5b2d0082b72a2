"""Job timeouts in a real worker: a job that runs past its timeout fails with JobTimeout
within about its timeout and is retried by its rules while the worker keeps serving others;
a job stuck in a blocking C call gets its process replaced, and runs again (nothing lost)."""

from __future__ import annotations

import time

import pytest

import kiqpy
from kiqpy.payload import decode
from kiqpy.server.launcher import EXIT_RECYCLE
from tests.conftest import wait_for
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow


def test_a_job_past_its_timeout_fails_with_job_timeout_and_is_retried(config, r, redis_url):
    with WorkerProcess(redis_url, "-c", "2", require="tests.app_timeouts") as worker:
        kiqpy.enqueue("timeouts.Spin", 30)
        wait_for(lambda: r.llen("test:started") == 1, message="the job to start")
        started = time.monotonic()
        # Meanwhile the other thread keeps serving jobs
        for n in range(5):
            kiqpy.enqueue("timeouts.Quick", n)
        wait_for(lambda: r.zcard("retry") == 1, timeout=10, message="the timeout")
        took = time.monotonic() - started
        wait_for(lambda: r.llen("test:quick") == 5, message="the other jobs")
        worker.terminate()
        assert worker.wait() == 0
    assert took < 3  # 1 s timeout, 0.1 s watchdog tick, and a loaded machine
    [member] = r.zrange("retry", 0, -1)
    job = decode(member)
    assert job["error_class"] == "kiqpy.errors.JobTimeout"
    assert job["error_message"] == "timeouts.Spin ran longer than its timeout of 1.0 s"
    assert r.llen("test:finished") == 0


def test_a_job_stuck_in_c_code_gets_its_process_replaced_and_runs_again(config, r,
                                                                       redis_url):
    kiqpy.enqueue("timeouts.Stuck", 8)
    with WorkerProcess(redis_url, "-t", "1", require="tests.app_timeouts") as worker:
        wait_for(lambda: r.llen("test:started") == 1, message="the job to start")
        # timeout 1 s + grace 1 s, then a graceful stop (-t 1) with the recycle exit code
        assert worker.wait(20) == EXIT_RECYCLE
        log = worker.log()
    assert "job did not stop at its timeout" in log
    # The stuck job went back to its queue: it will run again, not lost
    assert [decode(raw)["class"] for raw in r.lrange("queue:default", 0, -1)] == [
        "timeouts.Stuck"]
    assert not r.keys("*:inflight:*") or not any(r.llen(k) for k in r.keys("*:inflight:*"))


def test_the_default_timeout_applies_to_jobs_without_one(config, r, redis_url):
    with WorkerProcess(redis_url, "--default-timeout", "0.5", require="tests.app_timeouts"):
        kiqpy.enqueue("timeouts.Loop", 30)
        wait_for(lambda: r.zcard("retry") == 1, timeout=10, message="the default timeout")
    job = decode(r.zrange("retry", 0, -1)[0])
    assert job["error_message"] == "timeouts.Loop ran longer than its timeout of 0.5 s"
    assert r.llen("test:finished") == 0
