"""kiqpy.api: Stats, History, Queue and JobRecord against a real Redis.

The sets are in test_api_sets.py, processes and running jobs in test_api_processes.py."""

from __future__ import annotations

import datetime as _dt
import json
import time

import pytest

import kiqpy
from kiqpy.api import History, JobRecord, Queue, Stats
from kiqpy.api.base import Page
from kiqpy.config import Config
from kiqpy.errors import KiqpyError, RedisUnavailableError
from kiqpy.failures import compress_backtrace
from kiqpy.payload import encode, new_jid, now_ms


def job(queue="default", cls="Record", args=None, serializer="msgpack", **extra):
    """A stored payload, as a client would write it."""
    return encode({"class": cls, "args": [queue] if args is None else args, "queue": queue,
                   "jid": new_jid(), "retry": True, "created_at": now_ms(),
                   "enqueued_at": now_ms(), **extra}, serializer)


def fill(r, count, queue="default", key=None):
    """Push ``count`` jobs the way clients do (LPUSH); returns their payloads oldest first."""
    payloads = [job(queue, args=[i]) for i in range(count)]
    for payload in payloads:
        r.lpush(key or f"queue:{queue}", payload)
    r.sadd("queues", queue)
    return payloads


def live_process(r, identity, busy=0, prefix=""):
    r.sadd(f"{prefix}processes", identity)
    r.hset(f"{prefix}{identity}", mapping={"info": json.dumps({"concurrency": 5}),
                                          "busy": busy, "beat": time.time(), "quiet": "false"})


# -- Stats ---------------------------------------------------------------------------------------
def test_stats_reports_counters_sizes_live_processes_and_queues_biggest_first(config, r):
    fill(r, 3, "default")
    fill(r, 1, "mail")
    fill(r, 5, "bulk")
    r.zadd("schedule", {job(): time.time() + 60, job(): time.time() + 120})
    r.zadd("retry", {job(): time.time() + 60})
    r.zadd("dead", {job(): time.time()})
    r.set("stat:processed", 10)
    r.set("stat:failed", 3)
    live_process(r, "host:1:a", busy=2)
    live_process(r, "host:2:b", busy=1)
    r.sadd("processes", "host:3:gone")  # its heartbeat hash has expired

    stats = Stats()

    assert (stats.processed, stats.failed) == (10, 3)
    assert stats.enqueued == 9
    assert (stats.scheduled_size, stats.retry_size, stats.dead_size) == (2, 1, 1)
    assert (stats.processes_size, stats.workers_size) == (2, 3)
    assert list(stats.queues.items()) == [("bulk", 5), ("default", 3), ("mail", 1)]
    assert stats.to_dict()["queues"] == {"bulk": 5, "default": 3, "mail": 1}


def test_stats_of_an_empty_redis_are_zero(config, r):
    stats = Stats()
    assert stats.to_dict() == {
        "processed": 0, "failed": 0, "enqueued": 0, "scheduled_size": 0, "retry_size": 0,
        "dead_size": 0, "processes_size": 0, "workers_size": 0, "default_queue_latency": 0.0,
        "queues": {}}


@pytest.mark.parametrize("field, value", [
    ("enqueued_at", lambda t: int(t * 1000)),          # Sidekiq 8 / kiqpy: epoch ms
    ("enqueued_at", lambda t: t),                      # Sidekiq 7: float seconds
    ("at", lambda t: t),                               # moved from the schedule, no enqueued_at
])
def test_default_queue_latency_is_the_age_of_its_oldest_job(config, r, field, value):
    old = {"class": "Record", "args": [], "queue": "default", "jid": new_jid(),
           field: value(time.time() - 30)}
    r.lpush("queue:default", json.dumps(old))          # the oldest, at the right end
    r.lpush("queue:default", job())

    latency = Stats().default_queue_latency

    assert 29 < latency < 40
    assert 29 < Queue("default").latency < 40


def test_stats_reset_zeroes_the_counters_but_keeps_the_daily_history(config, r):
    today = _dt.datetime.now(_dt.timezone.utc).date()
    r.mset({"stat:processed": 7, "stat:failed": 2, f"stat:processed:{today}": 7})

    stats = Stats()
    stats.reset("failed")
    assert (stats.processed, stats.failed) == (7, 0)
    stats.reset()
    assert (Stats().processed, Stats().failed) == (0, 0)
    assert History(1).processed == {today: 7}
    with pytest.raises(ValueError, match="unknown counter 'busy'"):
        stats.reset("busy")


