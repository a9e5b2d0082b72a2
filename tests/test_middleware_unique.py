"""kiqpy_middleware.unique: duplicate pushes dropped while a copy holds the lock, and the lock
released after success (or at start), against a real Redis and a real worker."""

from __future__ import annotations

import datetime as dt
import importlib
import subprocess
import sys

import pytest

import kiqpy
from kiqpy import testing
from kiqpy.client import options as options_module
from kiqpy.client.execution import execute
from kiqpy.client.registry import lookup
from kiqpy.config import Config
from kiqpy.errors import OptionsError, RedisUnavailableError
from kiqpy.keys import Keys
from kiqpy.payload import decode
from kiqpy_middleware.unique import UniqueClient, UniqueServer, digest, install
from tests import app_unique
from tests.conftest import queued_jobs, scheduled_jobs, wait_for
from tests.recording import RecordingLog
from tests.workers import ROOT, WorkerProcess

KEYS = Keys()


def redis_of_jobs():
    """The Redis the jobs below write to: the test's private one (via the default client)."""
    return kiqpy.default_client().redis


class Sync(kiqpy.Worker, unique_for=60):
    def perform(self, *args):
        redis_of_jobs().rpush("test:ran", repr(args))


class Flaky(kiqpy.Worker, unique_for=60):
    """Fails on its first run, succeeds after."""

    def perform(self, tag):
        if redis_of_jobs().incr(f"test:attempts:{tag}") == 1:
            raise ValueError("first run fails")


class AtStart(kiqpy.Worker, unique_for=60, unique_until="start"):
    """Records whether its lock was still held while it ran; fails when asked to."""

    def perform(self, fail=False):
        lock = KEYS.unique(kiqpy.current_job()["unique_digest"])
        redis_of_jobs().rpush("test:held_while_running", redis_of_jobs().exists(lock))
        if fail:
            raise ValueError("asked to fail")


class Brief(kiqpy.Worker, unique_for=0.2):
    def perform(self):
        pass


class Plain(kiqpy.Worker):
    def perform(self, *args):
        pass


@pytest.fixture
def unique(config):
    """The default configuration with the unique-jobs middleware installed."""
    install(config)
    return config


def lock_of(cls, *args, queue="default"):
    return KEYS.unique(digest(cls.kiqpy_job_name, queue, list(args)))


def run_next(config, r, queue="default"):
    """Take the oldest job of ``queue`` and run it through the server chain, as a worker
    does; returns the job map."""
    job = decode(r.rpop(KEYS.queue(queue)))
    execute(lookup(job["class"]), job, config.server_middleware)
    return job


# -- pushing ------------------------------------------------------------------------------------
def test_a_duplicate_within_the_window_is_not_pushed(unique, r):
    jid = Sync.perform_async("bob", 5)
    assert jid is not None
    assert Sync.perform_async("bob", 5) is None
    assert [job["jid"] for job in queued_jobs(r)] == [jid]
    # The lock holds the first job's jid and expires with the window
    lock = lock_of(Sync, "bob", 5)
    assert r.get(lock) == jid.encode()
    assert 59_000 < r.pttl(lock) <= 60_000


def test_the_job_carries_its_digest(unique, r):
    Sync.perform_async({"b": 2, "a": 1})
    (job,) = queued_jobs(r)
    assert job["unique_digest"] == digest(Sync.kiqpy_job_name, "default", [{"a": 1, "b": 2}])
    assert job["unique_for"] == 60.0


def test_other_args_or_another_queue_make_another_job(unique, r):
    assert Sync.perform_async(1) is not None
    assert Sync.perform_async(2) is not None
    assert Sync.perform_async("1") is not None
    assert Sync.set(queue="other").perform_async(1) is not None
    # Dict key order does not make a job different
    assert Sync.perform_async({"a": 1, "b": 2}) is not None
    assert Sync.perform_async({"b": 2, "a": 1}) is None
    assert len(queued_jobs(r)) == 4
    assert len(queued_jobs(r, "other")) == 1


def test_unique_for_can_be_set_per_push_and_by_name(unique, r):
    assert Plain.set(unique_for=dt.timedelta(minutes=1)).perform_async(1) is not None
    assert Plain.set(unique_for=60).perform_async(1) is None
    assert kiqpy.enqueue(Plain.kiqpy_job_name, 1, unique_for=60) is None
    assert kiqpy.default_client().push({"class": Plain, "args": [1], "unique_for": 60}) is None
    assert len(queued_jobs(r)) == 1


def test_jobs_without_unique_for_are_untouched(unique, r):
    Plain.perform_async(1)
    Plain.perform_async(1)
    jobs = queued_jobs(r)
    assert len(jobs) == 2
    assert "unique_digest" not in jobs[0]
    assert r.keys("unique:*") == []


