"""Every change the dashboard makes (kiqpy/web), seen in Redis: queues, the three job sets
(per row, selected rows, all), processes (quiet, stop), and what happens when the thing to
change has gone meanwhile or is not a job."""

from __future__ import annotations

import html
import re
import time

import pytest
import redis

from kiqpy.config import Config
from kiqpy.keys import Keys
from kiqpy.payload import decode
from tests.conftest import queued_jobs
from tests.web_helpers import (
    WebClient,
    add,
    client_for,
    entry_ids,
    failed,
    form_value,
    job,
    push,
    text,
)


@pytest.fixture
def web(config: Config) -> WebClient:
    return client_for(config)


def ids(web: WebClient, kind: str) -> list[str]:
    return entry_ids(text(web.get(f"/{kind}")), kind)


def done(response, what: str, count: int) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 303, response.get_data(as_text=True)[:1000]
    assert f"done={what}&n={count}" in response.headers["Location"]


# -- queues --------------------------------------------------------------------------------------
def test_clear_a_queue(web: WebClient, r: redis.Redis) -> None:
    push(r, job(args=["a"]), "mail")
    push(r, job(args=["b"]), "mail")

    done(web.post("/queues/mail", {"op": "clear"}), "clear", 2)

    assert r.llen("queue:mail") == 0
    assert b"mail" not in r.smembers("queues")
    assert "Deleted 2 job(s) and the queue." in text(web.get("/queues?done=clear&n=2"))


def test_pause_and_unpause_a_queue_from_its_page_and_the_queues_page(
        web: WebClient, r: redis.Redis) -> None:
    push(r, job(args=["a"]), "mail")
    page = text(web.get("/queues/mail"))
    assert 'value="pause">Pause</button>' in page and "badge\">paused" not in page

    response = web.post("/queues/mail", {"op": "pause", "from": "queue"})
    done(response, "queue-pause", 1)
    assert response.headers["Location"].startswith("/queues/mail?")
    assert r.smembers("kiqpy:paused-queues") == {b"mail"}
    page = text(web.get("/queues/mail?done=queue-pause&n=1"))
    assert "Paused 1 queue" in page and 'value="unpause">Unpause</button>' in page
    listing = text(web.get("/queues"))
    assert 'class="badge">paused' in listing and 'value="unpause">Unpause' in listing

    done(web.post("/queues/mail", {"op": "unpause"}), "queue-unpause", 1)
    assert r.smembers("kiqpy:paused-queues") == set() and r.llen("queue:mail") == 1
    assert 'class="badge">paused' not in text(web.get("/queues"))


def test_pausing_needs_the_csrf_token(web: WebClient, r: redis.Redis) -> None:
    push(r, job(args=["a"]), "mail")
    assert web.post("/queues/mail", {"op": "pause"}, token=None).status_code == 403
    assert not r.exists("kiqpy:paused-queues")


def test_a_paused_queue_without_jobs_is_named_and_can_be_unpaused(
        web: WebClient, r: redis.Redis) -> None:
    r.sadd("kiqpy:paused-queues", "later")
    assert 'href="/queues/later">later</a>' in text(web.get("/queues"))
    assert "Paused: workers take none" in text(web.get("/queues/later"))
    done(web.post("/queues/later", {"op": "unpause"}), "queue-unpause", 1)
    assert web.get("/queues/later").status_code == 404


def test_delete_one_job_of_a_queue_even_a_malformed_one(web: WebClient, r: redis.Redis) -> None:
    push(r, job(args=["keep"]))
    push(r, b"\xc1 garbage")
    page = text(web.get("/queues/default"))
    assert "(malformed payload)" in page
    digests = form_value(page, "job")

    done(web.post("/queues/default", {"op": "delete", "job": digests[0], "page": "1"}),
         "delete", 1)
    done(web.post("/queues/default", {"op": "delete", "job": digests[1]}), "delete", 1)

    assert r.llen("queue:default") == 0
    response = web.post("/queues/default", {"op": "delete", "job": digests[0]})
    assert response.status_code == 404
    assert "no longer in the queue" in text(response)


