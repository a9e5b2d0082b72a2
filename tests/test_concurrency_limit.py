"""concurrency_limit=N: at most N jobs of a class at once across real worker processes, the
rest put back without blocking a thread or counting an attempt, other classes unthrottled."""

from __future__ import annotations

import time

import pytest

import kiqpy
from kiqpy.errors import OptionsError
from kiqpy.keys import Keys
from tests import app_limits
from tests.conftest import wait_for
from tests.workers import WorkerProcess, log_events

APP = "tests.app_limits"
FLOOD = 400


def flood_seconds(r, redis_url: str, with_limited: bool) -> float:
    """Seconds 2 workers of 5 threads take to run FLOOD Flood jobs of 20 ms, with 20
    LimitedTwo jobs of 0.3 s queued in between them or not."""
    r.delete("test:flood")
    if with_limited:
        app_limits.LimitedTwo.perform_bulk([[0.3]] * 20)
    app_limits.Flood.perform_bulk([[n, 0.02] for n in range(FLOOD)])
    with WorkerProcess(redis_url, "-c", "5", require=APP) as one, \
            WorkerProcess(redis_url, "-c", "5", require=APP) as two:
        started = time.monotonic()
        wait_for(lambda: r.llen("test:flood") >= FLOOD, timeout=60, interval=0.05,
                 message="the flood to finish")
        took = time.monotonic() - started
        if with_limited:
            wait_for(lambda: r.llen("test:limited_done") >= 20, timeout=60, interval=0.1,
                     message="the limited jobs to finish")
            for worker in (one, two):
                assert "fail" not in [e.get("event") for e in log_events(worker)]
    return took


def test_never_more_than_the_limit_and_other_classes_keep_their_pace(config, r, redis_url):
    # Given a baseline: the flood alone
    alone = flood_seconds(r, redis_url, with_limited=False)
    # When 20 jobs of a class limited to 2 are queued with the flood
    mixed = flood_seconds(r, redis_url, with_limited=True)
    # Then never more than 2 of them ran at once, each ran once, none counted as a retry
    levels = [int(x) for x in r.lrange("test:limited_levels", 0, -1)]
    assert max(levels) == 2
    done = r.lrange("test:limited_done", 0, -1)
    assert len(done) == len(set(done)) == 20
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0
    # and the flood was not throttled: 2 of 10 threads busy with limited jobs at most, so
    # it may take up to 10/8 as long, plus scheduling noise
    assert mixed < alone * 1.25 + 1.0, (alone, mixed)


def test_the_option_is_checked_and_class_only():
    with pytest.raises(OptionsError, match="concurrency_limit=0"):
        type("Bad", (kiqpy.Worker,), {"perform": lambda self: None},
             concurrency_limit=0)
    with pytest.raises(OptionsError, match="fixed when the class is defined"):
        app_limits.Flood.set(concurrency_limit=3)


def test_concurrency_key_limits_each_key_apart(config, r, redis_url):
    # Given 3 accounts with 4 jobs each, at most 1 at once per account
    for account in ("a", "b", "c"):
        app_limits.PerAccount.perform_bulk([[account, 0.1]] * 4)
    # When one worker with 6 threads runs them
    with WorkerProcess(redis_url, "-c", "6", require=APP) as worker:
        wait_for(lambda: r.llen("test:account_done") >= 12, timeout=60, interval=0.05,
                 message="the 12 jobs to finish")
        assert "fail" not in [e.get("event") for e in log_events(worker)]
    # Then never 2 of one account at once, but accounts ran side by side, each job once
    levels = [x.decode() for x in r.lrange("test:account_levels", 0, -1)]
    assert {level.split(":")[1] for level in levels} == {"1"}
    assert max(int(x) for x in r.lrange("test:all_levels", 0, -1)) >= 2
    done = r.lrange("test:account_done", 0, -1)
    assert len(done) == len(set(done)) == 12
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0


def test_concurrency_key_is_checked_when_the_class_is_defined():
    with pytest.raises(OptionsError, match="concurrency_key needs concurrency_limit"):
        type("NoLimit", (kiqpy.Worker,), {"perform": lambda self, a: None},
             concurrency_key=lambda a: a)
    with pytest.raises(OptionsError, match=r"concurrency_key=.*must be a callable"):
        type("NotCallable", (kiqpy.Worker,), {"perform": lambda self, a: None},
             concurrency_limit=1, concurrency_key="account")
    with pytest.raises(OptionsError, match="fixed when the class is defined"):
        app_limits.PerAccount.set(concurrency_key=lambda a, s: a)


def test_a_running_jobs_class_slot_is_renewed_by_the_heartbeat(config, r, redis_url):
    # Given a worker beating every 0.3 s, running a limited job that takes its time
    app_limits.LongLimited.perform_async()
    with WorkerProcess(redis_url, "-c", "2", require=APP,
                       env={"KIQPY_HEARTBEAT_INTERVAL": "0.3"}):
        wait_for(lambda: r.exists("test:long_started"), timeout=30, message="the job to start")
        slots = Keys("").limiter("class:LongLimited", "slots")
        wait_for(lambda: r.zcard(slots) == 1, timeout=10, message="its slot to be held")
        first = r.zrange(slots, 0, 0, withscores=True)[0][1]
        # Then the slot's lease moves forward while the job runs
        wait_for(lambda: r.zrange(slots, 0, 0, withscores=True)[0][1] > first + 500,
                 timeout=10, message="the heartbeat to renew the lease")
        # and is given back when the job ends
        r.set("test:long_release", 1)
        wait_for(lambda: r.llen("test:long_done") == 1, timeout=30, message="the job to end")
        wait_for(lambda: r.zcard(slots) == 0, timeout=10, message="the slot to be released")
