"""kiqpy.limiter inside real worker processes: a concurrent limit held across processes, rate
limits that reschedule jobs without counting failures or retries, a killed slot holder, and
the failure after too many reschedules."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter

import pytest

from kiqpy import limiter
from kiqpy.payload import decode
from tests import app_limits
from tests.conftest import scheduled_jobs, wait_for
from tests.workers import WorkerProcess, log_events

APP = "tests.app_limits"


def no_failures(r, workers) -> None:
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0
    for worker in workers:
        assert not [e for e in log_events(worker) if e.get("event") == "fail"], worker.log()


def test_concurrent_3_across_3_processes_of_10_threads(config, r, redis_url):
    # Given 300 jobs that each hold a slot of concurrent("x", 3) for 10 ms
    app_limits.Overlap.perform_bulk([[0.01]] * 300)
    # When 3 worker processes of 10 threads run them
    workers = [WorkerProcess(redis_url, "-c", "10", require=APP) for _ in range(3)]
    try:
        wait_for(lambda: r.llen("test:done") >= 300, timeout=60, interval=0.1,
                 message="300 jobs to finish")
        # Then never more than 3 were inside at once, and 3 were at some point
        levels = [int(x) for x in r.lrange("test:levels", 0, -1)]
        assert max(levels) == 3
        # and every job ran exactly once, none failed
        done = r.lrange("test:done", 0, -1)
        assert len(done) == 300 and len(set(done)) == 300
        no_failures(r, workers)
    finally:
        for worker in workers:
            worker.__exit__()


def starts(r, kind: str) -> list[dict]:
    return [json.loads(x) for x in r.lrange(f"test:starts:{kind}", 0, -1)]


def test_rate_limited_jobs_never_start_over_the_limit_and_are_rescheduled_not_retried(
        config, r, redis_url):
    # Given 12 jobs for each of bucket("b", 5, "second"), window("w", 5, 1), leaky("l", 5,
    # "second"), more than one second's worth
    for kind in app_limits.LIMITERS:
        app_limits.Started.perform_bulk([[kind]] * 12)
    # When two workers run them
    with WorkerProcess(redis_url, "-c", "10", require=APP) as one, \
            WorkerProcess(redis_url, "-c", "10", require=APP) as two:
        wait_for(lambda: all(r.llen(f"test:starts:{k}") >= 12 for k in app_limits.LIMITERS),
                 timeout=60, interval=0.1, message="every job to start")
        no_failures(r, [one, two])
    # Then the bucket let at most 5 in per calendar second (counting each start whose
    # measured interval [before, after] lies in one second)
    bucket = Counter(math.floor(s["after"]) for s in starts(r, "bucket")
                     if math.floor(s["before"]) == math.floor(s["after"]))
    assert max(bucket.values()) <= 5, bucket
    # and the window and the leaky bucket at most 5 in any second: the 6th start after any
    # start came a second later at least (less the 30 ms a start may be measured late)
    for kind in ("window", "leaky"):
        times = sorted(s["after"] for s in starts(r, kind))
        assert min(b - a for a, b in zip(times, times[5:], strict=False)) >= 0.97, (kind, times)
    # and the leaky bucket spaced them out (one per 200 ms)
    times = sorted(s["after"] for s in starts(r, "leaky"))
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.15, times
    # and every job ran once, some after reschedules, none with a retry count
    for kind in app_limits.LIMITERS:
        runs = starts(r, kind)
        assert len({s["jid"] for s in runs}) == len(runs) == 12
        assert all(s["retry_count"] is None for s in runs)
        assert max(s["overrated"] or 0 for s in runs) >= 1


def test_a_killed_slot_holder_frees_its_slot_after_lock_timeout(config, r, redis_url):
    # Given a worker running a job that holds concurrent("k", 1, lock_timeout=2)
    app_limits.HoldSlot.perform_async()
    with WorkerProcess(redis_url, require=APP) as worker:
        wait_for(lambda: r.get("test:holding"), message="the job to hold the slot")
        # When the worker is killed with -9
        worker.kill9()
    lim = limiter.concurrent("k", 1, wait_timeout=0, lock_timeout=2)
    with pytest.raises(limiter.OverLimit), lim.within_limit():
        pass  # pragma: no cover
    # Then the slot is free again once its 2 s lease has run out
    expiry = r.zrange("kiqpy:limiter:{k}:slots", 0, 0, withscores=True)[0][1]
    wait_for(lambda: limiter_free(lim), timeout=5, message="the slot to be free")
    now = r.time()
    assert now[0] * 1000 + now[1] / 1000 >= expiry


def limiter_free(lim: limiter.Limiter) -> bool:
    try:
        with lim.within_limit():
            return True
    except limiter.OverLimit:
        return False


def test_a_job_rescheduled_too_often_fails_normally(config, r, redis_url):
    # Given a full window limiter and a job that asks it, already rescheduled 19 times
    with limiter.window("full", 1, 600).within_limit():
        pass
    app_limits.AlwaysFull.set(overrated=limiter.MAX_OVERRATED - 1).perform_async()
    with WorkerProcess(redis_url, require=APP):
        # When it is turned away once more, it is rescheduled (the 20th time), not failed
        wait_for(lambda: r.zcard("schedule") == 1, message="the reschedule")
        (job, _due), = scheduled_jobs(r)
        assert job["overrated"] == limiter.MAX_OVERRATED and "retry_count" not in job
        assert r.zcard("retry") == 0
        # When it comes back and is turned away a 21st time
        r.zadd("schedule", {r.zrange("schedule", 0, 0)[0]: 0})
        wait_for(lambda: r.zcard("retry") == 1, message="the failure")
    # Then it failed like any error: in the retry set with retry_count 0
    failed = decode(r.zrange("retry", 0, 0)[0])
    assert failed["retry_count"] == 0 and failed["error_class"] == "kiqpy.errors.OverLimit"
    assert int(r.get("test:full_tries")) == 2 and r.get("test:full_ran") is None
