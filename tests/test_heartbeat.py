"""kiqpy.server.heartbeat: the process registry (``processes``, the process hash,
``<identity>:work``), the processed/failed counters, and remote signals.

In-process tests build a real Heartbeat over a real Manager and Fetcher (threads not started)
and run jobs through the manager's real processors; the rest run the ``kiqpy`` CLI.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time

import pytest
import redis

import kiqpy
from kiqpy.keys import Keys
from kiqpy.payload import decode, encode, new_jid, now_ms
from kiqpy.server.fetch import Fetcher
from kiqpy.server.heartbeat import DAILY_STATS_TTL, Heartbeat
from kiqpy.server.manager import Manager
from kiqpy.server.outage import Outage
from kiqpy.server.retry import Retrier
from tests import app_jobs
from tests.conftest import wait_for
from tests.recording import RecordingLog
from tests.redis_server import RedisServer
from tests.workers import WorkerProcess

KEYS = Keys()
IDENTITY = "testhost:4242:00000000beef"

# -- job classes run by the in-process processors -------------------------------------------------
release = threading.Event()


class Quick(kiqpy.Worker):
    def perform(self):
        pass


class Broken(kiqpy.Worker, retry=False):
    def perform(self):
        raise ValueError("broken")


class Blocking(kiqpy.Worker):
    def perform(self, tag):
        release.wait(10)


def payload(cls, *args, queue="default"):
    return encode({"class": cls.kiqpy_job_name, "args": list(args), "queue": queue,
                   "jid": new_jid(), "retry": cls.kiqpy_options_resolved.get("retry", True),
                   "created_at": now_ms(), "enqueued_at": now_ms()})


class Parts:
    """A heartbeat with the manager and fetcher it reports on, and the signals it handed on."""

    def __init__(self, config, client, log, identity=IDENTITY, **changes):
        cfg = config.replace(**changes) if changes else config
        outage = Outage(cfg.redis_url, log)
        self.fetcher = Fetcher(cfg, client, KEYS, identity, outage, log)
        retrier = Retrier(cfg, client, KEYS, outage, log, threading.Event())
        self.manager = Manager(cfg.concurrency, self.fetcher, retrier, cfg.server_middleware,
                               log)
        self.signals: list[str] = []
        self.stop = threading.Event()
        self.heartbeat = Heartbeat(cfg, client, KEYS, identity, self.manager, self.fetcher,
                                   outage, log, self.signals.append, self.stop)

    def run_jobs(self, *payloads, processor=0):
        for data in payloads:
            self.manager.processors[processor].process("default", data)


@pytest.fixture
def log():
    return RecordingLog()


@pytest.fixture
def parts(config, r, log):
    return Parts(config.replace(queues=(("default", 0), ("mail", 0)), tag="blue",
                                concurrency=3), r, log)


def process_hash(r, identity=IDENTITY):
    return {k.decode(): v.decode() for k, v in r.hgetall(KEYS.process(identity)).items()}


def today():
    return dt.datetime.now(dt.timezone.utc).date()


def test_a_running_job_with_huge_args_is_shown_shortened_and_encoded_once(parts, r):
    # Given a running job whose args take 300 kB
    job = {"class": "Import", "jid": "a" * 24, "args": ["x" * 300_000], "queue": "default"}
    parts.manager.busy["kiqpy.processor-1"] = ("default", job, time.time())
    # When two beats write the work hash
    parts.heartbeat.beat()
    first = parts.heartbeat._entries[id(job)][1]
    parts.heartbeat.beat()
    # Then its entry keeps the class and jid, says how big the args were, and is not rebuilt
    [raw] = r.hvals(KEYS.work(IDENTITY))
    entry = json.loads(raw)
    assert entry["payload"]["jid"] == "a" * 24 and entry["payload"]["class"] == "Import"
    assert entry["payload"]["args"][0].endswith("bytes of args, not shown)")
    assert len(raw) < 2000
    assert parts.heartbeat._entries[id(job)][1] is first
    # and once it ends, its encoding is forgotten
    del parts.manager.busy["kiqpy.processor-1"]
    parts.heartbeat.beat()
    assert parts.heartbeat._entries == {}


# -- the process hash ---------------------------------------------------------------------------
def test_a_beat_registers_the_process_with_its_info_and_state(parts, r):
    before = time.time()
    parts.heartbeat.beat()

    assert r.smembers(KEYS.processes) == {IDENTITY.encode()}
    fields = process_hash(r)
    assert set(fields) == {"info", "concurrency", "busy", "beat", "quiet", "rss", "rtt_us",
                           "flushed"}
    assert fields["concurrency"] == "3"  # Sidekiq 8.1 reads it here
    info = json.loads(fields["info"])
    assert info["hostname"] == socket.gethostname()
    assert info["pid"] == os.getpid()
    assert info["tag"] == "blue"
    assert info["queues"] == ["default", "mail"]
    assert info["concurrency"] == 3
    assert info["capsules"] == {"default": {"concurrency": 3, "mode": info["capsules"]["default"]
                                            ["mode"], "weights": info["weights"][0]}}
    assert info["labels"] == [] and info["embedded"] is False
    assert info["identity"] == IDENTITY
    assert info["version"] == kiqpy.__version__
    assert before - 5 <= info["started_at"] <= time.time()
    assert fields["busy"] == "0"
    assert before <= float(fields["beat"]) <= time.time()
    assert fields["quiet"] == "false"
    assert int(fields["rss"]) > 1000  # KiB
    assert int(fields["rtt_us"]) >= 0
    assert fields["flushed"] == "0 0"  # (processed, failed) already in the counters
    # The hash expires unless the next beat refreshes it.
    assert 55 <= r.ttl(KEYS.process(IDENTITY)) <= 60
    # And the process is known as an owner of in-flight lists, with its queues.
    assert json.loads(r.hget(KEYS.inflight_owners, IDENTITY)) == ["default", "mail"]


def test_the_next_beat_reports_its_round_trip_time_and_refreshes_the_ttl(parts, r):
    parts.heartbeat.beat()
    r.expire(KEYS.process(IDENTITY), 5)
    parts.heartbeat.beat()
    assert 55 <= r.ttl(KEYS.process(IDENTITY)) <= 60
    assert 0 < int(process_hash(r)["rtt_us"]) < 5_000_000


def test_the_ttl_follows_process_ttl(config, r, log):
    parts = Parts(config, r, log, process_ttl=7)
    parts.heartbeat.beat()
    assert 6 <= r.ttl(KEYS.process(IDENTITY)) <= 7


def test_a_quiet_process_says_so(parts, r):
    parts.heartbeat.quiet = True
    parts.heartbeat.beat()
    assert process_hash(r)["quiet"] == "true"


# -- what is running ----------------------------------------------------------------------------
def test_work_shows_the_running_job_and_is_cleared_when_it_is_done(parts, r):
    # Given a processor in the middle of a job
    release.clear()
    data = payload(Blocking, "slow", queue="mail")
    thread = threading.Thread(target=lambda: parts.manager.processors[1].process("mail", data))
    thread.start()
    try:
        wait_for(lambda: parts.manager.snapshot(), message="the job to start")
        started = time.time()
        parts.heartbeat.beat()

        # Then the process hash counts it busy and the work hash describes it
        assert process_hash(r)["busy"] == "1"
        work = r.hgetall(KEYS.work(IDENTITY))
        assert list(work) == [b"kiqpy.processor-2"]
        entry = json.loads(work[b"kiqpy.processor-2"])
        assert entry["queue"] == "mail"
        assert entry["payload"]["jid"] == decode(data)["jid"]
        assert entry["payload"]["class"] == Blocking.kiqpy_job_name
        assert entry["payload"]["args"] == ["slow"]
        assert started - 5 <= entry["run_at"] <= started
        assert 0 < r.ttl(KEYS.work(IDENTITY)) <= 60
    finally:
        release.set()
        thread.join(10)

    # When it is done, the next beat clears it
    parts.heartbeat.beat()
    assert process_hash(r)["busy"] == "0"
    assert not r.exists(KEYS.work(IDENTITY))


# -- counters -----------------------------------------------------------------------------------
def test_processed_and_failed_counts_are_flushed_with_daily_keys_that_expire(parts, r):
    parts.run_jobs(*[payload(Quick) for _ in range(3)], *[payload(Broken) for _ in range(2)])
    parts.heartbeat.beat()

    day = today().isoformat()
    assert int(r.get("stat:processed")) == 5
    assert int(r.get("stat:failed")) == 2
    assert int(r.get(f"stat:processed:{day}")) == 5
    assert int(r.get(f"stat:failed:{day}")) == 2
    for name in ("processed", "failed"):
        assert DAILY_STATS_TTL - 60 <= r.ttl(f"stat:{name}:{day}") <= DAILY_STATS_TTL
        assert r.ttl(f"stat:{name}") == -1  # the totals never expire
    assert DAILY_STATS_TTL == 5 * 365 * 24 * 3600

    # Each job is counted once: the next beats add only what ran since.
    parts.heartbeat.beat()
    parts.run_jobs(payload(Quick))
    parts.heartbeat.beat()
    assert int(r.get("stat:processed")) == 6 and int(r.get("stat:failed")) == 2


def test_counters_add_to_what_other_processes_counted(parts, r):
    r.set("stat:processed", 100)
    parts.run_jobs(payload(Quick))
    parts.heartbeat.beat()
    assert int(r.get("stat:processed")) == 101
    assert not r.exists("stat:failed")  # nothing to add: no key written


def test_counts_are_kept_until_a_beat_gets_through(parts, r, closed_url):
    # Given counts to flush and a Redis that is not there
    parts.run_jobs(payload(Quick), payload(Quick), payload(Broken))
    parts.heartbeat.redis = redis.Redis.from_url(closed_url, socket_connect_timeout=0.2)
    with pytest.raises(redis.ConnectionError):
        parts.heartbeat.beat()
    parts.run_jobs(payload(Quick))

    # When Redis is reachable again
    parts.heartbeat.redis = r
    parts.heartbeat.beat()

    # Then nothing was lost, and nothing is counted twice
    assert int(r.get("stat:processed")) == 4 and int(r.get("stat:failed")) == 1
    parts.heartbeat.beat()
    assert int(r.get("stat:processed")) == 4


def test_a_beat_that_timed_out_but_ran_later_is_not_counted_twice(config, log):
    # Given counts to flush and a Redis that stalls (SIGSTOP) longer than the socket timeout:
    # the beat times out (redis-py may send it again), and every copy waits in a socket buffer
    server = RedisServer().start()
    client = redis.Redis.from_url(server.url)
    slow = redis.Redis.from_url(server.url, socket_timeout=0.3)
    try:
        parts = Parts(config.replace(redis_url=server.url), slow, log)
        parts.run_jobs(payload(Quick), payload(Quick), payload(Broken))
        slow.ping()  # connected: the beat's commands reach Redis's socket buffer
        server.pause()
        try:
            with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
                parts.heartbeat.beat()
        finally:
            server.resume()  # the copies run now, whatever the client thought
        parts.run_jobs(payload(Quick))
        # When the next beat gets through
        parts.heartbeat.beat()
        # Then each job is counted once
        assert int(client.get("stat:processed")) == 4
        assert int(client.get("stat:failed")) == 1
        parts.heartbeat.clear()
        assert int(client.get("stat:processed")) == 4
    finally:
        client.close()
        slow.close()
        server.cleanup()


# -- remote signals -----------------------------------------------------------------------------
def test_remote_signals_are_handed_on_in_the_order_they_were_sent(parts, r, log):
    for command in ("quiet", "dump", "stop", "TSTP", "TTIN", "TERM"):
        r.lpush(KEYS.signals(IDENTITY), command)
    parts.heartbeat.beat()
    assert parts.signals == ["quiet", "dump", "stop", "quiet", "dump", "stop"]
    assert not r.exists(KEYS.signals(IDENTITY))


def test_an_unknown_remote_signal_is_logged_and_ignored(parts, r, log):
    r.lpush(KEYS.signals(IDENTITY), "explode", "quiet")
    parts.heartbeat.beat()
    assert parts.signals == ["quiet"]
    [(_, fields)] = [(e, f) for lvl, e, f in log.records if e == "unknown remote signal ignored"]
    assert "explode" in str(fields["signal"])


def test_signals_for_another_process_are_left_alone(parts, r):
    r.lpush(KEYS.signals("otherhost:1:abc"), "stop")
    parts.heartbeat.beat()
    assert parts.signals == []
    assert r.llen(KEYS.signals("otherhost:1:abc")) == 1


# -- leaving ------------------------------------------------------------------------------------
def test_clear_flushes_the_last_counts_and_leaves_the_registry(parts, r):
    parts.heartbeat.beat()
    r.lpush(KEYS.signals(IDENTITY), "dump")
    parts.run_jobs(payload(Quick))
    parts.heartbeat.clear()
    assert int(r.get("stat:processed")) == 1
    assert not r.sismember(KEYS.processes, IDENTITY)
    assert not r.exists(KEYS.process(IDENTITY), KEYS.work(IDENTITY), KEYS.signals(IDENTITY))


def test_a_beat_after_clear_does_not_bring_the_process_back(parts, r):
    # The launcher does not join the heartbeat thread before clear(): a beat that was under
    # way must not re-register a process that has left.
    parts.heartbeat.beat()
    parts.heartbeat.clear()
    parts.heartbeat.beat()
    assert not r.sismember(KEYS.processes, IDENTITY)
    assert not r.exists(KEYS.process(IDENTITY))


def test_a_beat_and_clear_at_the_same_time_count_each_job_once(config, log):
    # Given a Redis that is paused, so the heartbeat thread's beat hangs with its counts taken
    server = RedisServer().start()
    client = redis.Redis.from_url(server.url)
    try:
        parts = Parts(config.replace(redis_url=server.url), client, log)
        parts.run_jobs(payload(Quick), payload(Quick))
        server.pause()
        beat = threading.Thread(target=parts.heartbeat.beat)
        beat.start()
        time.sleep(0.2)  # ordering only: let the beat send its pipeline first
        # When shutdown clears the process meanwhile
        clear = threading.Thread(target=parts.heartbeat.clear)
        clear.start()
        time.sleep(0.2)
        server.resume()
        beat.join(10)
        clear.join(10)
        # Then the jobs are counted once and the process is gone
        assert int(client.get("stat:processed")) == 2
        assert not client.sismember(KEYS.processes, IDENTITY)
        assert not client.exists(KEYS.process(IDENTITY))
    finally:
        client.close()
        server.cleanup()  # resumes a paused server before stopping it


def test_the_loop_beats_until_stopped(config, r, log):
    parts = Parts(config, r, log, heartbeat_interval=0.05)
    thread = threading.Thread(target=parts.heartbeat.run, name="kiqpy.heartbeat")
    thread.start()
    try:
        wait_for(lambda: r.exists(KEYS.process(IDENTITY)), timeout=5, message="a beat")
        first = float(process_hash(r)["beat"])
        wait_for(lambda: float(process_hash(r)["beat"]) > first, timeout=5, message="a second")
    finally:
        parts.stop.set()
        thread.join(5)
    assert not thread.is_alive()


# -- fetcher behaviour on quiet (kiqpy/server/fetch.py) ------
def blocked_in_blmove(r):
    return [c for c in r.client_list() if c.get("cmd") == "blmove" and "b" in c.get("flags", "")]


def test_after_quiet_a_waiter_does_not_take_new_jobs(config, r, log):
    # Given an idle fetcher whose waiter is blocked in BLMOVE on the empty queue
    cfg = config.replace(concurrency=1)
    fetcher = Fetcher(cfg, r, KEYS, IDENTITY, Outage(cfg.redis_url, log), log)
    threads = []

    def spawn(name, body):
        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    fetcher.start(spawn)
    try:
        wait_for(lambda: blocked_in_blmove(r), timeout=5, message="a waiter in BLMOVE")
        # When the process goes quiet, then a job is pushed
        fetcher.stop()
        data = payload(Quick)
        r.lpush(KEYS.queue("default"), data)
        time.sleep(2.5)  # a negative check: longer than a waiter's BLMOVE block
        # Then the job is still queued, not taken
        assert fetcher.work.empty()
        assert r.lrange(KEYS.queue("default"), 0, -1) == [data]
    finally:
        fetcher.close(5)
        fetcher.join_waiters(5)


# -- end to end ---------------------------------------------------------------------------------
def identity_of(r, worker):
    def registered():
        assert worker.process.poll() is None, f"the worker exited:\n{worker.log()[-3000:]}"
        return next(iter(r.smembers(KEYS.processes)), None)

    return wait_for(registered, timeout=20, message="the worker to register").decode()


def test_a_worker_registers_itself_and_shows_its_running_job(config, r, redis_url):
    with WorkerProcess(redis_url, "-c", "4", "-g", "green", "-q", "default,mail") as worker:
        identity = identity_of(r, worker)
        assert identity.split(":")[1] == str(worker.pid)
        info = json.loads(r.hget(KEYS.process(identity), "info"))
        assert (info["pid"], info["tag"], info["concurrency"]) == (worker.pid, "green", 4)
        assert info["queues"] == ["default", "mail"]
        assert 0 < r.ttl(KEYS.process(identity)) <= 2  # --process-ttl 2

        jid = app_jobs.Sleepy.set(queue="mail").perform_async("busy", 30)
        wait_for(lambda: r.hget(KEYS.process(identity), "busy") == b"1",
                 message="the process to count itself busy")
        [(thread, raw)] = r.hgetall(KEYS.work(identity)).items()
        entry = json.loads(raw)
        assert thread.decode().startswith("kiqpy.processor-")
        assert entry["queue"] == "mail" and entry["payload"]["jid"] == jid
        assert entry["payload"]["args"] == ["busy", 30]
        assert abs(entry["run_at"] - time.time()) < 10
        worker.kill9()


def test_a_clean_stop_leaves_the_registry_and_flushes_the_counts(config, r, redis_url):
    with WorkerProcess(redis_url) as worker:
        identity = identity_of(r, worker)
        for n in range(3):
            app_jobs.Record.perform_async(n)
        app_jobs.Fail.set(retry=False).perform_async()
        wait_for(lambda: r.llen("test:ran") == 3 and r.get("test:fail_attempts"),
                 message="the jobs to run")
        worker.terminate()
        assert worker.wait() == 0
    assert r.smembers(KEYS.processes) == set()
    assert not r.exists(KEYS.process(identity), KEYS.work(identity), KEYS.signals(identity))
    assert not r.hexists(KEYS.inflight_owners, identity)
    assert int(r.get("stat:processed")) == 4 and int(r.get("stat:failed")) == 1
    assert int(r.get(f"stat:processed:{today().isoformat()}")) == 4


def test_remote_quiet_stops_fetching(config, r, redis_url):
    with WorkerProcess(redis_url) as worker:
        identity = identity_of(r, worker)
        app_jobs.Record.perform_async("before")
        wait_for(lambda: r.llen("test:ran") == 1, message="a job before quiet")

        r.lpush(KEYS.signals(identity), "quiet")
        wait_for(lambda: r.hget(KEYS.process(identity), "quiet") == b"true",
                 message="the process to say it is quiet")
        worker.wait_for_log("quiet: no new jobs will be fetched")
        # A waiter may finish a BLMOVE it began before quiet (see the xfail test above): let
        # it time out before pushing, so this checks what quiet promises beyond that window.
        wait_for(lambda: not blocked_in_blmove(r), timeout=5, message="the waiters to leave")
        app_jobs.Record.perform_async("after")
        time.sleep(1.0)  # a negative check: the fetch loop would take it within milliseconds
        assert r.llen("test:ran") == 1 and r.llen(KEYS.queue("default")) == 1
        assert worker.process.poll() is None  # quiet, not stopped

        worker.terminate()
        assert worker.wait() == 0
    assert r.llen(KEYS.queue("default")) == 1  # still there for the next worker


def test_remote_stop_stops_the_worker_cleanly(config, r, redis_url):
    with WorkerProcess(redis_url) as worker:
        identity = identity_of(r, worker)
        r.lpush(KEYS.signals(identity), "stop")
        assert worker.wait(15) == 0
    assert not r.sismember(KEYS.processes, identity)
    assert not r.exists(KEYS.process(identity))


def test_remote_dump_logs_every_thread_and_an_unknown_signal_is_ignored(config, r, redis_url):
    with WorkerProcess(redis_url, "-c", "2") as worker:
        identity = identity_of(r, worker)
        r.lpush(KEYS.signals(identity), "bogus")
        r.lpush(KEYS.signals(identity), "dump")
        expected = {"kiqpy.processor-1", "kiqpy.processor-2", "kiqpy.heartbeat",
                    "kiqpy.scheduler", "MainThread"}

        def dumped():
            return {json.loads(line)["thread"] for line in worker.log().splitlines()
                    if '"thread dump"' in line}

        wait_for(lambda: expected <= dumped(), message="a dump of every thread")
        assert any("kiqpy/server/heartbeat.py" in json.loads(line).get("stack", "")
                   for line in worker.log().splitlines() if '"thread dump"' in line)
        worker.wait_for_log("unknown remote signal ignored")
        # Still working after both
        app_jobs.Record.perform_async("still here")
        wait_for(lambda: r.llen("test:ran") == 1, message="a job after the signals")
        assert r.sismember(KEYS.processes, identity)
        worker.terminate()
        assert worker.wait() == 0
