"""kiqpy_middleware.expiry: jobs stamped with ``expires_at`` when pushed and skipped (yet acked
and counted as done) when a worker reaches them too late."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

import pytest

import kiqpy
from kiqpy.client.execution import execute
from kiqpy.errors import OptionsError
from kiqpy.keys import Keys
from kiqpy.payload import decode
from kiqpy_middleware.expiry import ExpiryClient, ExpiryServer, install
from tests import app_jobs, app_unique
from tests.conftest import queued_jobs, scheduled_jobs, wait_for
from tests.recording import RecordingLog
from tests.workers import ROOT, WorkerProcess

KEYS = Keys()


class Alert(kiqpy.Worker, expires_in=300):
    def perform(self, *args):
        kiqpy.default_client().redis.rpush("test:ran", repr(args))


class Plain(kiqpy.Worker):
    def perform(self, *args):
        kiqpy.default_client().redis.rpush("test:ran", repr(args))


@pytest.fixture
def expiry(config):
    """The default configuration with the expiry middleware installed."""
    install(config)
    return config


def run_job(job, log=None):
    """Run ``job`` through a server chain holding only the expiry middleware."""
    chain = kiqpy.Chain()
    chain.add(ExpiryServer(log=log or RecordingLog()))
    return execute(Alert if job["class"] == Alert.kiqpy_job_name else Plain, job, chain)


# -- pushing ------------------------------------------------------------------------------------
def test_a_push_is_stamped_with_its_expiry_time(expiry, r):
    before = time.time()
    Alert.perform_async(1)
    (job,) = queued_jobs(r)
    assert before + 300 <= job["expires_at"] <= time.time() + 300
    assert type(job["expires_at"]) is float


def test_a_scheduled_job_expires_counting_from_its_run_time(expiry, r):
    Alert.perform_at(time.time() + 3600, 1)
    ((job, score),) = scheduled_jobs(r)
    assert job["expires_at"] == pytest.approx(score + 300)


def test_expires_in_can_be_set_per_push(expiry, r):
    Plain.set(expires_in=dt.timedelta(seconds=30)).perform_async(1)
    (job,) = queued_jobs(r)
    assert job["expires_at"] == pytest.approx(time.time() + 30, abs=5)


def test_jobs_without_expires_in_are_untouched(expiry, r):
    Plain.perform_async(1)
    (job,) = queued_jobs(r)
    assert "expires_at" not in job


def test_install_twice_adds_each_middleware_once(config):
    install()
    install(config)
    assert list(config.client_middleware) == [ExpiryClient]
    assert list(config.server_middleware) == [ExpiryServer]


# -- running ------------------------------------------------------------------------------------
def test_an_expired_job_is_skipped_and_logged(expiry, r):
    # Given a job that expired a second ago
    Alert.perform_async("late")
    job = decode(r.rpop(KEYS.queue("default")))
    job["expires_at"] = time.time() - 1
    log = RecordingLog()
    # When it runs, perform is not called and "expired" is logged at info
    assert run_job(job, log) is None
    assert r.lrange("test:ran", 0, -1) == []
    assert log.events("info") == ["expired"]
    assert log.records[0][2]["late"] >= 1


def test_a_fresh_job_runs(expiry, r):
    Alert.perform_async("fresh")
    job = decode(r.rpop(KEYS.queue("default")))
    run_job(job)
    assert r.lrange("test:ran", 0, -1) == [b"('fresh',)"]


def test_a_job_pushed_without_the_middleware_runs(config, r):
    Alert.perform_async("unstamped")
    job = decode(r.rpop(KEYS.queue("default")))
    run_job(job)
    assert r.lrange("test:ran", 0, -1) == [b"('unstamped',)"]


def test_an_embedded_worker_acks_an_expired_job_and_counts_it_done(expiry, r, redis_url,
                                                                   monkeypatch):
    # Given a job that expires 50 ms after its push, reached by the worker later than that
    monkeypatch.setenv("REDIS_URL", redis_url)  # app_jobs' own client
    app_unique.ExpiringRecord.perform_async("stale")
    (stale,) = queued_jobs(r)
    wait_for(lambda: time.time() > stale["expires_at"], message="the job to expire")
    # When a worker takes it, then a job that does not expire
    with kiqpy.embed(concurrency=1, heartbeat_interval=0.2) as worker:
        app_jobs.Record.perform_async("fresh")
        wait_for(lambda: r.llen("test:ran") == 1, message="the fresh job to run")
    # Then the expired job did not run, but left Redis as a finished job does
    assert worker.exit_code == 0
    assert r.llen("test:expiring_ran") == 0
    assert queued_jobs(r) == []
    assert r.keys("*inflight*") == []
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0
    assert r.get("stat:processed") == b"2"
    assert r.get("stat:failed") in (None, b"0")


@pytest.mark.slow
def test_a_worker_that_installs_the_middleware_in_a_require_module(expiry, r, redis_url):
    # Given a job that has expired before any worker runs
    app_unique.ExpiringRecord.perform_async("stale")
    (stale,) = queued_jobs(r)
    wait_for(lambda: time.time() > stale["expires_at"], message="the job to expire")
    # When a worker whose -r module calls install() takes it, then a job that does not expire
    with WorkerProcess(redis_url, require="tests.app_unique") as worker:
        app_unique.UniqueRecord.perform_async("fresh")
        wait_for(lambda: r.llen("test:unique_ran") == 1, message="the fresh job to run")
        worker.terminate()
        assert worker.wait() == 0
    # Then the expired job was skipped with an "expired" line, acked and counted as done
    assert r.llen("test:expiring_ran") == 0
    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    assert [line["jid"] for line in lines if line.get("event") == "expired"] == [stale["jid"]]
    assert queued_jobs(r) == [] and r.keys("*inflight*") == []
    assert r.get("stat:processed") == b"2"


# -- options ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, -5, "5m", float("nan"), dt.timedelta(0)])
def test_bad_expires_in_values_are_rejected_at_class_definition(value):
    with pytest.raises(OptionsError, match="must be a positive number of seconds"):
        class Bad(kiqpy.Worker, expires_in=value):
            pass


def test_before_the_import_the_option_error_names_the_module():
    code = "import kiqpy\nclass Soon(kiqpy.Worker, expires_in=60): pass\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert ("Soon: option 'expires_in' belongs to kiqpy_middleware.expiry; import it (and add "
            "its middleware) before defining this class") in result.stderr
