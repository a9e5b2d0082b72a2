"""Moving a job from the schedule or retry set to its queue, as Sidekiq does: members hold
neither ``at`` (the score is the run time) nor ``enqueued_at``; every move into a queue stamps a
fresh ``enqueued_at`` in epoch ms. schedule.lua adds it to the bytes without re-encoding, so
job args arrive exactly as pushed (tests/stamping.py checks the bytes)."""

from __future__ import annotations

import json
import threading
import time

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kiqpy
from kiqpy.api import DeadSet, Queue, RetrySet, ScheduledSet
from kiqpy.chain import Chain
from kiqpy.client.execution import execute
from kiqpy.keys import Keys
from kiqpy.payload import decode, encode, new_jid, now_ms
from kiqpy.scripts import Scripts
from kiqpy.server.outage import Outage
from kiqpy.server.retry import Retrier
from kiqpy.server.scheduler import Scheduler
from tests.recording import RecordingLog
from tests.stamping import assert_moved, unstamp

DAY_MS = 86_400_000
EXACT_ARGS = [2**62, -(2**63), 2**64 - 1, 0.1, 1e308, -0.0, 5e-324, "héllo ✓ 日本 🎉",
              {"nested": {"map": [1, 2.5, {"deep": None, "ok": True}], "é": "ü"}}, []]


class Later(kiqpy.Worker, queue="mail"):
    def perform(self, *args):
        pass


class Fails(kiqpy.Worker, retry=3):
    def perform(self):
        raise ValueError("no")


def poller(config, r):
    log = RecordingLog()
    return Scheduler(config, r, Keys(), Outage(config.redis_url, log), log, threading.Event())


def move_all(config, r):
    """Every scheduled and retry member, due or not, to its queue now."""
    return poller(config, r).enqueue_due(now=time.time() + 10 * 365 * 86400)


def same(a, b):
    """Equality that tells 1 from 1.0 and 0.0 from -0.0 (what a precision loss would blur)."""
    return type(a) is type(b) and (repr(a) == repr(b) if isinstance(a, float) else
                                   (len(a) == len(b) and all(map(same, a, b)))
                                   if isinstance(a, list) else
                                   (a.keys() == b.keys() and all(same(a[k], b[k]) for k in a))
                                   if isinstance(a, dict) else a == b)


# -- what the sets hold -------------------------------------------------------------------------
def test_a_scheduled_member_holds_neither_at_nor_enqueued_at(config, r):
    Later.set(tenant="acme").perform_in(3600, "x")
    [member] = r.zrange("schedule", 0, -1)
    job = decode(member)
    assert "at" not in job and "enqueued_at" not in job
    assert job["tenant"] == "acme"


def test_a_retry_member_drops_the_enqueued_at_it_ran_with(config, r):
    log = RecordingLog()
    retrier = Retrier(config, r, Keys(), Outage(config.redis_url, log), log, threading.Event())
    job = {"class": Fails.kiqpy_job_name, "args": [], "queue": "default", "jid": new_jid(),
           "retry": 3, "created_at": now_ms() - 3 * DAY_MS, "enqueued_at": now_ms() - 3 * DAY_MS,
           "at": time.time() - 3 * 86400}
    payload = encode(job)
    try:
        execute(Fails, decode(payload), Chain())
    except ValueError as exc:
        assert retrier.failed("default", decode(payload), exc, Fails, payload) == "retry"
    [member] = r.zrange("retry", 0, -1)
    stored = decode(member)
    assert "enqueued_at" not in stored and "at" not in stored
    assert stored["retry_count"] == 0


# -- moving to the queue stamps a fresh enqueued_at ---------------------------------------------
@pytest.mark.parametrize("serializer", ["msgpack", "json"])
def test_a_due_scheduled_job_is_queued_with_a_fresh_enqueued_at(config, r, serializer):
    kiqpy.configure(config.replace(serializer=serializer))
    Later.perform_in(3600, "x")
    [member] = r.zrange("schedule", 0, -1)
    before = time.time()

    assert move_all(config, r) == 1

    [queued] = r.lrange("queue:mail", 0, -1)
    assert_moved(queued, member, since=before)
    job = decode(queued)
    assert type(job["enqueued_at"]) is int and "at" not in job
    assert 0 <= Queue("mail").latency < 5


def test_a_retried_job_no_longer_shows_the_latency_of_its_first_run(config, r):
    # Given a job that was queued three days ago, failed, and waits in the retry set
    log = RecordingLog()
    retrier = Retrier(config, r, Keys(), Outage(config.redis_url, log), log, threading.Event())
    job = {"class": Fails.kiqpy_job_name, "args": [], "queue": "default", "jid": new_jid(),
           "retry": 3, "created_at": now_ms() - 3 * DAY_MS, "enqueued_at": now_ms() - 3 * DAY_MS}
    payload = encode(job)
    retrier.failed("default", decode(payload), ValueError("no"), Fails, payload)

    # When the poller queues the retry
    assert move_all(config, r) == 1

    # Then its latency counts from now, and a middleware reading enqueued_at finds it
    assert 0 <= Queue("default").latency < 5
    [queued] = r.lrange("queue:default", 0, -1)
    assert abs(decode(queued)["enqueued_at"] - now_ms()) < 5000


