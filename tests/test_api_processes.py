"""kiqpy.api: ProcessSet, Process and WorkSet. The commands and the running jobs are checked on
real worker processes (tests/workers.py: heartbeat every 0.5 s, TTL 2 s)."""

from __future__ import annotations

import json
import socket
import time

import pytest

import kiqpy
from kiqpy.api import ProcessSet, Stats, WorkSet
from kiqpy.api.processes import SIGNAL_TTL
from kiqpy.config import Config
from tests import app_jobs
from tests.conftest import wait_for
from tests.workers import WorkerProcess


def fake_process(r, identity, info=None, busy=0, quiet="false", prefix=""):
    """What a heartbeat writes, without a process behind it."""
    r.sadd(f"{prefix}processes", identity)
    r.hset(f"{prefix}{identity}", mapping={
        "info": json.dumps(info if info is not None else {"concurrency": 4, "queues": ["q"]}),
        "busy": busy, "beat": time.time(), "quiet": quiet, "rss": 2048, "rtt_us": 150})


def only_process(identity: str | None = None):
    processes = list(ProcessSet())
    assert len(processes) == 1, processes
    assert identity is None or processes[0].identity == identity
    return processes[0]


# -- reading, without workers --------------------------------------------------------------------
def test_dead_members_are_pruned_but_their_inflight_ownership_is_kept(config, r):
    fake_process(r, "host:1:live", busy=1)
    r.sadd("processes", "host:2:dead")
    r.hset("kiqpy:inflight-owners", "host:2:dead", json.dumps(["default"]))

    assert [p.identity for p in ProcessSet(prune=False)] == ["host:1:live"]
    assert r.sismember("processes", "host:2:dead")

    processes = ProcessSet()

    assert [p.identity for p in processes] == ["host:1:live"]
    assert r.smembers("processes") == {b"host:1:live"}
    # Orphan recovery still finds the dead process's in-flight jobs through this hash.
    assert r.hget("kiqpy:inflight-owners", "host:2:dead") == b'["default"]'


def test_totals_and_lookup(config, r):
    fake_process(r, "a:1:x", {"concurrency": 10}, busy=3)
    fake_process(r, "b:2:y", {"concurrency": 5}, busy=1)

    processes = ProcessSet()

    assert (processes.size, len(processes)) == (2, 2)
    assert (processes.total_concurrency, processes.total_rss, processes.total_busy) == (
        15, 4096, 4)
    assert processes.find("b:2:y").busy == 1 and processes.find("c:3:z") is None


def test_odd_heartbeat_values_do_not_break_the_listing(config, r):
    r.sadd("processes", "odd:1:x")
    r.hset("odd:1:x", mapping={"info": "{not json", "busy": "many", "beat": "never"})

    [process] = ProcessSet()

    assert (process.info, process.busy, process.beat, process.concurrency) == ({}, 0, None, 0)
    assert (process.queues, process.weights, process.started_at, process.tag) == ([], {}, None,
                                                                                  "")
    assert process.to_dict()["identity"] == "odd:1:x"


def test_quiet_all_and_stop_all_leave_commands_that_expire(config, r):
    fake_process(r, "a:1:x")
    fake_process(r, "b:2:y")

    processes = ProcessSet()
    assert processes.quiet_all() == 2
    assert processes.stop_all() == 2
    processes.find("a:1:x").dump_threads()

    # The heartbeat RPOPs: commands arrive in the order they were given.
    assert r.lrange("a:1:x-signals", 0, -1)[::-1] == [b"TSTP", b"TERM", b"TTIN"]
    assert r.lrange("b:2:y-signals", 0, -1)[::-1] == [b"TSTP", b"TERM"]
    assert 0 < r.ttl("a:1:x-signals") <= SIGNAL_TTL


def test_work_set_reads_running_jobs_of_live_processes_only(config, r):
    fake_process(r, "a:1:x", busy=2)
    job = {"class": "Mailer", "args": [1], "queue": "mail", "jid": "b" * 24}
    r.hset("a:1:x:work", mapping={
        "kiqpy.processor-1": json.dumps({"queue": "mail", "payload": job, "run_at": 1000.5}),
        "kiqpy.processor-2": "{broken"})
    r.sadd("processes", "gone:2:y")
    r.hset("gone:2:y:work", "kiqpy.processor-1", json.dumps({"queue": "x", "payload": job}))

    works = list(WorkSet())

    assert [(identity, thread) for identity, thread, _ in works] == [
        ("a:1:x", "kiqpy.processor-1"), ("a:1:x", "kiqpy.processor-2")]
    work = works[0][2]
    assert (work.queue, work.payload, work.run_at.timestamp()) == ("mail", job, 1000.5)
    assert (work.job.klass, work.job.jid) == ("Mailer", "b" * 24)
    assert works[1][2].job.error is not None  # shown, not raised
    assert WorkSet().find("b" * 24).thread == "kiqpy.processor-1"
    assert WorkSet().find("c" * 24) is None


def test_namespaced_processes(config, r, redis_url):
    ns = Config(redis_url=redis_url, namespace="app")
    fake_process(r, "a:1:x", prefix="app:")
    fake_process(r, "b:2:y")

    [process] = ProcessSet(ns)
    process.quiet()

    assert process.identity == "a:1:x" and r.lrange("app:a:1:x-signals", 0, -1) == [b"TSTP"]
    assert [p.identity for p in ProcessSet()] == ["b:2:y"]


