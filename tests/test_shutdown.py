"""Signals and shutdown of a real worker process: TERM (graceful, then forced), TSTP (quiet),
TTIN (thread dump) and kill -9. No job is lost on any of these paths."""

from __future__ import annotations

import signal
import time

import pytest

from kiqpy.payload import decode
from tests import app_jobs
from tests.conftest import wait_for
from tests.workers import WorkerProcess, exit_within, identity_of, log_events


def started(r, tag: str) -> int:
    return int(r.get(f"test:starts:{tag}") or 0)


def inflight(r) -> list[bytes]:
    return r.keys("*:inflight:*")


def test_term_during_a_long_job_requeues_it_at_the_front_for_the_next_worker(config, r,
                                                                             redis_url):
    # Given a worker (-c 1, -t 1) running a 30 s job, with more jobs queued behind it
    app_jobs.Sleepy.perform_async("long", 30)
    with WorkerProcess(redis_url, "-c", "1", "-t", "1") as first:
        wait_for(lambda: started(r, "long") == 1, message="the long job to start")
        app_jobs.Record.perform_async("queued 1")
        app_jobs.Record.perform_async("queued 2")
        # When it gets TERM
        first.terminate()
        # Then it exits 0 within the timeout plus a few seconds
        code, seconds = exit_within(first, 8)
        assert code == 0, first.log()[-3000:]
        assert seconds < 6
    assert "jobs still running at the timeout" in first.log()
    # and the long job is back at the front of its queue (the end RPOP takes from)
    assert r.llen("queue:default") == 3
    assert decode(r.lindex("queue:default", -1))["class"] == "Sleepy"
    assert inflight(r) == [] and r.scard("processes") == 0
    # and the next worker starts it again, before the jobs queued behind it
    with WorkerProcess(redis_url, "-c", "1") as second:
        wait_for(lambda: started(r, "long") == 2, message="the long job to run again")
        assert int(r.get("test:started:long")) == second.pid
        assert r.llen("test:ran") == 0


def test_prefetched_jobs_go_back_in_their_original_order(config, r, redis_url):
    # Given a worker (-c 1) that took a long job and prefetched the five queued behind it
    app_jobs.Sleepy.perform_async("long", 30)
    for n in range(5):
        app_jobs.Record.perform_async(n)
    before = r.lrange("queue:default", 0, -1)
    with WorkerProcess(redis_url, "-c", "1", "--prefetch", "5", "-t", "0.5") as worker:
        wait_for(lambda: started(r, "long") == 1, message="the long job to start")
        assert r.llen("queue:default") == 0  # all six are in-flight
        # When it is stopped before it gets to them
        worker.terminate()
        code, _ = exit_within(worker, 8)
        assert code == 0
    # Then the queue holds the same six jobs, in the same order, and none of them ran
    assert r.lrange("queue:default", 0, -1) == before
    assert r.llen("test:ran") == 0 and inflight(r) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_term_lets_a_short_job_finish_and_does_not_requeue_it(config, r, redis_url, signum):
    app_jobs.Sleepy.perform_async("short", 1.0)
    with WorkerProcess(redis_url, "-t", "10") as worker:
        wait_for(lambda: started(r, "short") == 1, message="the job to start")
        worker.signal(signum)
        code, seconds = exit_within(worker, 10)
        assert code == 0
        assert seconds < 5  # the job's second, then the usual stop, well inside -t 10
    assert r.get("test:finished:short") is not None
    assert started(r, "short") == 1
    assert r.llen("queue:default") == 0 and inflight(r) == []
    assert r.zcard("retry") == 0
    stopped = [e for e in log_events(worker) if e["event"] == "stopped"]
    assert stopped and stopped[0]["clean"] is True and stopped[0]["requeued"] == 0


def test_a_second_term_exits_at_once_and_the_job_is_recovered_later(config, r, redis_url):
    app_jobs.Sleepy.perform_async("hard", 30)
    with WorkerProcess(redis_url, "-c", "1") as first:
        identity = identity_of(first)
        wait_for(lambda: started(r, "hard") == 1, message="the job to start")
        first.terminate()
        first.wait_for_log("shutting down")
        # When a second TERM arrives while the first waits for the job (-t is 25 s)
        first.terminate()
        code, seconds = exit_within(first, 3)
    # Then the process exits at once, non-zero, leaving the job in its in-flight list
    assert code != 0 and seconds < 1.5
    held = r.lrange(f"{identity}:inflight:default", 0, -1)
    assert [decode(p)["class"] for p in held] == ["Sleepy"]
    assert r.llen("queue:default") == 0
    # and another worker recovers it once the first one's heartbeat has expired
    with WorkerProcess(redis_url, "-c", "1") as second:
        wait_for(lambda: started(r, "hard") == 2, timeout=15,
                 message="the job to be recovered and run again")
        assert int(r.get("test:started:hard")) == second.pid
        assert not r.exists(f"{identity}:inflight:default")


