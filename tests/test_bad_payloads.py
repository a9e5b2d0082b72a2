"""Bad payloads pushed by hand into a queue and into each sorted set: each one ends in the dead
set (or the retry set, for an unknown class) with a readable reason, the worker goes on, and
the data API (what the dashboard shows) lists them all without an exception.

test_processing.py covers five malformed payloads in a queue; test_scheduler.py the
scheduler's rerouting of members that are not jobs. Here: every kind, in every place, at once,
including the big and the deeply nested, then the data API over the result.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time

import msgpack
import pytest

from kiqpy.api import DeadSet, Queue, RetrySet, ScheduledSet, Stats
from kiqpy.payload import decode, encode, new_jid, now_ms
from tests.conftest import wait_for
from tests.stamping import unstamp
from tests.workers import WorkerProcess, log_events

MB = 1024 * 1024


def job(serializer: str = "msgpack", **fields: object) -> bytes:
    """A FaultJob payload with ``fields`` changed (None removes a field)."""
    base: dict[str, object] = {"class": "FaultJob", "args": ["ok", 0, False],
                               "queue": "default", "jid": new_jid(), "retry": 5,
                               "created_at": now_ms()}
    base.update(fields)
    return encode({k: v for k, v in base.items() if v is not None}, serializer)


def raw_json(args: str, cls: str = "Gone::Job") -> bytes:
    """A JSON job written by hand, for what json.dumps would refuse to write."""
    return (f'{{"class":"{cls}","args":{args},"queue":"default","jid":"{new_jid()}",'
            f'"retry":5}}').encode()


def nested_msgpack(depth: int, cls: str = "Hold") -> bytes:
    """A msgpack job whose args are [1, [[[...0...]]]] ``depth`` levels deep."""
    pack = msgpack.packb
    return (b"\x84" + pack("class") + pack(cls) + pack("queue") + pack("default")
            + pack("jid") + pack(new_jid()) + pack("args") + b"\x92\x01"
            + b"\x91" * depth + b"\x00")


def catalog() -> dict[str, tuple[bytes, str, str]]:
    """name -> (payload, where it must end: "dead" or "retry", a phrase of the reason)."""
    return {
        "empty": (b"", "dead", "empty payload"),
        "random bytes": (b"\xc1" + os.urandom(64), "dead", "not a valid msgpack payload"),
        "truncated msgpack": (job()[:-9], "dead", "not a valid msgpack payload"),
        "JSON not a map": (b'["FaultJob", 1, 2]', "dead", "not a map"),
        "no class": (job("json", **{"class": None}), "dead", "no 'class'"),
        "no args": (job(args=None), "dead", "no 'args'"),
        "no jid": (job("json", jid=None), "dead", "no 'jid'"),
        "args not a list": (job("json", args="a, b"), "dead", "'args' is a str, not a list"),
        "unknown class": (job("json", **{"class": "Gone::Job"}), "retry", "Gone::Job"),
        "10 MB, args not a list": (job(args="x" * (10 * MB)), "dead", "'args' is a str"),
        "10,000 levels of JSON": (raw_json("[" * 10_000 + "]" * 10_000), "dead",
                                  "not a valid JSON payload"),
        "10,000 levels of msgpack": (nested_msgpack(10_000), "dead", "nested too deeply"),
        # Decodable, but the heartbeat's json.dumps of a running job hit the recursion limit
        # and stopped the worker.
        "1,000 levels of msgpack": (nested_msgpack(1_000), "dead", "nested deeper than 200"),
        # Decodable, but a failure could not be written back as JSON and stopped the worker.
        "JSON NaN": (raw_json("[NaN]"), "dead", "NaN is not a JSON number"),
        "lone surrogate": (raw_json('["\\ud800"]'), "dead", "lone surrogate"),
    }


IN_SETS = ("queue", "schedule", "retry")


@pytest.fixture
def pushed(r) -> dict[tuple[str, str], tuple[bytes, str, str]]:
    """Every catalog entry (a fresh copy for each place) in the queue `default` and due in
    `schedule` and `retry`, which a worker reads; also in `dead` and in a queue no worker
    reads, where only the data API sees them."""
    placed = {}
    due = time.time() - 1
    for where in IN_SETS:
        for name, (payload, end, reason) in catalog().items():
            if name.startswith("10 MB") and where == "retry":
                continue  # twice is enough for 10 MB
            placed[(where, name)] = (payload, end, reason)
            if where == "queue":
                r.lpush("queue:default", payload)
            else:
                r.zadd(where, {payload: due})
    for name, (payload, end, reason) in catalog().items():
        if not name.startswith("10 MB"):
            placed[("parked", name)] = (payload, end, reason)
            r.lpush("queue:parked", payload)
            r.zadd("dead", {payload: time.time()})
    r.sadd("queues", "default", "parked")
    return placed


def outcome(r) -> tuple[dict[bytes, str], dict[str, str]]:
    """(original bytes -> reason, for malformed-payload entries of the dead set (also without
    the enqueued_at a move from a sorted set adds);
    jid -> error message, for the retry set)."""
    dead = {}
    for member in r.zrange("dead", 0, -1):
        try:
            entry = decode(member)
        except Exception:
            continue  # one of the bad members put there by hand
        if "original_payload" in entry:
            original = base64.b64decode(entry["original_payload"])
            dead[original] = entry["error_message"]
            # A member the poller moved to its queue got an enqueued_at on the way
            with contextlib.suppress(AssertionError, ValueError, IndexError,
                                     msgpack.UnpackException):
                dead[unstamp(original)[0]] = entry["error_message"]
    retry = {}
    for member in r.zrange("retry", 0, -1):
        try:
            entry = decode(member)
        except Exception:
            continue
        retry[entry["jid"]] = f"{entry.get('error_class')}: {entry.get('error_message')}"
    return dead, retry


@pytest.mark.slow
def test_bad_payloads_everywhere_end_dead_or_retried_and_the_worker_goes_on(
        config, r, redis_url, pushed):
    with WorkerProcess(redis_url, "-c", "2", require="tests.fault_jobs") as worker:
        # Then each bad payload ends in the dead set with its reason, or in the retry set
        def settled():
            dead, retry = outcome(r)
            return all(p in dead for (where, _), (p, end, _) in pushed.items()
                       if end == "dead" and where in IN_SETS) and len(retry) == len(IN_SETS)

        wait_for(settled, timeout=30, message="every bad payload to be dealt with")
        wait_for(lambda: r.llen("queue:default") == 0 and not r.keys("*:inflight:*"),
                 message="the queue and the in-flight lists to empty")
        dead, retry = outcome(r)
        for (where, name), (payload, end, reason) in pushed.items():
            if end == "dead" and where in IN_SETS:
                assert reason in dead[payload], (where, name, dead[payload])
                if where != "queue":
                    assert r.zscore(where, payload) is None, (where, name)
        # (the unknown class was retried, never imported)
        assert all("UnknownJobError" in m and "Gone::Job" in m for m in retry.values())
        # and the worker still runs a good job pushed afterwards
        r.lpush("queue:default", job(args=["after", 0, False]))
        wait_for(lambda: r.hget("fault:ok", "after") == b"1", message="the good job")
        assert worker.process.poll() is None
        assert not [e for e in log_events(worker) if e["event"] == "thread crashed; stopping"]


def readable(record) -> dict[str, object]:
    """Everything a dashboard shows of a job record (reading it must never raise)."""
    return {"class": record.display_class, "args": record.display_args, "jid": record.jid,
            "queue": record.queue, "error": record.error, "malformed": record.malformed,
            "enqueued_at": record.enqueued_at, "created_at": record.created_at,
            "failed_at": record.failed_at, "latency": record.latency,
            "error_class": record.error_class, "error_message": record.error_message,
            "backtrace": record.error_backtrace, "retry_count": record.retry_count,
            "tags": record.tags, "repr": repr(record)}


def test_the_data_api_lists_bad_payloads_with_their_errors(config, r, pushed):
    # No worker: the bad payloads stay where they were put
    parked = list(Queue("parked"))
    assert len(parked) == len(catalog()) - 1
    assert [readable(job) for job in parked]
    by_value = {job.value: job for job in parked}
    for (where, name), (payload, end, reason) in pushed.items():
        if where != "parked":
            continue
        record = by_value[payload]
        if end == "dead":
            assert record.malformed and reason.split(",")[0] in (record.error or ""), name
        else:
            assert record.error is None and record.klass == "Gone::Job"
    for cls in (ScheduledSet, RetrySet, DeadSet):
        entries = list(cls())
        assert entries and [readable(e) for e in entries]
        assert [e.score for e in cls().page(1, 10).entries]
        assert list(cls().scan("Gone")) and cls().find_job("0" * 24) is None
    big = [job for job in Queue("default") if len(job.value) > MB]
    assert len(big) == 1 and big[0].malformed
    stats = Stats()
    assert stats.enqueued == 2 * len(catalog()) - 1
    assert stats.dead_size == len(catalog()) - 1
    assert json.dumps(stats.to_dict(), default=str)


@pytest.mark.parametrize("path", ["/", "/queues", "/queues/parked", "/queues/default",
                                  "/retries", "/scheduled", "/dead", "/dead?filter=Gone",
                                  "/keys/view?key=queue%3Aparked"])
def test_the_dashboard_shows_bad_payloads(config, r, pushed, path):
    pytest.importorskip("werkzeug")
    from tests.web_helpers import client_for

    response = client_for(config).get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[-2000:]