# -- History -------------------------------------------------------------------------------------
def test_history_lists_each_day_newest_first_with_zero_for_missing_days(config, r):
    start = _dt.date(2026, 11, 23)
    r.mset({"stat:processed:2026-11-23": 120, "stat:failed:2026-11-23": 4,
            "stat:processed:2026-11-21": 80, "stat:processed:2026-11-19": 1})

    history = History(3, start_date=start)

    assert list(history.processed.items()) == [
        (_dt.date(2026, 11, 23), 120), (_dt.date(2026, 11, 22), 0), (_dt.date(2026, 11, 21), 80)]
    assert list(history.failed.values()) == [4, 0, 0]
    assert history.to_dict()["processed"] == {"2026-11-23": 120, "2026-11-22": 0,
                                             "2026-11-21": 80}


@pytest.mark.parametrize("days", [0, -1, 10_000, "7"])
def test_history_refuses_a_bad_number_of_days(config, days):
    with pytest.raises(ValueError, match="days must be"):
        History(days)


# -- Queue ---------------------------------------------------------------------------------------
def test_queue_all_lists_known_queues_by_name_with_their_sizes(config, r):
    fill(r, 2, "mail")
    fill(r, 1, "critical")
    r.sadd("queues", "empty")

    queues = Queue.all()

    assert [(q.name, q.size, len(q)) for q in queues] == [
        ("critical", 1, 1), ("empty", 0, 0), ("mail", 2, 2)]
    assert Queue("empty").latency == 0.0


def test_a_queue_iterates_oldest_first_in_chunks_or_newest_first(config, r):
    payloads = fill(r, 23)
    queue = Queue("default")

    assert [rec.value for rec in queue.each(chunk=5)] == payloads
    assert [rec.value for rec in queue] == payloads
    assert [rec.value for rec in queue.each(newest_first=True, chunk=4)] == payloads[::-1]


def test_iteration_survives_a_worker_taking_jobs_meanwhile_without_repeats_or_skips(
        config, r):
    # Given a queue of 40 jobs, read 5 at a time, oldest first
    payloads = fill(r, 40)
    seen = []
    # When a worker takes the oldest job after every second job we read (positions shift)
    for index, record in enumerate(Queue("default").each(chunk=5)):
        seen.append(record.value)
        if index % 2:
            r.rpop("queue:default")
    # Then every job was read exactly once, in queue order
    assert seen == payloads


def test_iteration_survives_a_queue_drained_faster_than_it_is_read(config, r):
    payloads = fill(r, 30)
    seen = []
    for record in Queue("default").each(chunk=4):
        seen.append(record.value)
        r.rpop("queue:default", 3)
    # Jobs taken before the reader got to them are skipped; none is read twice or out of order.
    positions = [payloads.index(value) for value in seen]
    assert positions == sorted(set(positions)) and 0 < len(seen) < 30


def test_newest_first_iteration_survives_pushes_meanwhile(config, r):
    payloads = fill(r, 20)
    seen = []
    for record in Queue("default").each(newest_first=True, chunk=3):
        seen.append(record.value)
        r.lpush("queue:default", job())  # a client pushes a new job on the left
    assert seen == payloads[::-1]


def test_queue_pages_oldest_first_with_the_total(config, r):
    payloads = fill(r, 30)
    queue = Queue("default")

    first, second, third = queue.page(1, 25), queue.page(2, 25), queue.page(3, 25)

    assert isinstance(first, Page)
    assert [rec.value for rec in first] == payloads[:25]
    assert [rec.value for rec in second] == payloads[25:]
    assert third.entries == []
    assert (first.total, first.pages, first.has_next, second.has_next) == (30, 2, True, False)
    assert [rec.value for rec in queue.page(1, 10, newest_first=True)] == payloads[::-1][:10]


@pytest.mark.parametrize("number, size", [(0, 25), (-1, 25), (1, 0), ("2", 25)])
def test_a_bad_page_number_or_size_is_a_clear_error(config, number, size):
    with pytest.raises(ValueError, match="page"):
        Queue("default").page(number, size)


