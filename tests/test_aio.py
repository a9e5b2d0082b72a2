"""Async jobs (``async def perform``) in real worker processes: the event loop of
kiqpy/server/aio.py, with the same outcomes, acks, shutdown and recovery as sync jobs."""

from __future__ import annotations

import json

import kiqpy
import kiqpy.api
from kiqpy.keys import Keys
from kiqpy.payload import decode
from tests import app_async_jobs as jobs
from tests import app_jobs
from tests.conftest import wait_for
from tests.workers import WorkerProcess

KEYS = Keys()
REQUIRE = "tests.app_async_jobs"


def inflight(r) -> list[bytes]:
    return [p for key in r.scan_iter(match="*:inflight:*") for p in r.lrange(key, 0, -1)]


def test_async_jobs_run_on_the_loop_with_their_jid_current_job_and_log_context(config, r,
                                                                               redis_url):
    jids = [jobs.ARecord.perform_async(n) for n in range(20)]
    with WorkerProcess(redis_url, require=REQUIRE) as worker:
        wait_for(lambda: r.llen("test:ran") == 20, message="the async jobs")
        wait_for(lambda: not inflight(r), message="the acks")
        wait_for(lambda: r.get("stat:processed") == b"20", message="the counts")
        worker.terminate()
        assert worker.wait(15) == 0
        log = worker.log()
    assert sorted(r.lrange("test:ran", 0, -1)) == sorted(repr((n,)).encode() for n in range(20))
    # self.jid and current_job() are the job's own, in every task
    assert sorted(r.lrange("test:jids", 0, -1)) == sorted(f"{j}|{j}".encode() for j in jids)
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    done = [line for line in lines if line["event"] == "done"]
    assert sorted(line["jid"] for line in done) == sorted(jids)
    assert all(line["job_class"] == "ARecord" and line["queue"] == "default" for line in done)
    assert r.llen("queue:default") == 0 and r.zcard("retry") == 0


def test_an_async_failure_is_recorded_with_the_same_fields_as_a_sync_one(config, r, redis_url):
    # Given a sync and an async job that raise the same error, with the same retry option
    sync_jid = app_jobs.Fail.perform_async("same")
    async_jid = jobs.AFail.perform_async("same")
    # When a worker runs both
    with WorkerProcess(redis_url, require=REQUIRE) as worker:
        wait_for(lambda: r.zcard("retry") == 2, message="both failures in the retry set")
        wait_for(lambda: not inflight(r), message="the acks")
        wait_for(lambda: r.get("stat:failed") == b"2", message="the failure counts")
        worker.terminate()
        assert worker.wait(15) == 0
    # Then both retry members carry the same fields, and the same values but for class/jid
    members = {job["jid"]: job for job in map(decode, r.zrange("retry", 0, -1))}
    sync, failed = members[sync_jid], members[async_jid]
    assert set(sync) == set(failed)
    for field in ("error_class", "error_message", "retry_count", "queue", "retry"):
        assert sync[field] == failed[field], field
    assert failed["error_class"] == "ValueError" and failed["retry_count"] == 0


def test_an_async_job_is_retried_until_its_retries_are_exhausted(config, r, redis_url):
    jid = jobs.AFailFast.perform_async("again")
    with WorkerProcess(redis_url, require=REQUIRE) as worker:
        wait_for(lambda: r.lrange("test:exhausted", 0, -1) == [jid.encode()], timeout=20,
                 message="the retries to run out")
        wait_for(lambda: r.zcard("dead") == 1, message="the dead set")
        worker.terminate()
        assert worker.wait(15) == 0
    assert r.get("test:afailfast_attempts") == b"3"  # the first run and two retries
    (dead,) = map(decode, r.zrange("dead", 0, -1))
    assert dead["jid"] == jid and dead["retry_count"] == 2 and dead["error_message"] == "again"