def no_blocked_clients(r) -> bool:
    return not [c for c in r.client_list() if "b" in c.get("flags", "")]


def test_tstp_quiets_the_worker_then_term_stops_it(config, r, redis_url):
    app_jobs.Record.perform_async("before")
    with WorkerProcess(redis_url) as worker:
        identity = identity_of(worker)
        wait_for(lambda: r.llen("test:ran") == 1, message="the first job")
        # When the worker gets TSTP
        worker.signal(signal.SIGTSTP)
        # Then its process hash says quiet at the next heartbeat
        wait_for(lambda: r.hget(identity, "quiet") == b"true", message="quiet in the hash")
        worker.wait_for_log("quiet: no new jobs will be fetched")
        # and, once no fetch is in progress (a BLMOVE may still be blocked for up to a
        # second), a job pushed now stays in its queue
        wait_for(lambda: no_blocked_clients(r), message="blocking fetches to end")
        app_jobs.Record.perform_async("after")
        deadline = time.monotonic() + 1.5  # three heartbeats: a window to notice a fetch
        while time.monotonic() < deadline:
            assert r.llen("queue:default") == 1, "a quiet worker took a job"
            time.sleep(0.05)
        assert worker.process.poll() is None
        # When it then gets TERM it exits 0, and the queued job is still there
        worker.terminate()
        code, _ = exit_within(worker, 10)
        assert code == 0
    assert r.lrange("test:ran", 0, -1) == [b"('before',)"]
    assert r.llen("queue:default") == 1 and inflight(r) == []


def test_a_job_pushed_right_after_quiet_is_not_run(config, r, redis_url):
    with WorkerProcess(redis_url) as worker:
        # Given an idle worker whose waiter has just begun a blocking fetch: it takes a job,
        # then blocks again at once, for BLOCK_SECONDS (1 s)
        wait_for(lambda: not no_blocked_clients(r), message="an idle worker in BLMOVE")
        app_jobs.Record.perform_async("wakes the waiter")
        wait_for(lambda: r.llen("test:ran") == 1, message="the first job")
        # When it goes quiet and a job is pushed right after it said so
        worker.signal(signal.SIGTSTP)
        worker.wait_for_log("quiet: no new jobs will be fetched")
        app_jobs.Record.perform_async("after quiet")
        # Then that job is not run (it may be taken, but must go back to its queue)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert r.llen("test:ran") == 1, "a quiet worker ran a job pushed after quiet"
            time.sleep(0.02)
        wait_for(lambda: r.llen("queue:default") == 1, timeout=3, message="the job queued")


def test_ttin_logs_every_threads_stack(config, r, redis_url):
    with WorkerProcess(redis_url, "-c", "2") as worker:
        worker.wait_for_log('"starting"')
        worker.signal(signal.SIGTTIN)
        worker.wait_for_log("thread dump")
        wait_for(lambda: {"kiqpy.processor-1", "kiqpy.processor-2", "kiqpy.fetcher",
                          "kiqpy.heartbeat", "kiqpy.scheduler", "MainThread"}
                 <= {e.get("thread") for e in log_events(worker) if e["event"] == "thread dump"},
                 timeout=5, message="every thread in the dump")
        dumps = [e for e in log_events(worker) if e["event"] == "thread dump"]
        processor = next(e for e in dumps if e["thread"] == "kiqpy.processor-1")
        assert "processor.py" in processor["stack"]
        assert worker.process.poll() is None  # a dump does not stop the worker


def test_kill_9_mid_job_loses_nothing(config, r, redis_url):
    # Given 40 jobs of 0.2 s, a worker running 5 at a time
    total = 40
    app_jobs.Tracked.perform_bulk([[n, 0.2] for n in range(total)])
    with WorkerProcess(redis_url, "-c", "5") as first:
        wait_for(lambda: r.scard("test:seen") >= 5, message="some jobs to finish")
        # When it is killed in the middle of jobs
        wait_for(lambda: r.scard("test:began") > r.scard("test:seen"), message="jobs running")
        first.kill9()
    began, seen = r.smembers("test:began"), r.smembers("test:seen")
    assert began - seen, "no job was running at the kill"
    assert len(seen) < total
    # Then another worker runs every job that had not finished
    with WorkerProcess(redis_url, "-c", "5") as second:
        wait_for(lambda: r.scard("test:seen") == total, timeout=20,
                 message="every job to finish")
        second.terminate()
        assert second.wait(15) == 0
    assert {int(n) for n in r.smembers("test:seen")} == set(range(total))
    assert inflight(r) == [] and r.llen("queue:default") == 0
    assert "recovered jobs of a dead process" in second.log()