def test_find_job_by_jid(config, r):
    jid = kiqpy.enqueue("Record", "needle", queue="mail")
    fill(r, 10, "mail")

    found = Queue("mail").find_job(jid)

    assert found is not None and found.jid == jid and found.args == ["needle"]
    assert Queue("mail").find_job(new_jid()) is None


def test_deleting_a_job_record_removes_just_that_job(config, r):
    payloads = fill(r, 3)
    middle = Queue("default").page(1, 3).entries[1]

    assert middle.delete() is True
    assert middle.delete() is False
    assert r.lrange("queue:default", 0, -1) == [payloads[2], payloads[0]]


def test_clear_deletes_the_jobs_and_forgets_the_queue(config, r):
    fill(r, 4, "mail")
    fill(r, 1, "default")

    assert Queue("mail").clear() == 4
    assert not r.exists("queue:mail")
    assert r.smembers("queues") == {b"default"}


def test_queue_name_must_be_a_non_empty_str(config):
    with pytest.raises(ValueError, match="queue name"):
        Queue("")


# -- JobRecord -----------------------------------------------------------------------------------
def test_job_record_exposes_the_fields_of_the_job(config, r):
    try:
        raise ValueError("boom")
    except ValueError as exc:
        backtrace = compress_backtrace(exc, True)
    created = now_ms() - 5000
    payload = encode({"class": "Mailer", "args": [1, "two", {"x": 3}], "queue": "mail",
                      "jid": "a" * 24, "created_at": created, "enqueued_at": created + 1000,
                      "failed_at": created + 2000, "retry_count": 2, "error_class": "ValueError",
                      "error_message": "boom", "error_backtrace": backtrace,
                      "tags": ["alpha", "beta"], "custom": "kept"})

    record = JobRecord(payload)

    assert (record.klass, record.display_class, record.jid, record.queue) == (
        "Mailer", "Mailer", "a" * 24, "mail")
    assert record.args == record.display_args == [1, "two", {"x": 3}]
    assert record.created_at == _dt.datetime.fromtimestamp(created / 1000, _dt.timezone.utc)
    assert record.enqueued_at.timestamp() == pytest.approx(created / 1000 + 1)
    assert record.failed_at.timestamp() == pytest.approx(created / 1000 + 2)
    assert record.retried_at is None
    assert (record.retry_count, record.error_class, record.error_message) == (2, "ValueError",
                                                                              "boom")
    assert any("raise ValueError" in line for line in record.error_backtrace)
    assert record.tags == ["alpha", "beta"]
    assert record.get("custom") == "kept" and record.get("missing", 0) == 0
    assert record.item["class"] == "Mailer" and record.value == payload
    assert record.error is None and not record.malformed
    assert 3.5 < record.latency < 10


def test_a_wrapper_job_displays_the_wrapped_class_and_its_arguments(config):
    payload = json.dumps({"class": "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
                          "wrapped": "SignupMailer", "queue": "mail", "jid": new_jid(),
                          "args": [{"job_class": "SignupMailer", "arguments": ["bob", 5]}]})
    record = JobRecord(payload.encode())
    assert (record.display_class, record.display_args) == ("SignupMailer", ["bob", 5])


def test_json_payloads_from_sidekiq_read_like_msgpack_ones(config, r):
    r.lpush("queue:default", job(serializer="json", args=["json"]), job(args=["msgpack"]))
    r.sadd("queues", "default")
    assert [rec.args for rec in Queue("default")] == [["json"], ["msgpack"]]


@pytest.mark.parametrize("garbage", [b"", b"\xc1\xff", b"[1, 2]", b"{\"class\": 1}", b"nope"])
def test_a_malformed_payload_in_a_queue_is_listed_with_its_error_and_can_be_deleted(
        config, r, garbage):
    r.lpush("queue:default", job(args=["ok"]))
    r.lpush("queue:default", garbage)
    r.sadd("queues", "default")

    records = list(Queue("default"))
    bad = records[1]

    assert records[0].error is None
    assert bad.error and bad.malformed and bad.item == {}
    assert (bad.display_class, bad.args, bad.jid, bad.queue) == ("(malformed payload)", [],
                                                                 None, "default")
    assert "malformed" in repr(bad)
    assert bad.delete() is True
    assert Queue("default").size == 1


def test_the_latency_of_a_queue_whose_oldest_job_is_malformed_is_zero(config, r):
    r.lpush("queue:default", b"\xc1")
    assert Queue("default").latency == 0.0 and Stats().default_queue_latency == 0.0


