"""kiqpy.client.push, keys and connection: exactly what each kind of push leaves in Redis."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import pytest
import redis

import kiqpy
from kiqpy.client.push import Client
from kiqpy.config import Config
from kiqpy.connection import connect, safe_url
from kiqpy.errors import ArgumentError, ConfigurationError, OptionsError, RedisUnavailableError
from kiqpy.keys import Keys
from kiqpy.payload import decode
from tests.conftest import queued_jobs, scheduled_jobs

JID = re.compile(r"[0-9a-f]{24}")


class MailJob(kiqpy.Worker, queue="mail"):
    def perform(self, to, count):
        pass


class Careful(kiqpy.Worker, queue="careful", retry=3, retry_queue="slow-retries",
              retry_for=3600, backtrace=10, dead=False, tags=["billing", "eu"]):
    def perform(self, *args):
        pass


class Plain(kiqpy.Worker):
    def perform(self, *args):
        pass


def assert_recent_ms(value, before):
    assert type(value) is int
    assert before * 1000 - 1 <= value <= time.time() * 1000 + 1


# -- what lands in Redis ------------------------------------------------------------------------
def test_perform_async_writes_one_list_entry_and_the_queue_name(config, r):
    before = time.time()
    jid = MailJob.perform_async("bob@example.com", 2)
    assert set(r.keys("*")) == {b"queues", b"queue:mail"}
    assert (r.type("queues"), r.type("queue:mail")) == (b"set", b"list")
    assert r.smembers("queues") == {b"mail"}
    [job] = queued_jobs(r, "mail")
    assert set(job) == {"class", "args", "queue", "retry", "jid", "created_at", "enqueued_at"}
    assert job["class"] == "tests.test_client.MailJob"
    assert job["args"] == ["bob@example.com", 2]
    assert (job["queue"], job["retry"], job["jid"]) == ("mail", True, jid)
    assert JID.fullmatch(jid)
    assert_recent_ms(job["created_at"], before)
    assert_recent_ms(job["enqueued_at"], before)
    assert job["created_at"] <= job["enqueued_at"]


def test_class_options_are_copied_into_the_payload(config, r):
    Careful.perform_async(1)
    [job] = queued_jobs(r, "careful")
    assert {k: job[k] for k in ("retry", "retry_queue", "retry_for", "backtrace", "dead", "tags")} \
        == {"retry": 3, "retry_queue": "slow-retries", "retry_for": 3600.0, "backtrace": 10,
            "dead": False, "tags": ["billing", "eu"]}


def test_jobs_are_taken_oldest_first(config, r):
    jids = [Plain.perform_async(i) for i in range(3)]
    # LPUSH to produce, the worker takes from the right: the oldest is at index -1.
    assert decode(r.lindex("queue:default", -1))["jid"] == jids[0]
    assert [j["jid"] for j in queued_jobs(r)] == jids


def test_scheduled_push_writes_only_the_schedule_zset_scored_by_run_at(config, r):
    before = time.time()
    jid = MailJob.perform_in(120, "bob", 1)
    assert set(r.keys("*")) == {b"schedule"}
    assert r.type("schedule") == b"zset"
    [(job, score)] = scheduled_jobs(r)
    assert before + 120 <= score <= time.time() + 120
    assert "at" not in job  # as Sidekiq: the score is the run time
    assert (job["jid"], job["queue"], job["args"]) == (jid, "mail", ["bob", 1])
    assert_recent_ms(job["created_at"], before)
    assert "enqueued_at" not in job


def test_bulk_to_several_queues_writes_each_queue_and_records_every_name(config, r):
    # Given a client middleware that routes odd jobs to their own queue
    def route(job_class, job, queue, redis_client, next):
        if job["args"][0] % 2:
            job["queue"] = "odd"
        return next()

    config.client_middleware.add(route)
    # When a bulk of five is pushed
    jids = Plain.perform_bulk([[i] for i in range(5)])
    # Then each queue holds its jobs in order and both names are known
    assert r.smembers("queues") == {b"default", b"odd"}
    assert [j["args"] for j in queued_jobs(r, "default")] == [[0], [2], [4]]
    assert [j["args"] for j in queued_jobs(r, "odd")] == [[1], [3]]
    assert sorted(jids) == sorted(j["jid"] for q in ("default", "odd") for j in queued_jobs(r, q))


def test_a_bulk_batch_larger_than_luas_unpack_limit_still_lands(config, r):
    # Lua's unpack() stops at about 8,000 values; a batch of 10,000 must still be pushed whole.
    jids = Plain.perform_bulk([[i] for i in range(10_000)], batch_size=10_000)
    assert r.llen("queue:default") == 10_000
    assert [j["jid"] for j in queued_jobs(r)] == jids


# -- namespaces ---------------------------------------------------------------------------------
def test_namespaces_isolate_every_key(r, redis_url):
    # Given two clients on the same Redis with different namespaces
    one = Client(Config(redis_url=redis_url, namespace="one"))
    two = Client(Config(redis_url=redis_url, namespace="two"))
    try:
        # When each pushes now and later
        one.enqueue(MailJob, ["a", 1], MailJob.kiqpy_options_resolved)
        one.enqueue(MailJob, ["b", 2], {}, at=time.time() + 60)
        two.enqueue(Plain, ["c"], {})
    finally:
        one.close()
        two.close()
    # Then every key carries its namespace and neither wrote the other's
    assert set(r.keys("*")) == {b"one:queues", b"one:queue:mail", b"one:schedule",
                                b"two:queues", b"two:queue:default"}
    assert r.smembers("one:queues") == {b"mail"}
    assert [j["args"] for j in queued_jobs(r, "mail", namespace="one")] == [["a", 1]]
    assert [j["args"] for j in queued_jobs(r, "default", namespace="two")] == [["c"]]


def test_the_default_configuration_honours_its_namespace(config, r):
    kiqpy.configure(namespace="myapp")
    MailJob.perform_async("x", 1)
    assert set(r.keys("*")) == {b"myapp:queues", b"myapp:queue:mail"}


# -- serializers --------------------------------------------------------------------------------
def test_json_mode_stores_sidekiq_compatible_json_text(config, r):
    kiqpy.configure(serializer="json")
    jid = Careful.perform_async("ünï", {"n": 1.5})
    raw = r.lindex("queue:careful", 0)
    payload = json.loads(raw.decode("utf-8"))
    assert payload["class"] == "tests.test_client.Careful"
    assert payload["args"] == ["ünï", {"n": 1.5}]
    assert (payload["jid"], payload["queue"], payload["retry"]) == (jid, "careful", 3)
    assert type(payload["created_at"]) is int and type(payload["enqueued_at"]) is int
    assert raw.startswith(b'{"class":"tests.test_client.Careful","args":["\xc3\xbcn\xc3\xaf"')


def test_msgpack_mode_is_the_default_and_both_encodings_share_a_queue(config, r):
    Plain.perform_async("packed")
    kiqpy.configure(serializer="json")
    Plain.perform_async("text")
    raw = list(reversed(r.lrange("queue:default", 0, -1)))
    assert raw[0][0] in range(0x80, 0x90)  # a msgpack fixmap
    assert raw[1][:1] == b"{"
    assert [j["args"] for j in queued_jobs(r)] == [["packed"], ["text"]]


def test_json_mode_rejects_nan_before_any_io(config, r):
    kiqpy.configure(serializer="json")
    with pytest.raises(ArgumentError, match=r"^args\[0\]: nan is not valid JSON"):
        Plain.perform_async(float("nan"))
    assert r.keys("*") == []


# -- enqueue by name and Sidekiq-style items ----------------------------------------------------
def test_enqueue_by_name_for_a_job_defined_elsewhere(config, r):
    jid = kiqpy.enqueue("OtherApp::Job", 1, 2, queue="x")
    assert r.smembers("queues") == {b"x"}
    [job] = queued_jobs(r, "x")
    assert (job["class"], job["args"], job["jid"], job["retry"]) == ("OtherApp::Job", [1, 2],
                                                                    jid, True)


def test_enqueue_by_a_registered_name_uses_that_classs_options(config, r):
    kiqpy.enqueue("tests.test_client.Careful", "a", retry=1)
    [job] = queued_jobs(r, "careful")
    assert (job["retry"], job["tags"]) == (1, ["billing", "eu"])


def test_enqueue_with_delay_or_at_schedules(config, r):
    kiqpy.enqueue(Plain, 1, delay=30)
    kiqpy.enqueue("OtherApp::Job", 2, at=time.time() + 90)
    scores = [s for _, s in scheduled_jobs(r)]
    assert scores == pytest.approx([time.time() + 30, time.time() + 90], abs=2)


def test_enqueue_checks_options_and_the_job_class(config, r):
    with pytest.raises(OptionsError, match=r"^enqueue\('OtherApp::Job'\): option queue='' must"):
        kiqpy.enqueue("OtherApp::Job", queue="")
    with pytest.raises(OptionsError, match=r"^enqueue\('OtherApp::Job'\): option retry='yes'"):
        kiqpy.enqueue("OtherApp::Job", retry="yes")
    for bad in ("", 42, dict):
        with pytest.raises(ArgumentError, match=r"^a job class must be a kiqpy.Worker subclass "
                                                r"or a job name, got "):
            kiqpy.enqueue(bad, 1)
    assert r.keys("*") == []


def test_client_push_takes_a_sidekiq_style_item(config, r):
    client = kiqpy.default_client()
    jid = client.push({"class": "OtherApp::Job", "args": [1, "a"], "queue": "x", "retry": 3,
                       "tags": ["t"]})
    [job] = queued_jobs(r, "x")
    assert (job["class"], job["args"], job["jid"], job["retry"], job["tags"]) == (
        "OtherApp::Job", [1, "a"], jid, 3, ["t"])
    client.push({"class": MailJob, "args": ["b", 1]})
    assert queued_jobs(r, "mail")[0]["class"] == "tests.test_client.MailJob"


def test_client_push_with_at_schedules_and_past_at_enqueues_now(config, r):
    client = kiqpy.default_client()
    client.push({"class": "OtherApp::Job", "args": [], "at": time.time() + 60})
    client.push({"class": "OtherApp::Job", "args": [], "at": time.time() - 60})
    assert r.zcard("schedule") == 1
    assert r.llen("queue:default") == 1


def test_client_push_bulk_takes_a_list_of_arg_lists(config, r):
    jids = kiqpy.default_client().push_bulk(
        {"class": "OtherApp::Job", "args": [[1], [2], [3]], "queue": "bulk"}, batch_size=2)
    assert [j["jid"] for j in queued_jobs(r, "bulk")] == jids
    assert [j["args"] for j in queued_jobs(r, "bulk")] == [[1], [2], [3]]


BAD_ITEMS = [
    ({"args": [1]}, ArgumentError, r"^a job item needs a 'class' \(a job class or its name\)$"),
    ({"class": "X", "args": "abc"}, ArgumentError, r"^a job item's 'args' must be a list, got str"),
    ({"class": "X", "args": (1,)}, ArgumentError, r"^a job item's 'args' must be a list, got tup"),
    ({"class": "X", "queue": ""}, OptionsError, r"^push\('X'\): option queue='' must be"),
    ({"class": "X", "retry": "yes"}, OptionsError, r"^push\('X'\): option retry='yes'"),
    ({"class": "X", "jid": 5}, ArgumentError, r"^push\('X'\): jid=5 must be a non-empty str"),
    ({"class": "X", "name": "Y"}, OptionsError, r"^push\('X'\): option 'name' is fixed"),
    ({"class": int, "args": []}, ArgumentError, r"^a job class must be a kiqpy.Worker subclass"),
    ({"class": "X", "args": [set()]}, ArgumentError, r"^args\[0\]: set is not serializable"),
]


@pytest.mark.parametrize(("item", "error", "message"), BAD_ITEMS)
def test_client_push_rejects_a_bad_item_before_any_io(config, r, item, error, message):
    with pytest.raises(error, match=message):
        kiqpy.default_client().push(item)
    assert r.keys("*") == []


# -- connection errors --------------------------------------------------------------------------
def test_an_unreachable_redis_is_named_with_its_password_masked(closed_url):
    # Given a client for a Redis URL where nothing listens, with a password in it
    url = closed_url.replace("redis://", "redis://:s3cret@")
    client = Client(Config(redis_url=url))
    # When a job is pushed
    started = time.monotonic()
    with pytest.raises(RedisUnavailableError) as info:
        client.enqueue(Plain, [1], {})
    # Then the error says which Redis and why, hides the password and chains the cause, quickly
    message = str(info.value)
    assert message.startswith(f"cannot reach Redis at {url.replace('s3cret', '***')}: ")
    assert "s3cret" not in message
    assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
    assert isinstance(info.value, ConnectionError)
    assert time.monotonic() - started < 5
    client.close()


def test_an_unreachable_redis_fails_bulk_pushes_the_same_way(closed_url):
    client = Client(Config(redis_url=closed_url))
    expected = re.escape(f"cannot reach Redis at {closed_url}")
    with pytest.raises(RedisUnavailableError, match=expected):
        client.enqueue_bulk(Plain, [[1], [2]], {})
    client.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:pw@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://user:p@ss@host/0", "redis://user:***@host/0"),
        ("rediss://host:6380/1", "rediss://host:6380/1"),
        ("redis://host/0?password=pw&db=2", "redis://host/0?password=***&db=2"),
        ("unix:///tmp/redis.sock?password=pw", "unix:///tmp/redis.sock?password=***"),
    ],
)
def test_safe_url_masks_passwords_wherever_they_are(url, shown):
    assert safe_url(url) == shown


@pytest.mark.parametrize("url", ["http://localhost:6379/0", "localhost:6379",
                                 "redis://localhost:port/0"])
def test_a_bad_redis_url_is_a_configuration_error(url):
    with pytest.raises(ConfigurationError, match=r"Redis URL"):
        connect(url)


def test_a_bad_redis_url_is_refused_when_configured(config):
    with pytest.raises(ConfigurationError, match=r"^bad Redis URL 'http://:\*\*\*@x/0'"):
        kiqpy.configure(redis_url="http://:secret@x/0")


def test_enqueue_refuses_both_delay_and_at(config, r):
    with pytest.raises(ArgumentError, match=r"^enqueue\(\) takes delay or at, not both$"):
        kiqpy.enqueue("Other::Job", delay=5, at=time.time() + 60)
    assert r.keys("*") == []


# -- key names ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("namespace", "prefix"), [("", ""), ("app", "app:")])
def test_every_key_name_comes_from_keys_with_the_namespace(namespace, prefix):
    keys = Keys(namespace)
    assert (keys.queues, keys.schedule, keys.retry, keys.dead, keys.processes) == tuple(
        f"{prefix}{k}" for k in ("queues", "schedule", "retry", "dead", "processes"))
    assert keys.queue("mail") == f"{prefix}queue:mail"
    assert keys.queue_name(keys.queue("a:b")) == "a:b"
    identity = "host:42:abc"
    assert keys.process(identity) == f"{prefix}host:42:abc"
    assert keys.work(identity) == f"{prefix}host:42:abc:work"
    assert keys.signals(identity) == f"{prefix}host:42:abc-signals"
    assert keys.inflight(identity, "mail") == f"{prefix}host:42:abc:inflight:mail"
    assert keys.stat("processed") == f"{prefix}stat:processed"
    assert keys.stat("failed", dt.date(2026, 11, 23)) == f"{prefix}stat:failed:2026-11-23"
    assert keys.unprefixed(keys.queue("x")) == "queue:x"
    assert keys.unprefixed("other") == "other"