# -- live workers --------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_live_worker_is_listed_with_its_info_and_heartbeat(config, r, redis_url):
    with WorkerProcess(redis_url, "-c", "3", "-g", "blue", "-q", "default,mail") as worker:
        wait_for(lambda: len(ProcessSet()) == 1, message="the worker's heartbeat")
        process = only_process()

        assert process.identity.startswith(f"{socket.gethostname()}:{worker.pid}:")
        assert (process.hostname, process.pid, process.tag) == (socket.gethostname(),
                                                                worker.pid, "blue")
        assert (process.queues, process.concurrency, process.busy) == (["default", "mail"], 3, 0)
        assert process.weights == {"default": 0, "mail": 0}
        assert not process.is_quiet and process.rss > 1000 and process.rtt_us >= 0
        assert process.version == kiqpy.__version__
        assert time.time() - process.beat.timestamp() < 5
        assert 0 <= time.time() - process.started_at.timestamp() < 60
        assert Stats().processes_size == 1


@pytest.mark.slow
def test_quiet_reaches_a_live_worker(config, r, redis_url):
    with WorkerProcess(redis_url) as worker:
        wait_for(lambda: len(ProcessSet()) == 1, message="the worker's heartbeat")
        process = only_process()

        process.quiet()

        wait_for(lambda: only_process().is_quiet, message="the worker to report quiet")
        assert r.hget(process.identity, "quiet") == b"true"
        worker.wait_for_log("no new jobs will be fetched")


@pytest.mark.slow
def test_stop_makes_a_live_worker_exit_cleanly(config, r, redis_url):
    with WorkerProcess(redis_url) as worker:
        wait_for(lambda: len(ProcessSet()) == 1, message="the worker's heartbeat")

        only_process().stop()

        assert worker.wait(30) == 0
        assert len(ProcessSet()) == 0 and not r.exists("processes")


@pytest.mark.slow
def test_dump_threads_logs_every_threads_stack(config, r, redis_url):
    with WorkerProcess(redis_url) as worker:
        wait_for(lambda: len(ProcessSet()) == 1, message="the worker's heartbeat")

        only_process().dump_threads()

        worker.wait_for_log("thread dump")
        worker.wait_for_log("kiqpy.heartbeat")
        assert worker.process.poll() is None  # still running


@pytest.mark.slow
def test_work_set_shows_a_running_job(config, r, redis_url):
    with WorkerProcess(redis_url, "-c", "2") as worker:
        jid = kiqpy.enqueue("Sleepy", "w", 20)
        wait_for(lambda: r.exists("test:started:w"), message="the job to start")
        wait_for(lambda: len(WorkSet()) == 1, message="the heartbeat to report the job")

        [(identity, thread, work)] = WorkSet()

        assert identity == only_process().identity and thread.startswith("kiqpy.processor-")
        assert (work.queue, work.job.klass, work.job.args, work.job.jid) == (
            "default", "Sleepy", ["w", 20], jid)
        assert work.payload["jid"] == jid and 0 <= time.time() - work.run_at.timestamp() < 30
        assert WorkSet().find(jid).thread == thread
        assert only_process().busy == 1 and Stats().workers_size == 1
        worker.kill9()


@pytest.mark.slow
def test_a_killed_worker_is_pruned_after_its_ttl_and_its_jobs_are_still_recovered(
        config, r, redis_url):
    # Given a worker killed with -9 in the middle of a job
    with WorkerProcess(redis_url) as worker:
        kiqpy.enqueue("SleepFirst", "k", 60)
        wait_for(lambda: r.exists("test:starts:k"), message="the job to start")
        identity = only_process().identity
        worker.kill9()
    # When its heartbeat hash expires (TTL 2 s), a ProcessSet prunes it
    wait_for(lambda: not r.exists(identity), message="the heartbeat hash to expire")
    assert len(ProcessSet()) == 0
    assert not r.sismember("processes", identity)
    assert r.hexists("kiqpy:inflight-owners", identity)
    # Then a new worker still recovers the job the dead one was running
    with WorkerProcess(redis_url):
        wait_for(lambda: r.exists("test:finished:k"), timeout=30,
                 message="the recovered job to run")


def test_processes_with_work_agree_with_their_running_jobs_in_every_read(config, r,
                                                                          redis_url):
    with pytest.raises(ValueError, match="with_work=True"):
        WorkSet.of(ProcessSet(config))
    app_jobs.Tracked.perform_bulk([[n, 0.03] for n in range(150)])
    with WorkerProcess(redis_url, "-c", "3"):
        wait_for(lambda: r.scard("test:began") >= 3, message="jobs under way")
        # Read while heartbeats (every 0.5 s) rewrite both hashes: one transaction per read,
        # so the busy counts and the running jobs always come from the same beat
        seen_busy = False
        deadline = time.monotonic() + 60
        while r.scard("test:seen") < 150:
            assert time.monotonic() < deadline, "the 150 jobs did not finish"
            processes = ProcessSet(config, with_work=True)
            work = WorkSet.of(processes)
            assert processes.total_busy == len(work), (processes.total_busy, list(work))
            seen_busy = seen_busy or len(work) > 0
        assert seen_busy
