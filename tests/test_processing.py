"""Running jobs in a real worker process: args in both encodings, server middleware,
current_job(), queue order, and payloads that are not jobs."""

from __future__ import annotations

import base64
import json
import math
import os
import time

import pytest

import kiqpy
from kiqpy.payload import decode
from tests import app_jobs
from tests.conftest import wait_for
from tests.workers import WorkerProcess

ARGS = [
    "plain", "ünïcødé ✓ 日本", "", 0, -1, 2**63 - 1, -(2**63), 1.5, -0.25, True, False, None,
    [], [1, [2, [3]]], {}, {"nested": {"list": [1, "two", None], "empty": {}}},
]


def ran(r) -> list[str]:
    return [item.decode() for item in r.lrange("test:ran", 0, -1)]


def inflight(r) -> list[bytes]:
    return r.keys("*:inflight:*")


def test_args_arrive_intact_in_both_encodings(config, r, redis_url):
    # Given one job pushed as JSON, one as msgpack, and a hand-written Sidekiq payload
    json_client = kiqpy.Client(config.replace(serializer="json"))
    msgpack_client = kiqpy.Client(config.replace(serializer="msgpack"))
    json_client.push({"class": app_jobs.Record, "args": ["json", *ARGS]})
    msgpack_client.push({"class": app_jobs.Record, "args": ["msgpack", *ARGS]})
    stored = r.lrange("queue:default", 0, -1)
    assert stored[1][:1] == b"{" and stored[0][:1] != b"{"  # JSON, then msgpack
    sidekiq = (b'{"class":"Record","args":["sidekiq",1,"two",{"three":[3.0]}],'
               b'"queue":"default","retry":true,"jid":"b4a577edbccf1d805744efa9",'
               b'"created_at":1700000000.123,"enqueued_at":1700000000.456}')
    r.lpush("queue:default", sidekiq)
    # When a worker runs them
    with WorkerProcess(redis_url):
        wait_for(lambda: r.llen("test:ran") == 3, message="three jobs to run")
        wait_for(lambda: not inflight(r), message="the acks")
    # Then each perform got exactly the args that were pushed
    assert sorted(ran(r)) == sorted([repr(("json", *ARGS)), repr(("msgpack", *ARGS)),
                                     repr(("sidekiq", 1, "two", {"three": [3.0]}))])
    assert b"b4a577edbccf1d805744efa9" in r.lrange("test:jids", 0, -1)
    assert r.zcard("retry") == r.zcard("dead") == 0


def test_server_middleware_from_a_required_module_wraps_perform_in_order(config, r, redis_url):
    # tests/app_middleware.py adds Outer, Skip, Inner to the default config at import time.
    app_jobs.MiddlewareTrace.perform_async("a")
    app_jobs.MiddlewareTrace.set(queue="other").perform_async("skip-me")
    with WorkerProcess(redis_url, "-q", "default,other", "-c", "1",
                       require="tests.app_middleware"):
        wait_for(lambda: r.lrange("test:trace", 0, -1).count(b"outer:after:skip-me")
                 and b"outer:after:a" in r.lrange("test:trace", 0, -1),
                 message="both jobs to go through the chain")
        wait_for(lambda: not inflight(r), message="the acks")
    trace = [t.decode() for t in r.lrange("test:trace", 0, -1)]
    assert trace == [
        "outer:before:a:default:MiddlewareTrace", "inner:before:a", "perform:a",
        "inner:after:a", "outer:after:a",
        # A middleware that does not call next() skips the job (and later middleware)...
        "outer:before:skip-me:other:MiddlewareTrace", "skip:skip-me", "outer:after:skip-me",
    ]
    # ...and the skipped job counts as done: not retried, not left in-flight.
    assert r.zcard("retry") == r.zcard("dead") == 0
    assert r.llen("queue:other") == 0


def test_current_job_is_the_running_jobs_map(config, r, redis_url):
    jid = app_jobs.WhoAmI.set(queue="mail").perform_async(1, {"two": 2})
    with WorkerProcess(redis_url, "-q", "mail"):
        wait_for(lambda: r.llen("test:current") == 1, message="the job to run")
    seen = json.loads(r.lindex("test:current", 0))
    assert seen["jid"] == jid
    job = seen["job"]
    assert (job["jid"], job["class"], job["queue"]) == (jid, "WhoAmI", "mail")
    assert job["args"] == [1, {"two": 2}]
    assert kiqpy.current_job() is None  # outside a job