def test_unknown_queue_and_unknown_action(web: WebClient, r: redis.Redis) -> None:
    push(r, job())

    assert web.post("/queues/nope", {"op": "clear"}).status_code == 404
    response = web.post("/queues/default", {"op": "explode"})
    assert response.status_code == 400 and "unknown action" in text(response)
    assert r.llen("queue:default") == 1


# -- retries -------------------------------------------------------------------------------------
def test_retry_now_queues_the_job_without_counting_the_attempt(web: WebClient,
                                                               r: redis.Redis) -> None:
    add(r, "retry", failed(args=["again"], retry_count=3))
    (ident,) = ids(web, "retries")

    done(web.post(f"/retries/{ident}", {"op": "retry"}), "retry", 1)

    assert r.zcard("retry") == 0
    (queued,) = queued_jobs(r)
    assert queued["args"] == ["again"] and queued["retry_count"] == 2


def test_delete_and_kill_one_retry(web: WebClient, r: redis.Redis) -> None:
    add(r, "retry", failed(args=["delete me"]), time.time() + 10)
    add(r, "retry", failed(args=["kill me"]), time.time() + 20)
    delete, kill = ids(web, "retries")  # soonest next try first, as Sidekiq's Web

    done(web.post(f"/retries/{delete}", {"op": "delete"}), "delete", 1)
    done(web.post(f"/retries/{kill}", {"op": "kill"}), "kill", 1)

    assert r.zcard("retry") == 0
    (dead,) = r.zrange("dead", 0, -1)
    assert decode(dead)["args"] == ["kill me"]


def test_selected_rows_only(web: WebClient, r: redis.Redis) -> None:
    for n in range(4):
        add(r, "retry", failed(args=[n]), time.time() + 10 + n)
    oldest, third, second, newest = ids(web, "retries")  # soonest first

    done(web.post("/retries", {"op": "retry", "ids": [newest, oldest]}), "retry", 2)
    done(web.post("/retries", {"op": "kill", "ids": [second]}), "kill", 1)
    done(web.post("/retries", {"op": "delete", "ids": [third, newest]}), "delete", 1)

    assert sorted(j["args"][0] for j in queued_jobs(r)) == [0, 3]
    assert [decode(v)["args"] for v in r.zrange("dead", 0, -1)] == [[2]]
    assert r.zcard("retry") == 0
    response = web.post("/retries", {"op": "retry"})
    assert response.status_code == 400 and "no jobs were selected" in text(response)


@pytest.mark.parametrize("op, queued, dead", [("retry", 3, 0), ("kill", 0, 3),
                                              ("delete", 0, 0)])
def test_all_retries(web: WebClient, r: redis.Redis, op: str, queued: int, dead: int) -> None:
    for n in range(3):
        add(r, "retry", failed(args=[n]))

    done(web.post("/retries", {"op": op, "all": "1"}), op, 3)

    assert r.zcard("retry") == 0
    assert r.llen("queue:default") == queued and r.zcard("dead") == dead


def test_a_malformed_entry_cannot_be_retried_but_can_be_seen_deleted_and_killed(
        web: WebClient, r: redis.Redis) -> None:
    add(r, "retry", b"\xc1 garbage", time.time() + 5)
    add(r, "retry", failed(), time.time() + 10)
    bad, good = ids(web, "retries")  # soonest first

    page = web.get(f"/retries/{bad}")
    assert page.status_code == 200 and "Not a job" in text(page)
    response = web.post(f"/retries/{bad}", {"op": "retry"})
    assert response.status_code == 400 and "Delete it instead" in text(response)
    # Retry on a selection skips it and retries the rest
    done(web.post("/retries", {"op": "retry", "ids": [good, bad]}), "retry", 1)
    done(web.post(f"/retries/{bad}", {"op": "kill"}), "kill", 1)
    assert r.zcard("retry") == 0 and r.zcard("dead") == 1


