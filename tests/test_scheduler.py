"""kiqpy.server.scheduler: due members of ``schedule`` and ``retry`` move to their queues,
exactly once, however many processes poll; members that are not jobs go to the dead set."""

from __future__ import annotations

import base64
import json
import statistics
import threading
import time

import msgpack
import pytest
import redis

from kiqpy.failures import MALFORMED_CLASS
from kiqpy.keys import Keys
from kiqpy.payload import decode, encode, new_jid, now_ms
from kiqpy.server.outage import Outage
from kiqpy.server.scheduler import BATCH, Scheduler
from tests import app_jobs
from tests.conftest import wait_for
from tests.recording import RecordingLog
from tests.stamping import assert_moved, unstamp
from tests.workers import WorkerProcess


@pytest.fixture
def log():
    return RecordingLog()


def make_scheduler(config, client, log, keys=None, stop=None, **changes):
    cfg = config.replace(**changes) if changes else config
    return Scheduler(cfg, client, keys or Keys(cfg.namespace), Outage(cfg.redis_url, log), log,
                     stop or threading.Event())


def job(queue="default", serializer="msgpack", **extra):
    return encode({"class": "Record", "args": [queue], "queue": queue, "jid": new_jid(),
                   "retry": True, "created_at": now_ms(), **extra}, serializer)


def queue_jids(r, queue="default", prefix=""):
    return [decode(p)["jid"] for p in reversed(r.lrange(f"{prefix}queue:{queue}", 0, -1))]


def as_scheduled(r, key):
    """The payloads on a queue list as they were in their sorted set: each must be its member
    byte for byte plus a fresh enqueued_at (checked, then taken off)."""
    payloads = r.lrange(key, 0, -1)
    for payload in payloads:
        assert_moved(payload, unstamp(payload)[0])
    return [unstamp(payload)[0] for payload in payloads]


def dead_jobs(r):
    return [decode(m) for m in r.zrange("dead", 0, -1)]


# -- moving due jobs ----------------------------------------------------------------------------
def test_due_jobs_of_schedule_and_retry_move_to_their_queues_and_future_ones_stay(
        config, r, log):
    now = time.time()
    due_mail, due_default = job("mail"), job("default")
    due_retry, later, later_retry = job("critical"), job("mail"), job("default")
    r.zadd("schedule", {due_mail: now - 10, due_default: now - 0.001, later: now + 60})
    r.zadd("retry", {due_retry: now - 1, later_retry: now + 60})

    moved = make_scheduler(config, r, log).enqueue_due()

    assert moved == 3
    assert as_scheduled(r, "queue:mail") == [due_mail]
    assert as_scheduled(r, "queue:default") == [due_default]
    assert as_scheduled(r, "queue:critical") == [due_retry]
    assert r.smembers("queues") == {b"mail", b"default", b"critical"}
    assert r.zrange("schedule", 0, -1) == [later]
    assert r.zrange("retry", 0, -1) == [later_retry]
    assert r.zcard("dead") == 0


def test_due_jobs_are_queued_earliest_first(config, r, log):
    now = time.time()
    payloads = [job() for _ in range(5)]
    r.zadd("schedule", {p: now - 100 + i for i, p in enumerate(payloads)})
    make_scheduler(config, r, log).enqueue_due()
    # Taken from the right: the earliest-due job is taken first.
    assert list(reversed(as_scheduled(r, "queue:default"))) == payloads


def test_the_time_can_be_given(config, r, log):
    payload = job()
    r.zadd("schedule", {payload: 1000.0})
    scheduler = make_scheduler(config, r, log)
    assert scheduler.enqueue_due(now=999.5) == 0
    assert scheduler.enqueue_due(now=1000.0) == 1
    assert as_scheduled(r, "queue:default") == [payload]


def test_more_due_jobs_than_a_batch_all_move_in_one_call(config, r, log):
    now = time.time()
    r.zadd("schedule", {job(): now - 1 for _ in range(2 * BATCH + 50)})
    r.zadd("retry", {job("mail"): now - 1 for _ in range(BATCH + 30)})
    assert make_scheduler(config, r, log).enqueue_due() == 3 * BATCH + 80
    assert r.llen("queue:default") == 2 * BATCH + 50
    assert r.llen("queue:mail") == BATCH + 30
    assert r.zcard("schedule") == 0 and r.zcard("retry") == 0