def test_a_scheduled_job_holds_its_lock_until_its_run_time_plus_the_window(unique, r):
    # Given a job scheduled in 100 s, unique for 60 s
    jid = Sync.perform_in(100, "later")
    assert jid is not None
    # Then its lock lasts 160 s, and neither a copy now nor a copy scheduled is pushed
    assert 159_000 < r.pttl(lock_of(Sync, "later")) <= 160_000
    assert Sync.perform_async("later") is None
    assert Sync.perform_in(10, "later") is None
    assert [job["jid"] for job, _ in scheduled_jobs(r)] == [jid]
    assert queued_jobs(r) == []


def test_bulk_pushes_take_a_lock_per_job(unique, r):
    first = Sync.perform_bulk([[1], [2], [1]])
    assert first[0] is not None and first[1] is not None and first[2] is None
    second = Sync.perform_bulk([[2], [3]])
    assert second[0] is None and second[1] is not None
    assert [job["args"] for job in queued_jobs(r)] == [[1], [2], [3]]


def test_a_push_stopped_by_a_later_middleware_releases_the_lock(unique, r):
    unique.client_middleware.add(lambda worker, job, queue, redis, next: None)
    assert Sync.perform_async(1) is None
    assert not r.exists(lock_of(Sync, 1))


def test_a_lock_expires_with_its_window(unique, r):
    assert Brief.perform_async() is not None
    assert Brief.perform_async() is None
    wait_for(lambda: not r.exists(lock_of(Brief)), timeout=5, message="the lock to expire")
    assert Brief.perform_async() is not None
    assert len(queued_jobs(r)) == 2


def test_testing_modes_push_every_copy(unique, r):
    with testing.fake():
        Sync.perform_async(1)
        Sync.perform_async(1)
        assert len(Sync.jobs) == 2
    assert r.keys("unique:*") == []


def test_locks_live_in_the_namespace(redis_url, r):
    config = Config(redis_url=redis_url, namespace="ns")
    install(config)
    client = kiqpy.Client(config)
    try:
        assert client.enqueue(Sync, [1], dict(Sync.kiqpy_options_resolved)) is not None
        assert client.enqueue(Sync, [1], dict(Sync.kiqpy_options_resolved)) is None
    finally:
        client.close()
    assert r.exists(Keys("ns").unique(digest(Sync.kiqpy_job_name, "default", [1])))


def test_an_unreachable_redis_fails_the_push_with_kiqpys_error(closed_url):
    config = Config(redis_url=closed_url)
    install(config)
    client = kiqpy.Client(config)
    with pytest.raises(RedisUnavailableError, match="cannot reach Redis to take a unique"):
        client.enqueue(Sync, [1], dict(Sync.kiqpy_options_resolved))


def test_install_twice_adds_each_middleware_once(config):
    install(config)
    install(config)
    assert list(config.client_middleware) == [UniqueClient]
    assert list(config.server_middleware) == [UniqueServer]


def test_install_without_a_config_uses_the_default_one(config):
    install()
    assert UniqueClient in kiqpy.default_config().client_middleware
    assert UniqueServer in kiqpy.default_config().server_middleware


def test_a_duplicate_is_logged_at_debug(config, r):
    log = RecordingLog()
    config.client_middleware.add(UniqueClient(log=log))
    Sync.perform_async(7)
    Sync.perform_async(7)
    assert log.events() == ["duplicate job not pushed"]
    assert log.records[0][0] == "debug"
    assert log.records[0][2]["unique_digest"] == digest(Sync.kiqpy_job_name, "default", [7])


# -- running ------------------------------------------------------------------------------------
def test_success_releases_the_lock(unique, r):
    Sync.perform_async(1)
    run_next(unique, r)
    assert r.lrange("test:ran", 0, -1) == [b"(1,)"]
    assert not r.exists(lock_of(Sync, 1))
    assert Sync.perform_async(1) is not None


def test_a_failure_keeps_the_lock_until_the_retry_succeeds(unique, r):
    # Given a unique job whose first run fails
    jid = Flaky.perform_async("x")
    job = decode(r.rpop(KEYS.queue("default")))
    with pytest.raises(ValueError, match="first run fails"):
        execute(Flaky, job, unique.server_middleware)
    # Then its lock is still held, so no copy is pushed while it waits for its retry
    assert r.get(lock_of(Flaky, "x")) == jid.encode()
    assert Flaky.perform_async("x") is None
    # When the retry (the same job) succeeds, the lock is released
    execute(Flaky, job, unique.server_middleware)
    assert not r.exists(lock_of(Flaky, "x"))


