"""Every job fully viewable (kiqpy/web/views_jobs.py and the listings that link to it): the page
of a queued job and of a running one, "show all" expanders for long args, times as times and
the backtrace decoded in "All fields", and the links between a job's error, queue and pages."""

from __future__ import annotations

import base64
import html
import json
import re
import time
import zlib

import pytest
import redis

from kiqpy.config import Config
from kiqpy.keys import Keys
from kiqpy.web.context import digest
from tests.web_helpers import WebClient, add, client_for, entry_ids, failed, job, push, text


@pytest.fixture
def web(config: Config) -> WebClient:
    return client_for(config)


def job_links(page: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r'href="(/queues/[^"]+/jobs/[^"]+)"', page)))


# -- a queued job's page -------------------------------------------------------------------------
def test_a_queued_job_has_its_own_page_with_every_argument(web: WebClient, r: redis.Redis
                                                           ) -> None:
    # Given a queued job whose args are far longer than a table cell shows
    long_arg = "x" * 3000 + "THE-END"
    value = push(r, job("BigArgs", [long_arg, 7], "mail"), "mail")
    page = text(web.get("/queues/mail"))
    assert "THE-END" in page  # in the row's "show all" expander
    (link,) = job_links(page)
    assert link == f"/queues/mail/jobs/{digest(value)}"

    # When its page is opened, then it shows every argument, the queue linked, times as times
    shown = web.get(html.unescape(link))
    body = text(shown)
    assert shown.status_code == 200
    assert "BigArgs" in body and "THE-END" in body and "Waiting in its queue" in body
    assert 'href="/queues/mail"' in body
    assert re.search(r"&#34;created_at&#34;: &#34;20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+\)",
                     body), "created_at in All fields is shown as a time"
    assert body.count("THE-END") == 1, "the args are printed once"
    # And its raw bytes download as stored
    raw = web.get(html.unescape(link) + "/raw")
    assert raw.status_code == 200 and raw.data == value
    assert "attachment" in raw.headers["Content-Disposition"]


def test_a_queued_job_is_found_by_jid_near_its_page_and_a_gone_one_is_a_404(
        web: WebClient, r: redis.Redis) -> None:
    for n in range(120):
        push(r, job("Filler", [n]))
    item = job("Wanted", ["needle"])
    push(r, item)  # the newest: page 1 newest first, page 5 oldest first
    assert web.get(f"/queues/default/jobs/{item['jid']}?order=newest").status_code == 200
    assert web.get(f"/queues/default/jobs/{item['jid']}?page=5").status_code == 200
    # Looked for near the page it was listed on only (bounded), not in the whole queue
    assert web.get(f"/queues/default/jobs/{item['jid']}?page=1").status_code == 404
    gone = web.get(f"/queues/default/jobs/{'0' * 20}")
    assert gone.status_code == 404 and "no longer in queue" in text(gone)
    assert web.get(f"/queues/nosuch/jobs/{'0' * 20}").status_code == 404


def test_a_huge_queued_job_page_stays_bounded(web: WebClient, r: redis.Redis) -> None:
    value = push(r, job("Huge", ["y" * 5_000_000]))
    page = text(web.get("/queues/default"))
    assert len(page) < 100_000  # one line and a 4 KiB expander, not 5 MB
    assert "the job's page" in page  # the expander says where the rest is
    shown = web.get(f"/queues/default/jobs/{digest(value)}")
    assert shown.status_code == 200 and len(shown.data) < 200 * 1024
    assert "Truncated" in text(shown)


def test_deleting_from_a_job_page_deletes_that_job(web: WebClient, r: redis.Redis) -> None:
    keep, drop = push(r, job("Keep")), push(r, job("Drop"))
    page = text(web.get(f"/queues/default/jobs/{digest(drop)}"))
    token = re.search(r'name="job" value="([0-9a-f]+)"', page)
    assert token and token.group(1) == digest(drop)
    assert 'data-confirm="Delete this job?"' in page
    response = web.post("/queues/default", {"op": "delete", "job": token.group(1),
                                            "page": "1", "order": ""})
    assert response.status_code == 303
    assert r.lrange(Keys().queue("default"), 0, -1) == [keep]