def test_sync_and_async_jobs_share_one_worker(config, r, redis_url):
    # Given many more jobs of both kinds than threads and async slots
    app_jobs.Record.perform_bulk([[n] for n in range(30)])
    jobs.ARecord.perform_bulk([[n] for n in range(30, 60)])
    with WorkerProcess(redis_url, "-c", "2", "--async-concurrency", "3",
                       require=REQUIRE) as worker:
        wait_for(lambda: r.llen("test:ran") == 60, message="every job")
        wait_for(lambda: not inflight(r), message="the acks")
        wait_for(lambda: r.get("stat:processed") == b"60", message="the counts")
        worker.terminate()
        assert worker.wait(15) == 0
    assert sorted(r.lrange("test:ran", 0, -1)) == sorted(repr((n,)).encode() for n in range(60))


def test_term_acks_async_jobs_finished_within_t_and_requeues_the_rest(config, r, redis_url):
    # Given async jobs running: three that end within -t and three that would not
    for n in range(3):
        jobs.ASleep.perform_async(f"short{n}", 3)
        jobs.ASleep.perform_async(f"long{n}", 60)
    with WorkerProcess(redis_url, "-t", "6", require=REQUIRE) as worker:
        wait_for(lambda: r.scard("test:started") == 6, message="all six to start")
        identity = r.smembers(KEYS.processes).pop().decode()
        # (the heartbeat shows them as busy, for the Busy page)
        wait_for(lambda: r.hget(KEYS.process(identity), "busy") == b"6", message="busy 6")
        work = {k.decode(): json.loads(v) for k, v in r.hgetall(KEYS.work(identity)).items()}
        assert len(work) == 6 and all(k.startswith("kiqpy.async-") for k in work)
        # and the process shows its async slots beside its threads
        [process] = list(kiqpy.api.ProcessSet())
        assert (process.busy, process.async_concurrency) == (6, 100)
        assert r.scard("test:finished") == 0
        # When it gets TERM while all six run
        worker.terminate()
        assert worker.wait(20) == 0
        log = worker.log()
    # Then the short ones finished and were acked; the long ones are back, none lost
    assert r.smembers("test:finished") == {b"short0", b"short1", b"short2"}
    queued = sorted(decode(p)["args"][0] for p in r.lrange("queue:default", 0, -1))
    assert queued == ["long0", "long1", "long2"]
    assert inflight(r) == [] and r.zcard("retry") == 0
    assert "requeued\": 3" in log


def test_async_jobs_of_a_killed_worker_are_recovered(config, r, redis_url):
    # Given a worker with async jobs in flight
    for n in range(5):
        jobs.ASleep.perform_async(f"k{n}", 1)
    with WorkerProcess(redis_url, require=REQUIRE) as first:
        wait_for(lambda: r.scard("test:started") == 5, message="the jobs to start")
        # When it is killed with SIGKILL
        first.kill9()
    assert r.scard("test:finished") == 0
    # Then another worker recovers and finishes every one
    with WorkerProcess(redis_url, require=REQUIRE) as second:
        wait_for(lambda: r.scard("test:finished") == 5, timeout=30, message="the recovery")
        wait_for(lambda: not inflight(r), message="the acks")
        assert "recovered jobs of a dead process" in second.log()
        second.terminate()
        assert second.wait(15) == 0
    assert r.llen("queue:default") == 0


def test_an_async_timeout_is_exact_and_fails_the_job(config, r, redis_url):
    jid = jobs.ATimeout.perform_async()
    with WorkerProcess(redis_url, require=REQUIRE) as worker:
        wait_for(lambda: r.zcard("retry") == 1, message="the timed-out job to fail")
        worker.terminate()
        assert worker.wait(15) == 0
    (job,) = map(decode, r.zrange("retry", 0, -1))
    assert job["jid"] == jid and job["error_class"] == "kiqpy.errors.JobTimeout"
    assert job["error_message"] == "ATimeout ran longer than its timeout of 0.3 s"
    assert r.get("test:atimeout-started") == b"1" and r.get("test:atimeout-finished") is None