def test_a_job_does_not_release_a_lock_taken_by_a_newer_copy(unique, r):
    # Given a job whose lock expired and was taken by a newer copy
    Sync.perform_async(1)
    r.delete(lock_of(Sync, 1))
    newer = Sync.perform_async(1)
    # When the older job succeeds
    run_next(unique, r)
    # Then the newer copy still holds its lock
    assert r.get(lock_of(Sync, 1)) == newer.encode()


def test_unique_until_start_releases_the_lock_before_running(unique, r):
    AtStart.perform_async()
    run_next(unique, r)
    assert r.lrange("test:held_while_running", 0, -1) == [b"0"]
    assert AtStart.perform_async() is not None


def test_unique_until_start_releases_the_lock_even_if_the_job_fails(unique, r):
    AtStart.perform_async(True)
    with pytest.raises(ValueError):
        run_next(unique, r)
    assert not r.exists(lock_of(AtStart, True))


def test_a_job_pushed_without_the_middleware_runs_through_it(config, r):
    Sync.perform_async(1)
    install(config)
    job = run_next(config, r)
    assert "unique_digest" not in job
    assert r.lrange("test:ran", 0, -1) == [b"(1,)"]


def test_a_lock_that_cannot_be_released_does_not_fail_the_job(unique, r, closed_url):
    # Given a job that took its lock, and a server middleware whose Redis is unreachable
    Sync.perform_async(1)
    job = decode(r.rpop(KEYS.queue("default")))
    log = RecordingLog()
    chain = kiqpy.Chain()
    chain.add(UniqueServer(Config(redis_url=closed_url), log=log))
    # When the job runs, it succeeds; the lock is left to expire, with a warning
    execute(Sync, job, chain)
    assert r.lrange("test:ran", 0, -1) == [b"(1,)"]
    assert log.events("warning") == ["unique-job lock not released; it expires on its own"]
    assert r.exists(lock_of(Sync, 1))


def test_an_embedded_worker_runs_a_unique_job_and_releases_its_lock(unique, r, redis_url,
                                                                    monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)  # app_jobs' own client
    jid = app_unique.UniqueRecord.perform_async("e")
    assert app_unique.UniqueRecord.perform_async("e") is None
    with kiqpy.embed(concurrency=2, heartbeat_interval=0.2):
        wait_for(lambda: r.llen("test:unique_ran") == 1, message="the job to run")
        wait_for(lambda: not r.exists(lock_of(app_unique.UniqueRecord, "e")),
                 message="the lock to be released")
    assert jid is not None
    assert app_unique.UniqueRecord.perform_async("e") is not None


@pytest.mark.slow
def test_a_worker_that_installs_the_middleware_in_a_require_module(unique, r, redis_url):
    # Given a duplicate dropped at push time
    jid = app_unique.UniqueRecord.perform_async("w")
    assert app_unique.UniqueRecord.perform_async("w") is None
    # When a worker whose -r module calls install() runs the job
    with WorkerProcess(redis_url, require="tests.app_unique") as worker:
        wait_for(lambda: r.llen("test:unique_ran") == 1, message="the job to run")
        worker.terminate()
        assert worker.wait() == 0
    # Then the lock is released, and the same job can be pushed again
    assert r.lrange("test:unique_ran", 0, -1) == [b"('w',)"]
    assert not r.exists(lock_of(app_unique.UniqueRecord, "w"))
    assert jid is not None


# -- options ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"unique_for": 0}, "unique_for=0 must be a positive number of seconds or a timedelta"),
        ({"unique_for": "1h"}, "must be a positive number of seconds or a timedelta"),
        ({"unique_for": float("inf")}, "must be a positive number of seconds"),
        ({"unique_for": 60, "unique_until": "done"},
         "unique_until='done' must be \"success\" or \"start\""),
    ],
)
def test_bad_option_values_are_rejected_at_class_definition(options, reason):
    with pytest.raises(OptionsError, match="Bad: option ") as info:
        class Bad(kiqpy.Worker):
            kiqpy_options = options
    assert reason in str(info.value)


@pytest.mark.parametrize("option", ["unique_for", "unique_until"])
def test_before_the_import_the_option_error_names_the_module(option):
    code = f"import kiqpy\nclass Once(kiqpy.Worker, {option}=60): pass\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert (f"Once: option {option!r} belongs to kiqpy_middleware.unique; import it (and add "
            f"its middleware) before defining this class") in result.stderr


def test_every_bundled_option_is_declared_by_the_module_its_error_names():
    for option, module in options_module._BUNDLED.items():
        importlib.import_module(module)
        assert options_module._DECLARED[option][1] == module, option