def test_an_entry_that_left_meanwhile_is_a_clear_404(web: WebClient, r: redis.Redis) -> None:
    value = add(r, "retry", failed())
    (ident,) = ids(web, "retries")
    r.zrem("retry", value)  # the scheduler moved it, or another user clicked first

    response = web.post(f"/retries/{ident}", {"op": "retry"})

    assert response.status_code == 404
    assert "no longer in Retries" in text(response)
    assert r.llen("queue:default") == 0


def test_the_filter_finds_entries_by_any_text_they_hold(web: WebClient, r: redis.Redis) -> None:
    add(r, "retry", failed(args=["needle-in-args"]))
    add(r, "retry", failed(error_message="a needle-ish error"))
    add(r, "retry", failed(args=["hay"]))

    page = text(web.get("/retries?filter=needle"))

    assert len(entry_ids(page, "retries")) == 2 and "hay" not in page
    assert "Searched entries 1 to 3, to the end" in page
    assert "Nothing in Retries matches" in text(web.get("/retries?filter=zzz"))


def test_an_entry_page_shows_error_and_backtrace(web: WebClient, r: redis.Redis) -> None:
    add(r, "retry", failed(error_backtrace=["app.py:1 in perform", "lib.py:2 in helper"]))
    (ident,) = ids(web, "retries")

    page = text(web.get(f"/retries/{ident}"))

    assert "ValueError" in page and "it broke" in page
    assert "app.py:1 in perform\nlib.py:2 in helper" in page


# -- scheduled and dead --------------------------------------------------------------------------
def test_scheduled_add_to_queue_and_delete(web: WebClient, r: redis.Redis) -> None:
    for n in range(4):
        add(r, "schedule", job(args=[n], at=time.time() + 100), time.time() + 100 + n)
    zero, one, two, three = ids(web, "scheduled")  # soonest first

    done(web.post(f"/scheduled/{zero}", {"op": "enqueue"}), "enqueue", 1)
    done(web.post("/scheduled", {"op": "delete", "ids": [one, two]}), "delete", 2)
    assert web.post(f"/scheduled/{three}", {"op": "kill"}).status_code == 400
    done(web.post("/scheduled", {"op": "enqueue", "all": "1"}), "enqueue", 1)

    assert [j["args"] for j in queued_jobs(r)] == [[0], [3]]
    assert "at" not in queued_jobs(r)[0]
    assert r.zcard("schedule") == 0


def test_dead_retry_delete_and_all(web: WebClient, r: redis.Redis) -> None:
    for n in range(4):
        add(r, "dead", failed(args=[n], retry_count=25), time.time() - n)
    newest, second, *_ = ids(web, "dead")

    done(web.post(f"/dead/{newest}", {"op": "retry"}), "retry", 1)
    done(web.post(f"/dead/{second}", {"op": "delete"}), "delete", 1)
    assert web.post(f"/dead/{newest}", {"op": "kill"}).status_code == 400
    done(web.post("/dead", {"op": "retry", "all": "1"}), "retry", 2)

    assert sorted(j["args"][0] for j in queued_jobs(r)) == [0, 2, 3]
    assert {j["retry_count"] for j in queued_jobs(r)} == {24}
    assert r.zcard("dead") == 0


def test_dead_delete_all(web: WebClient, r: redis.Redis) -> None:
    for n in range(3):
        add(r, "dead", failed(args=[n]), time.time() - n)

    done(web.post("/dead", {"op": "delete", "all": "1"}), "delete", 3)

    assert r.zcard("dead") == 0


# -- processes -----------------------------------------------------------------------------------
def fake_process(r: redis.Redis, identity: str) -> None:
    """A process hash as a heartbeat leaves it (a real worker is in tests/test_web.py)."""
    keys = Keys()
    r.sadd(keys.processes, identity)
    r.hset(keys.process(identity), mapping={
        "info": '{"hostname": "h", "pid": 1, "concurrency": 5, "queues": ["default"]}',
        "busy": 0, "beat": time.time(), "quiet": "false"})
    r.expire(keys.process(identity), 60)