@pytest.mark.parametrize("serializer", ["msgpack", "json"])
def test_a_member_that_already_has_an_enqueued_at_gets_a_fresh_one(config, r, serializer):
    # Written by Sidekiq (its retry members keep the old enqueued_at) or an earlier kiqpy: the
    # poller hands it to Python, which re-encodes exactly with a fresh enqueued_at.
    old = encode({"class": "Record", "args": [2**62], "queue": "q", "jid": new_jid(),
                  "enqueued_at": 1_700_000_000_000}, serializer)
    r.zadd("retry", {old: 1.0})
    assert move_all(config, r) == 1
    [queued] = r.lrange("queue:q", 0, -1)
    job = decode(queued)
    assert job["args"] == [2**62] and abs(job["enqueued_at"] - now_ms()) < 5000


@pytest.mark.parametrize("source", ["schedule", "retry", "dead"])
def test_the_data_api_queues_with_a_fresh_enqueued_at_and_exact_args(config, r, source):
    member = encode({"class": "Record", "args": EXACT_ARGS, "queue": "q", "jid": new_jid(),
                     "retry_count": 2, "enqueued_at": now_ms() - DAY_MS}, "json")
    r.zadd(source, {member: time.time() + 60})
    jobset = {"schedule": ScheduledSet, "retry": RetrySet, "dead": DeadSet}[source]()

    assert next(iter(jobset)).retry() is True

    [queued] = r.lrange("queue:q", 0, -1)
    job = decode(queued)
    assert same(job["args"], EXACT_ARGS)
    assert abs(job["enqueued_at"] - now_ms()) < 5000
    assert job["retry_count"] == (2 if source == "schedule" else 1)


# -- exactness: the bytes of every other field are kept -----------------------------------------
@pytest.mark.parametrize("serializer", ["msgpack", "json"])
def test_big_ints_floats_and_text_survive_the_move_byte_for_byte(config, r, serializer):
    kiqpy.configure(config.replace(serializer=serializer))
    Later.perform_in(3600, *EXACT_ARGS)
    [member] = r.zrange("schedule", 0, -1)

    move_all(config, r)

    [queued] = r.lrange("queue:mail", 0, -1)
    assert_moved(queued, member)
    assert same(decode(queued)["args"], EXACT_ARGS)


@pytest.mark.parametrize("fields", [0, 10, 11, 12, 65_528, 65_529, 65_530])
def test_the_msgpack_map_header_grows_across_its_size_classes(config, r, fields):
    # A job of 6 fields plus `fields` more: 15 -> 16 entries moves from fixmap to map16,
    # 65,535 -> 65,536 from map16 to map32.
    job = {"class": "Record", "args": [], "queue": "q", "jid": new_jid(), "retry": True,
           "created_at": now_ms(), **{f"f{n}": n for n in range(fields)}}
    member = encode(job)
    r.zadd("schedule", {member: 1.0})
    move_all(config, r)
    [queued] = r.lrange("queue:q", 0, -1)
    assert_moved(queued, member)
    assert len(decode(queued)) == len(job) + 1


@pytest.mark.parametrize("text", [
    '{"class":"Record","args":[1],"queue":"q","jid":"%s"}',
    ' {"class": "Record", "args": [1], "queue": "q", "jid": "%s" } \n',
    '\n{\n  "class": "Record",\n  "args": [1],\n  "queue": "q",\n  "jid": "%s"\n}\t',
])
def test_json_members_keep_their_layout(config, r, text):
    member = (text % new_jid()).encode()
    r.zadd("schedule", {member: 1.0})
    move_all(config, r)
    [queued] = r.lrange("queue:q", 0, -1)
    assert_moved(queued, member)
    assert json.loads(queued)["args"] == [1]


# Values both encodings carry exactly (JSON: no NaN or infinity).
scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
native = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)
layouts = st.sampled_from([None, (",", ":"), (", ", ": "), "indent"])
padding = st.sampled_from(["", " ", "\n", " \t\r\n"])


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=st.lists(native, max_size=5),
       extra=st.dictionaries(st.text(min_size=1, max_size=6).map(lambda k: "x" + k), native,
                             max_size=14),
       serializer=st.sampled_from(["msgpack", "json"]), layout=layouts, lead=padding,
       trail=padding)
def test_the_lua_stamp_keeps_every_other_byte(config, r, args, extra, serializer, layout,
                                              lead, trail):
    r.flushdb()
    job = {"class": "Record", "args": args, "queue": "q", "jid": new_jid(), **extra}
    if serializer == "msgpack":
        member = msgpack.packb(job, use_bin_type=True)
    elif layout == "indent":
        member = (lead + json.dumps(job, indent=2, ensure_ascii=False) + trail).encode()
    else:
        member = (lead + json.dumps(job, separators=layout, ensure_ascii=False)
                  + trail).encode()
    r.zadd("schedule", {member: 1.0})

    # schedule.lua itself moves it (nothing left for Python's reroute)
    assert Scripts(r).schedule(keys=["schedule", "queues"],
                               args=[repr(time.time()), "queue:", 10, now_ms(),
                                     str(now_ms())]) == [1, 1, []]

    [queued] = r.lrange("queue:q", 0, -1)
    assert_moved(queued, member)
    moved = decode(queued)
    assert same(moved, {**job, "enqueued_at": unstamp(queued)[1]})