def test_jobs_of_both_encodings_and_awkward_args_move_untouched(config, r, log):
    # The Lua side decodes each payload to find its queue: long strings (str16/str32 in
    # msgpack), big ints, floats, nested maps, non-ASCII text, and JSON with spaces.
    big = {"text": "é" * 70_000, "n": 2**63 + 5, "neg": -(2**63), "f": 1.5e300,
           "nested": [{"a": [None, True, False]}]}
    payloads = [
        job("mail", args=[big]),
        job("mail", serializer="json", args=[big | {"n": 5}]),
        b' {"class": "Record", "args": [], "queue": "mail", "jid": "%s"}' % new_jid().encode(),
    ]
    r.zadd("schedule", {p: time.time() - 1 for p in payloads})
    assert make_scheduler(config, r, log).enqueue_due() == len(payloads)
    assert sorted(as_scheduled(r, "queue:mail")) == sorted(payloads)


def only_python_reads(queue="mail"):
    """A job Python decodes but Redis's Lua cmsgpack does not (a msgpack bin field)."""
    return encode({"class": "Record", "args": [], "queue": queue, "jid": new_jid(), "x": b"raw"})


def test_a_job_the_lua_decoder_cannot_read_still_reaches_its_queue(config, r, log):
    payload = only_python_reads()
    r.zadd("retry", {payload: time.time() - 1})
    assert make_scheduler(config, r, log).enqueue_due() == 1
    assert as_scheduled(r, "queue:mail") == [payload]
    assert r.smembers("queues") == {b"mail"}
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0


def test_a_namespace_prefixes_every_key(config, r, log):
    keys = Keys("app")
    payload = job("mail")
    r.zadd("app:schedule", {payload: time.time() - 1})
    r.zadd("schedule", {job("mail"): time.time() - 1})  # another namespace's: not ours
    make_scheduler(config, r, log, keys=keys).enqueue_due()
    assert as_scheduled(r, "app:queue:mail") == [payload]
    assert r.smembers("app:queues") == {b"mail"}
    assert r.zcard("schedule") == 1 and not r.exists("queue:mail")