def test_a_record_not_stored_anywhere_cannot_be_deleted(config):
    with pytest.raises(KiqpyError, match="not stored"):
        JobRecord(job()).delete()


# -- configuration -------------------------------------------------------------------------------
def test_a_namespaced_configuration_sees_only_its_own_keys(config, r, redis_url):
    ns = Config(redis_url=redis_url, namespace="app")
    client = kiqpy.Client(ns)
    jid = client.enqueue("Record", ["ns"], {"queue": "mail"})
    kiqpy.enqueue("Record", "plain")
    r.set("app:stat:processed", 5)

    stats = Stats(ns)

    assert (stats.enqueued, stats.processed, stats.queues) == (1, 5, {"mail": 1})
    assert Stats().queues == {"default": 1}
    assert [q.name for q in Queue.all(ns)] == ["mail"]
    assert Queue("mail", ns).find_job(jid).jid == jid
    assert Queue("mail", ns).clear() == 1
    assert not r.exists("app:queue:mail") and r.exists("queue:default")
    client.close()


def test_an_explicit_redis_client_is_used(config, r, redis_url):
    other = Config(redis_url="redis://127.0.0.1:1/0")  # never connected: the client wins
    r.lpush("queue:default", job())
    assert Queue("default", other, redis_client=r).size == 1


def test_an_unreachable_redis_is_a_clear_error(config, closed_url):
    with pytest.raises(RedisUnavailableError, match="cannot reach Redis"):
        Stats(Config(redis_url=closed_url))
    with pytest.raises(RedisUnavailableError):
        Queue("default", Config(redis_url=closed_url)).size  # noqa: B018


# -- odd values and bounded reads ----------------------------------------------------------------
def test_stats_and_history_count_odd_values_as_0_and_list_them(config, r):
    r.set("stat:processed", "abc")
    r.sadd("queues", "odd", "fine")
    r.set("queue:odd", "not a list")
    r.rpush("queue:fine", job(queue="fine"))
    today = _dt.datetime.now(_dt.timezone.utc).date()
    r.set(f"stat:failed:{today.isoformat()}", "lots")

    stats, history = Stats(), History(1)

    assert (stats.processed, stats.enqueued, stats.queues) == (0, 1, {"fine": 1, "odd": 0})
    assert [p.key for p in stats.problems] == ["stat:processed", "queue:odd"]
    assert "'abc'" in stats.problems[0].message
    assert history.failed == {today: 0}
    assert [p.key for p in history.problems] == [f"stat:failed:{today.isoformat()}"]


def test_stats_with_a_queue_limit_sizes_that_many_queues(config, r):
    r.sadd("queues", *[f"q{n}" for n in range(30)])

    stats = Stats(queue_limit=10)

    assert len(stats.queues) == 10 and not stats.queues_complete
    assert Stats().queues_complete and len(Stats().queues) == 30


def test_queue_listing_pages_sorted_names_and_reports_odd_keys(config, r):
    r.sadd("queues", *[f"q{n:02d}" for n in range(12)])
    r.set("queue:q03", "not a list")

    listing = Queue.listing(2, 5)

    assert [row.queue.name for row in listing.rows] == ["q05", "q06", "q07", "q08", "q09"]
    assert (listing.total, listing.pages, listing.sorted) == (12, 3, True)
    (odd,) = [row for row in Queue.listing(1, 5).rows if row.problem]
    assert odd.queue.name == "q03" and odd.problem == "queue:q03 is not a list"


def test_a_zip_bomb_backtrace_is_cut_at_the_limit(config):
    import base64
    import zlib

    from kiqpy.api.jobs import BACKTRACE_LIMIT

    lines = [f"line {n} " + "x" * 1000 for n in range(3000)]  # 3 MB inflated
    packed = base64.b64encode(zlib.compress(json.dumps(lines).encode())).decode()
    record = JobRecord(encode({"class": "X", "args": [], "queue": "q", "jid": new_jid(),
                               "error_backtrace": packed}))

    assert record.backtrace_truncated
    assert 0 < len(record.error_backtrace or []) < len(lines)
    assert sum(len(line) for line in record.error_backtrace or []) <= BACKTRACE_LIMIT
    assert (record.error_backtrace or [""])[0].startswith("line 0 ")