# -- a running job's page ------------------------------------------------------------------------
def test_a_running_job_has_its_own_page(web: WebClient, r: redis.Redis) -> None:
    # Given a live process whose thread runs a job (as the heartbeat writes it)
    keys, identity = Keys(), "host:1:abcdefabcdef"
    payload = job("LongReport", ["z" * 1000 + "TAIL"], "reports")
    r.sadd(keys.processes, identity)
    r.hset(keys.process(identity), mapping={
        "info": json.dumps({"hostname": "host", "pid": 1, "concurrency": 4, "queues": ["reports"],
                            "started_at": time.time() - 60}),
        "busy": 1, "beat": time.time(), "quiet": "false", "rss": 2048})
    r.hset(keys.work(identity), "kiqpy.processor-2",
           json.dumps({"queue": "reports", "payload": payload, "run_at": time.time() - 5}))
    busy = text(web.get("/busy"))
    assert "Utilisation" in busy and "25%" in busy  # 1 of 4 threads
    link = re.search(r'href="(/busy/job\?[^"]+)"', busy)
    assert link, "Busy links the running job to its page"
    shown = web.get(html.unescape(link.group(1)))
    body = text(shown)
    assert shown.status_code == 200 and "Running now" in body and "TAIL" in body
    assert "kiqpy.processor-2" in body and 'href="/queues/reports"' in body
    raw = web.get(html.unescape(link.group(1)).replace("/busy/job?", "/busy/job/raw?"))
    assert json.loads(raw.data)["jid"] == payload["jid"]
    assert web.get(f"/busy/job?process={identity}&thread=other").status_code == 404


# -- entry pages and listings --------------------------------------------------------------------
def test_an_entry_page_decodes_the_backtrace_and_shows_times(web: WebClient, r: redis.Redis
                                                             ) -> None:
    packed = base64.b64encode(zlib.compress(json.dumps(
        ["app.py:10 in perform", "lib.py:99 in charge"]).encode())).decode()
    add(r, "retry", failed("Charge", [1], error_backtrace=packed, retried_at=time.time()))
    (ident,) = entry_ids(text(web.get("/retries")), "retries")
    body = text(web.get(f"/retries/{ident}"))
    assert "lib.py:99 in charge" in body and packed not in body
    assert re.search(r"&#34;failed_at&#34;: &#34;20\d\d-[^&]+ UTC \(\d+\)", body)
    assert re.search(r"&#34;retried_at&#34;: &#34;20\d\d-[^&]+ UTC \([\d.]+\)", body)


def test_a_failure_list_links_error_and_queue_and_says_which_retry(web: WebClient,
                                                                   r: redis.Redis) -> None:
    add(r, "retry", failed("Charge", ["a" * 900 + "LAST"], queue="billing", retry_count=2,
                           retry=5, error_message="card declined"))
    page = text(web.get("/retries"))
    (ident,) = entry_ids(page, "retries")
    assert re.search(rf'<a href="/retries/{re.escape(ident)}" class="error-link">'
                     rf'<strong>ValueError</strong>: card declined</a>', page)
    assert '<a href="/queues/billing">billing</a>' in page
    assert "retry 3 of 5" in page and "failed" in page
    assert "<summary>show all</summary>" in page and "LAST" in page


def test_jobs_in_the_key_browser_link_to_their_pages(web: WebClient, r: redis.Redis) -> None:
    queued = push(r, job("Queued", ["q" * 600]))
    add(r, "dead", failed("Died", [1]), 1_700_000_000.0)
    listing = text(web.get("/keys/view?key=queue%3Adefault"))
    assert f'href="/queues/default/jobs/{digest(queued)}?page=1&amp;order=newest"' in listing
    assert "<summary>show all</summary>" in listing
    (link,) = job_links(listing)
    assert web.get(html.unescape(link)).status_code == 200
    dead = text(web.get("/keys/view?key=dead"))
    (ident,) = entry_ids(dead, "dead")
    assert ident.startswith("1700000000.0-")
    assert web.get(f"/dead/{ident}").status_code == 200


def test_a_big_element_in_the_key_browser_is_still_a_link_to_its_job(web: WebClient,
                                                                      r: redis.Redis) -> None:
    big = push(r, job("Big", ["b" * 100_000]))  # more than the key browser decodes
    page = text(web.get("/keys/view?key=queue%3Adefault"))
    assert "Open as a job" in page
    assert web.get(f"/queues/default/jobs/{digest(big)}?order=newest").status_code == 200