# -- members that are not jobs ------------------------------------------------------------------
MALFORMED = {
    "random bytes": (b"\xc1\xff\x00garbage", "msgpack"),
    "JSON that is not a map": (b'["Record", 1, 2]', "not a map"),
    "a JSON string": (b'"just text"', "not a map"),
    "a job with no queue": (
        msgpack.packb({"class": "Record", "args": [], "jid": new_jid()}), "no 'queue'"),
    "a JSON job with no queue": (
        json.dumps({"class": "Record", "args": [], "jid": new_jid()}).encode(), "no 'queue'"),
    "a job with an empty queue": (
        json.dumps({"class": "Record", "args": [], "jid": new_jid(), "queue": ""}).encode(),
        "empty"),
    "a job whose queue is a number": (
        msgpack.packb({"class": "Record", "args": [], "jid": new_jid(), "queue": 7}), "queue"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_member_that_is_not_a_job_goes_to_dead_with_the_reason(config, r, log, name):
    bad, reason = MALFORMED[name]
    good = job()
    r.zadd("retry", {bad: time.time() - 2, good: time.time() - 1})

    assert make_scheduler(config, r, log).enqueue_due() == 1

    assert as_scheduled(r, "queue:default") == [good]
    assert r.zcard("retry") == 0
    [dead] = dead_jobs(r)
    assert dead["class"] == MALFORMED_CLASS
    assert dead["error_message"].startswith("in retry: ")
    assert reason in dead["error_message"]
    assert base64.b64decode(dead["original_payload"]) == bad
    assert "malformed payload sent to the dead set" in log.events("error")


def test_a_batch_full_of_malformed_members_does_not_stop_the_good_ones_behind_it(
        config, r, log):
    now = time.time()
    r.zadd("schedule", {b"\xc1bad %d" % n: now - 10 for n in range(BATCH + 5)})
    good = job()
    r.zadd("schedule", {good: now - 1})
    assert make_scheduler(config, r, log).enqueue_due() == 1
    assert as_scheduled(r, "queue:default") == [good]
    assert r.zcard("dead") == BATCH + 5 and r.zcard("schedule") == 0


# -- many pollers -------------------------------------------------------------------------------
def test_many_pollers_at_the_same_instant_move_each_member_exactly_once(config, r, log,
                                                                        redis_url):
    # Given 2,000 due jobs (and a few malformed members) and 8 pollers, each with its own
    # connection, released together
    now = time.time()
    payloads = [job(f"q{n % 4}") for n in range(2000)]
    r.zadd("schedule", {p: now - 1 for p in payloads[:1000]})
    r.zadd("retry", {p: now - 1 for p in payloads[1000:]})
    bad = [b"\xc1 not a job %d" % n for n in range(7)]
    r.zadd("retry", {b: now - 1 for b in bad})
    odd = [only_python_reads(f"q{n % 4}") for n in range(5)]
    r.zadd("schedule", {p: now - 1 for p in odd})
    payloads += odd
    clients = [redis.Redis.from_url(redis_url) for _ in range(8)]
    schedulers = [make_scheduler(config, c, RecordingLog()) for c in clients]
    start = threading.Barrier(len(schedulers))
    moved = [0] * len(schedulers)
    errors = []

    def poll(index):
        try:
            start.wait()
            moved[index] = schedulers[index].enqueue_due()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(len(schedulers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # Then every job is queued once, and every malformed member is dead once
    assert errors == []
    assert sum(moved) == 2005
    queued = [p for n in range(4) for p in as_scheduled(r, f"queue:q{n}")]
    assert len(queued) == 2005 and set(queued) == set(payloads)
    assert r.zcard("schedule") == 0 and r.zcard("retry") == 0
    dead = dead_jobs(r)
    assert sorted(base64.b64decode(d["original_payload"]) for d in dead) == sorted(bad)
    for client in clients:
        client.close()


# -- the polling interval -----------------------------------------------------------------------
def test_interval_is_spread_around_five_seconds_times_the_processes(config, r, log):
    scheduler = make_scheduler(config, r, log)
    for processes in (1, 4):
        scheduler.processes = processes
        average = 5.0 * processes
        samples = [scheduler.interval() for _ in range(2000)]
        assert all(0.5 * average <= s <= 1.5 * average for s in samples)
        assert abs(statistics.mean(samples) - average) < 0.05 * average
        assert max(samples) - min(samples) > 0.8 * average  # spread, not in lockstep


def test_a_configured_average_interval_overrides_the_process_count(config, r, log):
    scheduler = make_scheduler(config, r, log, poll_interval_average=0.2)
    scheduler.processes = 10
    samples = [scheduler.interval() for _ in range(500)]
    assert all(0.1 <= s <= 0.3 for s in samples)


def test_each_poll_learns_how_many_processes_share_the_work(config, r, log):
    scheduler = make_scheduler(config, r, log)
    r.sadd("processes", "a:1:x", "b:2:y", "c:3:z")
    scheduler.poll()
    assert scheduler.processes == 3
    assert 7.5 <= scheduler.interval() <= 22.5
    r.delete("processes")
    scheduler.poll()
    assert scheduler.processes == 1


def test_the_loop_moves_due_jobs_and_exits_when_stopped(config, r, log):
    stop = threading.Event()
    scheduler = make_scheduler(config, r, log, stop=stop, poll_interval_average=0.05)
    thread = threading.Thread(target=scheduler.run, name="kiqpy.scheduler")
    thread.start()
    try:
        payload = job()
        r.zadd("schedule", {payload: time.time()})
        wait_for(lambda: r.llen("queue:default") == 1, timeout=5,
                 message="the scheduler loop to move the job")
        assert as_scheduled(r, "queue:default") == [payload]
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_the_loop_lives_through_a_redis_outage(config, r, log, closed_url):
    # Given a scheduler whose Redis is not there
    stop = threading.Event()
    down = redis.Redis.from_url(closed_url, socket_connect_timeout=0.2)
    scheduler = make_scheduler(config, down, log, stop=stop, poll_interval_average=0.02)
    thread = threading.Thread(target=scheduler.run, name="kiqpy.scheduler")
    thread.start()
    try:
        wait_for(lambda: "redis unreachable; retrying" in log.events("error"), timeout=5,
                 message="the outage to be logged")
        # When Redis is back (here: the scheduler is given a working connection)
        payload = job()
        r.zadd("schedule", {payload: time.time()})
        scheduler.redis = r
        scheduler.scripts = type(scheduler.scripts)(r)
        wait_for(lambda: r.llen("queue:default") == 1, timeout=10,
                 message="the job to move after the outage")
    finally:
        stop.set()
        thread.join(10)
    # Then it logged the outage once, and its end once
    assert not thread.is_alive()
    assert log.events("error").count("redis unreachable; retrying") == 1
    assert log.events("warning").count("redis back") == 1


# -- end to end ---------------------------------------------------------------------------------
def test_a_scheduled_job_runs_in_a_real_worker_within_its_window(config, r, redis_url):
    with WorkerProcess(redis_url, "--poll-interval", "0.2") as worker:
        wait_for(lambda: r.scard("processes") == 1, message="the worker to register")
        pushed = time.time()
        app_jobs.Stamp.perform_in(1, "later")
        app_jobs.Stamp.perform_in(3600, "much later")
        wait_for(lambda: r.llen("test:stamps") == 1, timeout=10, message="the scheduled job")
        tag, ran = r.lindex("test:stamps", 0).decode().split()
        assert tag == "later"
        assert pushed + 1.0 <= float(ran) <= pushed + 3.0
        assert r.zcard("schedule") == 1
        worker.terminate()
        assert worker.wait() == 0