def test_a_job_that_blocks_the_loop_is_reported(config, r, redis_url):
    jid = jobs.ABlock.perform_async(1.2)
    with WorkerProcess(redis_url, require=REQUIRE) as worker:
        wait_for(lambda: r.get("test:ablock") == b"1", message="the blocking job")
        worker.wait_for_log("event loop blocked")
        worker.terminate()
        assert worker.wait(15) == 0
        lines = [json.loads(line) for line in worker.log().splitlines()
                 if line.startswith("{") and "event loop blocked" in line]
    assert len(lines) == 1
    assert lines[0]["level"] == "warning" and lines[0]["jid"] == jid
    assert "time.sleep" in lines[0]["stack"] or "sleep(seconds)" in lines[0]["stack"]


def test_kiqpy_aredis_outside_a_loop_is_a_clear_error():
    import pytest

    with pytest.raises(kiqpy.ConfigurationError, match=r"kiqpy.aredis\(\) is for code running"):
        kiqpy.aredis()


def test_a_sync_server_middleware_wraps_the_whole_async_job(config, r, redis_url):
    jid = jobs.ASleep.perform_async("wrapped", 0.2)
    with WorkerProcess(redis_url, require="tests.app_async_middleware") as worker:
        wait_for(lambda: r.llen("test:around") == 2, message="the middleware around the job")
        wait_for(lambda: not inflight(r), message="the ack")
        worker.terminate()
        assert worker.wait(15) == 0
    # before: the job had not run; after: it had; current_job() is the job's in both
    around = [json.loads(x) for x in r.lrange("test:around", 0, -1)]
    assert around == [["before", jid, jid, 0], ["after", jid, jid, 1]]


def test_concurrency_limit_holds_for_async_jobs(config, r, redis_url):
    jobs.ALimited.perform_bulk([[n] for n in range(4)])
    with WorkerProcess(redis_url, require=REQUIRE) as worker:
        wait_for(lambda: r.scard("test:finished") == 4, timeout=30, message="all four")
        wait_for(lambda: not inflight(r), message="the acks")
        worker.terminate()
        assert worker.wait(15) == 0
    assert r.smembers("test:overlap") == set()


def test_no_more_async_jobs_leave_redis_than_the_process_can_run(config, r, redis_url):
    # Given many more waiting async jobs than one thread and two loop slots
    jobs.ASleep.perform_bulk([[f"b{n}", 60] for n in range(20)])
    with WorkerProcess(redis_url, "-c", "1", "--async-concurrency", "2", "--prefetch", "0",
                       "-t", "0", require=REQUIRE) as worker:
        wait_for(lambda: r.scard("test:started") == 2, message="two to start")
        identity = r.smembers(KEYS.processes).pop().decode()
        beat = r.hget(KEYS.process(identity), "beat")
        # When two heartbeats have gone by
        for _ in range(2):
            wait_for(lambda last=beat: r.hget(KEYS.process(identity), "beat") != last,
                     message="a beat")
            beat = r.hget(KEYS.process(identity), "beat")
        # Then the process holds the two running jobs and the one its thread waits with
        assert r.scard("test:started") == 2
        assert len(inflight(r)) == 3 and r.llen("queue:default") == 17
        worker.terminate()
        assert worker.wait(15) == 0
    assert r.llen("queue:default") == 20 and inflight(r) == []


def test_term_cancels_an_async_job_inside_a_sync_middleware_and_requeues_it(config, r,
                                                                             redis_url):
    jid = jobs.ASleep.perform_async("stuck", 60)
    with WorkerProcess(redis_url, "-t", "1", require="tests.app_async_middleware") as worker:
        wait_for(lambda: r.scard("test:started") == 1, message="the job to start")
        worker.terminate()
        assert worker.wait(20) == 0
    # The middleware saw the job end (cancelled, not finished); the job is back in its queue
    around = [json.loads(x) for x in r.lrange("test:around", 0, -1)]
    assert around == [["before", jid, jid, 0], ["after", jid, jid, 0]]
    assert [decode(p)["jid"] for p in r.lrange("queue:default", 0, -1)] == [jid]
    assert inflight(r) == [] and r.zcard("retry") == 0
