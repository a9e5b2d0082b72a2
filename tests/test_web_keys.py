"""The dashboard's Redis key browser (kiqpy/web/views_keys.py) and a namespaced dashboard:
only the namespace's keys, every key type, pagination by SCAN cursor and by page, job
payloads decoded, key names that are not UTF-8."""

from __future__ import annotations

import re
import time
from urllib.parse import quote_from_bytes

import pytest
import redis

from kiqpy.config import Config
from kiqpy.keys import Keys
from tests.web_helpers import WebClient, add, client_for, failed, job, push, text


@pytest.fixture
def ns_web(r: redis.Redis, redis_url: str) -> WebClient:
    return client_for(Config(redis_url=redis_url, namespace="shop"))


def view(web: WebClient, key: bytes, extra: str = "") -> str:
    response = web.get(f"/keys/view?key={quote_from_bytes(key, safe='')}{extra}")
    assert response.status_code == 200, text(response)[:1000]
    return text(response)


def test_the_listing_shows_only_the_namespace_with_type_size_and_ttl(ns_web: WebClient,
                                                                     r: redis.Redis) -> None:
    keys = Keys("shop")
    push(r, job(args=["in shop"]), keys=keys)
    r.set("shop:token", "abc", ex=600)
    r.set("other:thing", "not ours")

    page = text(ns_web.get("/keys"))

    assert "shop:queue:default" in page and "shop:token" in page and "shop:queues" in page
    assert "other:thing" not in page
    row = re.search(r"shop:token</code></a></td>\s*<td[^>]*>string</td>\s*"
                    r"<td[^>]*>3</td>\s*<td[^>]*>(\d+)m", page)
    assert row and int(row.group(1)) in (9, 10)
    response = ns_web.get("/keys/view?key=other%3Athing")
    assert response.status_code == 404 and "not a key of namespace" in text(response)


def test_a_namespaced_dashboard_shows_its_own_queues_and_sets(ns_web: WebClient,
                                                              r: redis.Redis) -> None:
    keys = Keys("shop")
    push(r, job(args=["ns-job"]), "mail", keys=keys)
    add(r, keys.retry, failed(args=["ns-retry"]))
    push(r, job(args=["elsewhere"]), "mail")  # no namespace: another app's

    assert "ns-job" in text(ns_web.get("/queues/mail"))
    assert "elsewhere" not in text(ns_web.get("/queues/mail"))
    assert "ns-retry" in text(ns_web.get("/retries"))
    assert ns_web.get("/stats").get_json()["kiqpy"]["enqueued"] == 1


def test_find_filters_key_names_literally(ns_web: WebClient, r: redis.Redis) -> None:
    r.set("shop:a*b", 1)
    r.set("shop:axb", 1)

    page = text(ns_web.get("/keys?match=a*b"))

    assert "shop:a*b" in page and "shop:axb" not in page


def test_the_listing_pages_through_a_big_namespace_by_cursor(config: Config,
                                                             r: redis.Redis) -> None:
    web = client_for(config)
    r.mset({f"k:{n:04}": n for n in range(3000)})
    seen: set[str] = set()
    path, pages = "/keys", 0
    while path:
        page = text(web.get(path))
        seen.update(re.findall(r"<code>(k:\d{4})</code>", page))
        following = re.search(r'href="(/keys\?cursor=\d+)" rel="next"', page)
        path = following.group(1) if following else ""
        pages += 1
        assert pages < 100

    assert len(seen) == 3000 and pages > 1


def test_every_key_type_shows_its_contents(config: Config, r: redis.Redis) -> None:
    web = client_for(config)
    r.set("s", "plain text")
    r.rpush("l", *[f"item-{n}" for n in range(120)])
    r.sadd("set", "alpha", "beta")
    r.zadd("z", {"first": 1.0, "second": 2.0})
    r.hset("h", mapping={"field": "value"})
    r.xadd("x", {"event": "signup"})
    r.set(b"bin\xff\x00", b"\x81\x82")

    assert "plain text" in view(web, b"s")
    page_one, page_three = view(web, b"l"), view(web, b"l", "&page=3")
    assert "item-0<" in page_one and "item-49<" in page_one and "item-50<" not in page_one
    assert "item-119" in page_three and "Page 3 of 3" in page_three
    assert "alpha" in view(web, b"set") and "beta" in view(web, b"set")
    assert "second" in view(web, b"z")
    assert "field" in view(web, b"h") and "value" in view(web, b"h")
    assert "event=signup" in view(web, b"x")
    binary = view(web, b"bin\xff\x00")
    assert r"\x81\x82" in binary and r"bin\xff\x00" in binary
    assert web.get("/keys/view?key=x&after=bogus").status_code == 400


def test_job_payloads_are_decoded_in_key_contents(config: Config, r: redis.Redis) -> None:
    web = client_for(config)
    push(r, job("SendInvoice", [1001, "bob@example.com"]))
    add(r, "retry", failed("ChargeCard", [42]), time.time() + 60)

    queue = view(web, b"queue:default")
    assert "<strong>SendInvoice</strong>" in queue and "1001, &#34;bob@example.com&#34;" in queue
    assert "<strong>ChargeCard</strong>" in view(web, b"retry")


def test_an_entry_can_be_reached_by_its_jid(config: Config, r: redis.Redis) -> None:
    web = client_for(config)
    item = failed(args=["by-jid"])
    add(r, "retry", item)

    assert "by-jid" in text(web.get(f"/retries/{item['jid']}"))
    response = web.get(f"/retries/{'0' * 24}")
    assert response.status_code == 404 and "no job with jid" in text(response)
    assert web.post(f"/retries/{item['jid']}", {"op": "delete"}).status_code == 303
    assert r.zcard("retry") == 0