def test_quiet_and_stop_one_process_or_all(web: WebClient, r: redis.Redis) -> None:
    fake_process(r, "h:1:a")
    fake_process(r, "h:2:b")
    page = text(web.get("/busy"))
    assert form_value(page, "identity") == ["h:1:a", "h:2:b"]

    done(web.post("/busy", {"op": "quiet", "identity": "h:1:a"}), "quiet", 1)
    done(web.post("/busy", {"op": "stop", "all": "1"}), "stop", 2)

    assert r.lrange(Keys().signals("h:1:a"), 0, -1) == [b"TERM", b"TSTP"]
    assert r.lrange(Keys().signals("h:2:b"), 0, -1) == [b"TERM"]


def test_a_process_that_is_gone_or_a_bad_action(web: WebClient, r: redis.Redis) -> None:
    response = web.post("/busy", {"op": "quiet", "identity": "h:9:z"})
    assert response.status_code == 404 and "no live process" in text(response)
    response = web.post("/busy", {"op": "kill", "all": "1"})
    assert response.status_code == 400
    assert not re.search(rb"signals", b"".join(r.keys("*")))


def test_retries_and_scheduled_list_soonest_first_dead_latest_first_and_can_flip(
        web: WebClient, r: redis.Redis) -> None:
    for key in ("retry", "schedule", "dead"):
        for n in range(3):
            add(r, key, failed(args=[f"{key}-{n}"]), time.time() + 100 * (n + 1))

    def order(path: str) -> list[str]:
        page = text(web.get(path))
        found = [(page.index(f"{k}-{n}"), f"{k}-{n}") for k in ("retry", "schedule", "dead")
                 for n in range(3) if f"{k}-{n}" in page]
        return [name for _, name in sorted(found)]

    assert order("/retries") == ["retry-0", "retry-1", "retry-2"]
    assert order("/scheduled") == ["schedule-0", "schedule-1", "schedule-2"]
    assert order("/dead") == ["dead-2", "dead-1", "dead-0"]
    assert order("/retries?direction=desc") == ["retry-2", "retry-1", "retry-0"]
    assert order("/dead?direction=asc") == ["dead-0", "dead-1", "dead-2"]
    assert order("/retries?direction=desc&filter=retry-") == ["retry-2", "retry-1", "retry-0"]
    assert order("/retries?filter=retry-") == ["retry-0", "retry-1", "retry-2"]
    assert "direction=desc" in text(web.get("/retries"))  # the header link flips it


# -- "All matching" while filtered ---------------------------------------------------------------
def test_all_matching_acts_on_the_filtered_set_after_confirming_its_count(
        web: WebClient, r: redis.Redis) -> None:
    # Given 30 retries of one customer among 40 others
    for n in range(30):
        add(r, "retry", failed("Charge", [f"acme-{n}"]))
    for n in range(40):
        add(r, "retry", failed("Charge", [f"other-{n}"]))
    listing = text(web.get("/retries?filter=acme"))
    link = re.search(r'href="(/retries/all\?op=kill[^"]*)"', listing)
    assert link, "a filtered list offers Kill all matching"
    # When the confirmation page is opened, then it counts every match (not the 25 shown)
    confirm = text(web.get(html.unescape(link.group(1))))
    assert "Kill: 30 job(s) matching" in confirm and "(to the end)" in confirm
    assert r.zcard("retry") == 70, "the GET changed nothing"
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', confirm))
    fields.pop("csrf", None)
    # And the confirmed POST moves exactly those
    response = web.post("/retries", {**fields, "confirm": "1"})
    done(response, "kill", 30)
    assert r.zcard("retry") == 40 and r.zcard("dead") == 30
    assert all(b"other-" in v for v in r.zrange("retry", 0, -1))
