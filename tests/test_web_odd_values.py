"""The dashboard with one odd value in Redis (issue 20, section 1): every page still renders,
shows the odd value as such and offers to delete it; ``/stats`` stays valid JSON; pages are
proportional to the work asked; a GET changes nothing; and the small security fixes (the CSRF
token format, ``Secure`` behind a trusted proxy, ``/health`` without Redis's address,
``--host ::ffff:127.0.0.1``)."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import subprocess
import sys
import time

import pytest
import redis

from kiqpy.config import Config
from kiqpy.keys import Keys
from kiqpy.payload import encode
from tests.conftest import wait_for
from tests.redis_server import free_port
from tests.web_helpers import WebClient, add, client_for, entry_ids, failed, job, push, text
from tests.workers import ROOT, http_get

PAGES = ["/", "/busy", "/queues", "/queues/default", "/queues/odd", "/retries", "/scheduled",
         "/dead",
         "/keys", "/keys/view?key=retry", "/keys/view?key=queue%3Aodd",
         "/keys/view?key=stat%3Aprocessed", "/keys/view?key=host%3A1%3Aabc"]


@pytest.fixture
def web(config: Config) -> WebClient:
    return client_for(config)


def _odd_queue(r: redis.Redis) -> str:
    r.sadd("queues", "odd")
    r.set("queue:odd", "a string, not a list")
    return "queue:odd"


def _odd_counter(r: redis.Redis) -> str:
    r.set("stat:processed", "abc")
    return "stat:processed"


def _odd_busy(r: redis.Redis) -> str:
    r.sadd("processes", "host:1:abc")
    r.hset("host:1:abc", mapping={"info": json.dumps({"hostname": "host", "pid": 1}),
                                  "busy": "zz", "beat": str(time.time()), "quiet": "false"})
    return "host:1:abc"


def _odd_daily(r: redis.Redis) -> str:
    today = _dt.datetime.now(_dt.timezone.utc).date()
    key = Keys().stat("failed", today)
    r.set(key, "lots")
    return key


def _odd_scores(r: redis.Redis) -> str:
    add(r, "retry", failed(args=["plus"]), math.inf)
    add(r, "dead", failed(args=["minus"]), -math.inf)
    add(r, "schedule", job(args=["minus"]), -math.inf)
    return "retry"


def _odd_enqueued(r: redis.Redis) -> str:
    push(r, job(args=["never"], enqueued_at=-math.inf, created_at=-math.inf))
    return "queue:default"


ODD = {"queue holding a string": _odd_queue, "stat:processed = abc": _odd_counter,
       "busy = zz": _odd_busy, "a daily stat that is no number": _odd_daily,
       "scores of +inf and -inf": _odd_scores, "enqueued_at = -inf": _odd_enqueued}


@pytest.mark.parametrize("odd", ODD)
@pytest.mark.parametrize("path", PAGES)
def test_one_odd_value_takes_no_page_down(web: WebClient, r: redis.Redis, odd: str,
                                          path: str) -> None:
    push(r, job(args=["normal"]))
    ODD[odd](r)

    response = web.get(path)

    assert response.status_code in (200, 404), text(response)[:3000]  # 404: no such key
    assert "Something went wrong" not in text(response)


@pytest.mark.parametrize("odd", ODD)
def test_stats_stay_valid_json(web: WebClient, r: redis.Redis, odd: str) -> None:
    ODD[odd](r)

    for path in ("/stats", "/stats/queues"):
        response = web.get(path)
        assert response.status_code == 200
        json.loads(response.get_data(as_text=True), parse_constant=_refuse)


def _refuse(name: str) -> None:
    raise AssertionError(f"/stats sent {name}, which is not JSON")


@pytest.mark.parametrize("odd", ["queue holding a string", "stat:processed = abc",
                                 "busy = zz", "a daily stat that is no number"])
def test_an_odd_value_is_shown_as_such_and_can_be_deleted(web: WebClient, r: redis.Redis,
                                                          odd: str) -> None:
    key = ODD[odd](r)

    page = text(web.get("/" if "daily" in odd else "/queues"))
    link = f"/keys/view?key={key.replace(':', '%3A')}"
    assert "odd-value" in page and link in page, page[-3000:]
    deleted = web.post(link, {"op": "delete"})

    assert deleted.status_code == 303
    assert r.exists(key) == 0
    assert "odd-value" not in text(web.get("/" if "daily" in odd else "/queues"))


def test_entries_scored_inf_are_listed_and_deletable(web: WebClient, r: redis.Redis) -> None:
    _odd_scores(r)

    (ident,) = entry_ids(text(web.get("/retries")), "retries")
    assert ident.startswith("inf-")
    assert web.get(f"/retries/{ident}").status_code == 200
    (dead,) = entry_ids(text(web.get("/dead")), "dead")
    assert dead.startswith("-inf-")

    assert web.post(f"/retries/{ident}", {"op": "delete"}).status_code == 303
    assert web.post("/dead", {"op": "delete", "ids": [dead]}).status_code == 303
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0


def test_a_job_enqueued_at_minus_inf_shows_no_time_and_no_infinite_latency(
        web: WebClient, r: redis.Redis) -> None:
    _odd_enqueued(r)

    stats = web.get("/stats").get_json()
    queues = text(web.get("/queues"))

    assert stats["kiqpy"]["default_latency"] == 0
    queue = text(web.get("/queues/default"))
    assert "never" in queue and "-inf (not a time)" in queue
    assert "inf" not in queues.lower().replace("info", "")


def test_a_malformed_member_of_a_queue_can_still_be_deleted(web: WebClient,
                                                            r: redis.Redis) -> None:
    push(r, encode(job(args=["ok"])))
    push(r, b"\xc1 not a job")

    page = text(web.get("/queues/default"))
    digests = re.findall(r'name="job" value="([0-9a-f]+)"', page)

    assert len(digests) == 2
    assert web.post("/queues/default", {"op": "delete", "job": digests[0]}).status_code == 303
    assert r.llen("queue:default") == 1


# -- 6. a GET changes nothing --------------------------------------------------------------------
GETS = ["/", "/stats", "/stats/queues", "/health", "/busy", "/queues", "/queues/default",
        "/retries", "/retries?filter=x", "/scheduled", "/dead", "/keys", "/keys/view?key=retry"]


def test_no_get_writes_to_redis_not_even_to_prune_dead_processes(web: WebClient,
                                                                 r: redis.Redis) -> None:
    # Given data everywhere and a dead process (in `processes`, its heartbeat hash expired)
    push(r, job())
    add(r, "retry", failed())
    r.sadd("processes", "host:2:dead")
    dirty = r.info("persistence")["rdb_changes_since_last_save"]

    for path in GETS:
        assert web.get(path).status_code == 200, path

    # Then Redis counted no change (its own count of writes), and the member is still there
    assert r.info("persistence")["rdb_changes_since_last_save"] == dirty
    assert r.sismember("processes", "host:2:dead")
    assert "host:2:dead" not in text(web.get("/busy"))


# -- 7. the small security fixes -----------------------------------------------------------------
@pytest.mark.parametrize("token", ["x" * 8, "a" * 42, "a" * 44, "a" * 42 + "!", "é" * 43])
def test_a_post_needs_a_token_of_the_issued_form(web: WebClient, r: redis.Redis,
                                                 token: str) -> None:
    push(r, job())
    web.client.set_cookie("kiqpy_csrf", token)

    response = web.post("/queues/default", {"op": "clear"}, token=token)

    assert response.status_code == 403
    assert r.llen("queue:default") == 1


@pytest.mark.parametrize(("trust", "proto", "secure"), [
    (False, "https", False), (True, "https", True), (True, "http", False),
    (True, "https, http", True), (True, None, False)])
def test_the_cookie_is_secure_behind_a_trusted_tls_proxy(config: Config, trust: bool,
                                                         proto: str | None,
                                                         secure: bool) -> None:
    web = client_for(config, trust_proxy=trust)
    headers = {"X-Forwarded-Proto": proto} if proto else {}

    cookie = web.get("/health", headers=headers).headers["Set-Cookie"]

    assert ("; Secure" in cookie) is secure


def test_health_without_redis_does_not_say_where_redis_is(closed_url: str) -> None:
    away = client_for(Config(redis_url=closed_url, socket_timeout=0.5))

    response = away.get("/health")

    assert response.status_code == 503
    body = response.get_data(as_text=True)
    port = closed_url.rsplit(":", 1)[1].split("/")[0]
    assert "127.0.0.1" not in body and port not in body
    assert response.get_json()["status"] == "unavailable"


@pytest.mark.slow
def test_kiqpy_web_on_an_ipv4_mapped_loopback_address(redis_url: str) -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url}
    server = subprocess.Popen([sys.executable, "-m", "kiqpy.cli", "web", "--host",
                               "::ffff:127.0.0.1", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        answered = wait_for(lambda: server.poll() is not None or
                            http_get(f"http://127.0.0.1:{port}/health")[0] == 200,
                            message="kiqpy web to answer or exit")
        assert answered and server.poll() is None
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0].decode()
    assert "warning" not in output and "Traceback" not in output, output
    assert f"http://127.0.0.1:{port}/" in output