# -- Busy ----------------------------------------------------------------------------------------
def test_quiet_shows_as_requested_at_once(web: WebClient, r: redis.Redis) -> None:
    # Given a live process that has not had a heartbeat since Quiet was clicked
    keys, identity = Keys(), "host:2:abcdefabcdef"
    r.sadd(keys.processes, identity)
    r.hset(keys.process(identity), mapping={
        "info": json.dumps({"hostname": "host", "pid": 2, "concurrency": 2, "queues": ["a"]}),
        "busy": 0, "beat": time.time(), "quiet": "false", "rss": 1024})
    assert "quiet requested" not in text(web.get("/busy"))
    assert web.post("/busy", {"op": "quiet", "identity": identity}).status_code == 303
    # Then Busy says so before the process takes the command
    page = text(web.get("/busy"))
    assert "quiet requested" in page and 'value="quiet">Quiet</button>' not in page
    # And once it has (the heartbeat took it and wrote quiet=true), "quiet"
    r.delete(keys.signals(identity))
    r.hset(keys.process(identity), "quiet", "true")
    page = text(web.get("/busy"))
    assert "quiet requested" not in page and ">quiet</span>" in page


def test_every_page_carries_the_live_status_theme_times_and_menu(web: WebClient) -> None:
    page = text(web.get("/"))
    for needle in ('id="live-status"', 'id="theme-toggle"', 'id="tz-toggle"',
                   'id="menu-toggle"', 'aria-controls="pages-nav"'):
        assert needle in page
    assert "<script>" not in page and " style=" not in page  # the CSP stays strict


# -- Queues --------------------------------------------------------------------------------------
def test_queues_mark_high_latency_and_offer_sorting(web: WebClient, r: redis.Redis) -> None:
    push(r, job("Old", queue="stuck", enqueued_at=time.time() - 600), "stuck")
    push(r, job("New", queue="fresh"), "fresh")
    page = text(web.get("/queues"))
    stuck = re.search(r'<tr data-size="1" data-latency="([\d.]+)" class="high-latency">\s*'
                      r'<td><a href="/queues/stuck">', page)
    assert stuck and float(stuck.group(1)) >= 600
    assert re.search(r'<tr data-size="1" data-latency="[\d.]+">\s*<td><a href="/queues/fresh">',
                     page)
    assert 'href="/queues?sort=size"' in page and 'data-sort="latency"' in page


def test_pagers_have_first_last_and_jump(web: WebClient, r: redis.Redis) -> None:
    for n in range(80):
        push(r, job("Filler", [n]))
    page = text(web.get("/queues/default?page=2"))
    assert 'href="/queues/default">« First</a>' in page
    assert 'href="/queues/default?page=4">Last »</a>' in page
    assert re.search(r'<input type="number" id="jump-page" name="page" min="1" max="4"', page)
    assert "Filler" in text(web.get("/queues/default?page=4"))


def test_the_filter_says_what_it_searches(web: WebClient, r: redis.Redis) -> None:
    page = text(web.get("/retries"))
    assert "not numbers in arguments, nor the backtrace" in page
    assert 'aria-describedby="filter-scope"' in page


def test_deletes_and_kills_from_a_row_ask_first(web: WebClient, r: redis.Redis) -> None:
    add(r, "retry", failed("Charge", [1]))
    push(r, job("Send", [1]))
    retries = text(web.get("/retries"))
    assert 'data-confirm="Delete: this Charge job?"' in retries
    assert 'data-confirm="Kill: this Charge job?"' in retries
    assert 'data-confirm="Delete: the ticked jobs?"' in retries
    assert 'data-confirm="Delete this Send job?"' in text(web.get("/queues/default"))


def test_the_key_browser_pager_has_first_last_and_jump(web: WebClient, r: redis.Redis) -> None:
    for n in range(120):
        push(r, job("Filler", [n]))
    page = text(web.get("/keys/view?key=queue%3Adefault&page=2"))
    assert "« First</a>" in page and "Last »</a>" in page
    assert '<input type="hidden" name="key" value="queue:default">' in page
    assert web.get("/keys/view?key=queue%3Adefault&page=3").status_code == 200


def test_queues_sort_by_size_across_pages(web: WebClient, r: redis.Redis) -> None:
    # Given 150 queues (two pages), the biggest named last
    for n in range(150):
        push(r, job("Work", queue=f"q{n:03}"), f"q{n:03}")
    for _ in range(5):
        push(r, job("Work", queue="q149"), "q149")
    r.set(Keys().queue("odd"), "not a list")
    r.sadd(Keys().queues, "odd")
    # When sorted by size, then it comes first on page 1, and the odd one last
    first = text(web.get("/queues?sort=size"))
    names = re.findall(r'<td><a href="/queues/([^"]+)">', first)
    assert names[0] == "q149" and len(names) == 100
    assert 'href="/queues?sort=size&amp;page=2"' in first or \
        'href="/queues?page=2&amp;sort=size"' in first
    last = re.findall(r'<td><a href="/queues/([^"]+)">', text(web.get("/queues?sort=size&page=2")))
    assert last[-1] == "odd"