def test_strict_order_takes_every_job_of_the_first_queue_first(config, r, redis_url):
    # Given two full queues, listed without weights (strict order)
    for n in range(15):
        app_jobs.Record.set(queue="b").perform_async("b", n)
        app_jobs.Record.set(queue="a").perform_async("a", n)
    # When one thread works through them
    with WorkerProcess(redis_url, "-q", "a", "-q", "b", "-c", "1"):
        wait_for(lambda: r.llen("test:ran") == 30, message="all jobs to run")
    # Then all of `a`, oldest first, ran before any of `b`
    assert ran(r) == [repr(("a", n)) for n in range(15)] + [repr(("b", n)) for n in range(15)]


def binomial_bounds(n: int, p: float, alpha: float = 1e-6) -> tuple[int, int]:
    """The widest (lo, hi) with P(X < lo) + P(X > hi) < ``alpha`` for X ~ Binomial(n, p):
    bounds that a correct implementation falls outside of less than once in 1/alpha runs."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    lo, hi, below, above = 0, n, 0.0, 0.0
    while below + pmf[lo] < alpha / 2:
        below += pmf[lo]
        lo += 1
    while above + pmf[hi] < alpha / 2:
        above += pmf[hi]
        hi -= 1
    return lo, hi


def test_weighted_order_takes_jobs_roughly_in_proportion(config, r, redis_url):
    # Given two queues with 3:1 weights, both with more jobs than are counted
    total = 400
    app_jobs.Record.set(queue="a").perform_bulk([["a"]] * total)
    app_jobs.Record.set(queue="b").perform_bulk([["b"]] * total)
    # When one thread takes jobs, one per fetch (--prefetch 0: with prefetch, a fetch may
    # take up to three jobs from one queue, so the draws would be fewer than the jobs, and
    # how many fewer would depend on timing)
    with WorkerProcess(redis_url, "-q", "a:3,b:1", "-c", "1", "--prefetch", "0"):
        wait_for(lambda: r.llen("test:ran") >= total, timeout=30,
                 message=f"{total} jobs to run")
    # Then about 3/4 of the first jobs came from `a`: each fetch is an independent draw of a
    # 3:1 coin, so the count is Binomial(400, 0.75), and it falls outside these bounds
    # (256..340, a share of 0.64..0.85) less than once in a million runs. Strict order would
    # give 1.0, equal weights 0.5.
    first = ran(r)[:total]
    lo, hi = binomial_bounds(total, 0.75)
    assert lo <= first.count(repr(("a",))) <= hi, (first.count(repr(("a",))), lo, hi)
    # `b` is not starved until `a` runs dry (P(no `b` in 200 draws) = 0.75**200 < 1e-24)
    assert repr(("b",)) in first[:total // 2]


def malformed_payloads() -> dict[str, bytes]:
    return {
        "random bytes": b"\xc1" + os.urandom(40),  # 0xc1 is never valid msgpack
        "ascii garbage": b"not a job at all",
        "JSON not a map": b"[1, 2, 3]",
        "missing class": json.dumps({"args": [], "queue": "default",
                                     "jid": "0" * 24}).encode(),
        "args not a list": json.dumps({"class": "Record", "args": "x", "queue": "default",
                                       "jid": "1" * 24}).encode(),
    }


def test_malformed_payloads_go_to_the_dead_set_and_the_worker_goes_on(config, r, redis_url):
    # Given payloads that are not jobs, pushed before a good job (so they are fetched first)
    bad = malformed_payloads()
    r.sadd("queues", "default")
    for payload in bad.values():
        r.lpush("queue:default", payload)
    app_jobs.Record.perform_async("after the bad ones")
    with WorkerProcess(redis_url, "-c", "2") as worker:
        # Then the good job still runs, and every bad one is in the dead set with a reason
        wait_for(lambda: r.llen("test:ran") == 1, message="the good job")
        wait_for(lambda: r.zcard("dead") == len(bad), message="the dead set")
        wait_for(lambda: not inflight(r), message="the acks")
        assert worker.process.poll() is None
    dead = [decode(member) for member in r.zrange("dead", 0, -1)]
    reasons = sorted(job["error_message"] for job in dead)
    assert len(reasons) == len(bad) and all(reasons), reasons
    assert any("not a map" in reason for reason in reasons), reasons
    assert any("'class'" in reason for reason in reasons), reasons
    assert any("'args'" in reason for reason in reasons), reasons
    assert sum("not a valid" in reason for reason in reasons) == 2, reasons
    # the original bytes are kept
    originals = {job["original_payload"] for job in dead}
    assert originals == {base64.b64encode(p).decode() for p in bad.values()}
    assert r.zcard("retry") == 0 and r.llen("queue:default") == 0


def test_an_unknown_job_class_is_retried_not_imported(config, r, redis_url):
    # Given a job naming a class this worker does not have (a rolling deploy), and a module
    # path that would be importable
    payload = {"class": "os.system", "args": ["echo pwned"], "queue": "default",
               "jid": "c" * 24, "retry": True}
    r.sadd("queues", "default")
    r.lpush("queue:default", json.dumps(payload))
    app_jobs.Record.perform_async("after")
    with WorkerProcess(redis_url) as worker:
        wait_for(lambda: r.zcard("retry") == 1, message="the retry set")
        wait_for(lambda: r.llen("test:ran") == 1, message="the next job")
        wait_for(lambda: not inflight(r), message="the acks")
        assert worker.process.poll() is None
    (member, due), = r.zrange("retry", 0, -1, withscores=True)
    job = decode(member)
    assert job["jid"] == "c" * 24 and job["retry_count"] == 0
    assert time.time() + 5 < due < time.time() + 26  # first retry: 15 s + up to 10 s
    assert "UnknownJobError" in job["error_class"]
    assert "os.system" in job["error_message"]
    assert member[:1] == b"{"  # a JSON job stays JSON


@pytest.mark.parametrize("concurrency", ["1", "5"])
def test_nothing_is_left_in_flight_after_a_run(config, r, redis_url, concurrency):
    app_jobs.Count.perform_bulk([[n] for n in range(200)])
    with WorkerProcess(redis_url, "-c", concurrency) as worker:
        wait_for(lambda: r.scard("test:seen") == 200, message="all jobs to run")
        worker.terminate()
        assert worker.wait(15) == 0
    assert inflight(r) == []
    assert r.llen("queue:default") == 0
    assert int(r.get("test:count")) == 200  # each ran once
    assert not r.hgetall("kiqpy:inflight-owners")


def test_a_namespaced_worker_runs_only_its_namespaces_jobs(config, r, redis_url):
    kiqpy.Client(config.replace(namespace="app1")).push({"class": app_jobs.Record,
                                                         "args": ["app1"]})
    app_jobs.Record.perform_async("no namespace")
    with WorkerProcess(redis_url, "--namespace", "app1") as worker:
        wait_for(lambda: r.llen("test:ran") == 1, message="the namespaced job")
        wait_for(lambda: r.scard("app1:processes") == 1, message="the process registered")
        worker.terminate()
        assert worker.wait(15) == 0
    assert ran(r) == [repr(("app1",))]
    assert r.llen("queue:default") == 1  # the other namespace's job is untouched
    assert r.llen("app1:queue:default") == 0 and r.keys("*inflight*") == []


def test_a_perform_that_returns_a_coroutine_fails_loudly_and_is_retried(config, r, redis_url):
    # Given a job whose perform became `async def` after its class was defined
    jid = app_jobs.AsyncAfterTheFact.perform_async("x")
    # When a worker runs it
    with WorkerProcess(redis_url):
        wait_for(lambda: r.zcard("retry") == 1, message="the job to fail into the retry set")
        wait_for(lambda: not inflight(r), message="the ack")
    # Then it did not count as done: it failed with a message that says why, and will retry
    (member,) = r.zrange("retry", 0, -1)
    job = decode(member)
    assert job["jid"] == jid and job["error_class"] == "kiqpy.errors.KiqpyError"
    assert "returned coroutine, an awaitable nobody awaits: the job did not run" in (
        job["error_message"])
    assert r.llen("test:ran") == 0
