"""What an operator sees, in a real browser (issue 20, section 2): job pages and "show all"
expanders, honest live mode while Redis is down, dark mode, the phone menu, and times that tick
and switch to local time. Same Chromium, fixtures and screenshots as tests/test_web_browser.py.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import kiqpy
from kiqpy.config import Config
from kiqpy.web import create_app
from tests import test_web_browser as _browser
from tests.conftest import wait_for
from tests.redis_server import RedisServer
from tests.test_web_browser import LAPTOP, PHONE, go, shot
from tests.web_helpers import add, failed, job, push
from tests.workers import WorkerProcess

try:
    from playwright.sync_api import expect
except ImportError:  # the browser_context fixture says what to install
    expect = None

pytestmark = pytest.mark.slow
# The browser, the served dashboard and the tab of tests/test_web_browser.py (module-scoped
# there; one more Chromium for this module).
browser_context = _browser.browser_context
base_url = _browser.base_url
page = _browser.page
NAV = ["Dashboard", "Busy", "Queues", "Retries", "Scheduled", "Dead", "Metrics", "Periodic",
       "Redis"]
CLOCK = r"\d\d:\d\d:\d\d"


def test_a_queued_and_a_running_job_are_fully_viewable(page: Any, r: redis.Redis,
                                                       redis_url: str, config: Config) -> None:
    # Given a queued job whose args are far longer than a row shows
    push(r, job("ExportReport", ["customer-" + "7" * 900 + "-END", {"format": "csv"}],
                "reports"), "reports")
    go(page, "/queues/reports")
    row = page.locator("table.jobs tbody tr").first
    assert "-END" not in row.locator("code.args").inner_text()
    # When "show all" is opened, then the whole argument is there
    row.locator("details.more summary").click()
    expect(row.locator("details.more pre")).to_contain_text("-END")
    shot(page, "queue-show-all")
    # And the job's own page shows every field
    row.get_by_role("link", name="ExportReport").click()
    expect(page.locator("h1")).to_contain_text("ExportReport")
    assert "-END" in page.inner_text("dl.fields")
    assert re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC", page.inner_text("dl.fields"))
    shot(page, "job")
    job_url = page.url
    page.set_viewport_size(PHONE)
    for url in (job_url, page.base + "/queues/reports", page.base + "/queues"):
        page.goto(url)
        overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 1, f"{url} is wider than a phone by {overflow}px"
    page.goto(job_url)
    shot(page, "phone-job", full_page=False)
    page.set_viewport_size(LAPTOP)

    # A running job, from Busy
    with WorkerProcess(redis_url, "-c", "2", require="tests.web_jobs"):
        kiqpy.enqueue("Nap", 30, "quarterly numbers")
        wait_for(lambda: r.keys("*:work") and any(r.hlen(k) for k in r.keys("*:work")),
                 message="the Nap job to run")
        go(page, "/busy")
        assert page.locator(".cards .stat").count() == 5
        shot(page, "busy-summary")
        page.set_viewport_size(PHONE)
        go(page, "/busy")
        overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 1, f"/busy is wider than a phone by {overflow}px"
        page.set_viewport_size(LAPTOP)
        page.locator("table.running").get_by_role("link", name="Nap").click()
        expect(page.locator("main")).to_contain_text("Running now")
        assert "quarterly numbers" in page.inner_text("dl.fields")
        shot(page, "running-job")


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, to stop and start again."""
    server = RedisServer().start()
    yield server
    server.cleanup()


def test_live_mode_says_when_redis_is_away(page: Any, browser_context: Any,
                                           own_redis: RedisServer) -> None:
    from waitress.server import create_server

    server = create_server(create_app(Config(redis_url=own_redis.url)), host="127.0.0.1",
                           port=0, threads=4)
    threading.Thread(target=server.run, name="kiqpy.test-web-outage", daemon=True).start()
    base = f"http://127.0.0.1:{server.effective_port}"
    try:
        page.goto(base + "/")
        # The Right-now graph has its axes at once, before the second poll
        page.wait_for_selector("#live-graph svg line.grid", state="attached", timeout=1500)
        page.evaluate("localStorage.setItem('kiqpy-poll-ms', '500')")
        page.click("#live-toggle")
        expect(page.locator("#live-status")).to_have_text(re.compile(f"^updated {CLOCK}$"))

        # When Redis stops, the badge says so and since when the figures are
        own_redis.stop()
        expect(page.locator("#live-status")).to_have_text(
            re.compile(f"^disconnected, showing data from {CLOCK}$"), timeout=10_000)
        assert "down" in (page.get_attribute("#live-toggle", "class") or "")
        shot(page, "live-disconnected", full_page=False)

        # And when it is back, "updated" again
        own_redis.start()
        expect(page.locator("#live-status")).to_have_text(re.compile(f"^updated {CLOCK}$"),
                                                          timeout=15_000)
        assert "down" not in (page.get_attribute("#live-toggle", "class") or "")
        page.click("#live-toggle")  # off again
    finally:
        server.close()
        # The browser logs each failed poll (503, refused): expected here, not a page error.
        page.errors[:] = [e for e in page.errors if "Failed to load resource" not in e]


def test_dark_mode_follows_the_system_and_the_toggle(page: Any, r: redis.Redis) -> None:
    add(r, "retry", failed("ChargeCard", [42], error_message="gateway timeout"))
    page.emulate_media(color_scheme="dark")
    try:
        go(page, "/retries")
        dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert dark == "rgb(20, 24, 29)", dark
        shot(page, "dark-retries")
        go(page, "/")
        shot(page, "dark-dashboard")
        # The toggle: auto -> dark -> light, remembered across pages
        page.click("#theme-toggle")
        page.click("#theme-toggle")
        expect(page.locator("#theme-toggle")).to_have_text("Theme: light")
        go(page, "/queues")
        light = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert light == "rgb(246, 247, 249)", light
    finally:
        page.evaluate("localStorage.removeItem('kiqpy-theme')")
        page.emulate_media(color_scheme="light")


def test_the_phone_menu_reaches_every_page(page: Any) -> None:
    page.set_viewport_size(PHONE)
    try:
        go(page, "/")
        nav = page.locator("#pages-nav")
        assert not nav.is_visible()
        page.click("#menu-toggle")
        for label in NAV:
            link = nav.get_by_role("link", name=label, exact=True)
            assert link.is_visible(), label
            box = link.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], label
        overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 1, f"the page is wider than a phone by {overflow}px"
        shot(page, "phone-menu", full_page=False)
        nav.get_by_role("link", name="Redis", exact=True).click()
        page.wait_for_url("**/keys")
        page.click("#menu-toggle")
        nav.get_by_role("link", name="Dead", exact=True).click()
        page.wait_for_url("**/dead")
    finally:
        page.set_viewport_size(LAPTOP)


def test_times_tick_and_switch_to_local_time(page: Any, r: redis.Redis) -> None:
    add(r, "retry", failed("SyncCrm", [1]), time.time() + 300)
    go(page, "/retries")
    when = page.locator("table.entries td.when a")
    first = when.inner_text()
    assert first.startswith("in 4m")
    expect(when).not_to_have_text(first, timeout=5000)  # it ticks in the browser
    absolute = page.locator("table.entries td.when .abs-time")
    assert absolute.inner_text().endswith(" UTC")
    try:
        page.click("#tz-toggle")
        expect(absolute).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC[+-]\d\d"))
        go(page, "/retries")  # remembered
        expect(page.locator("#tz-toggle")).to_have_text("Times: local")
    finally:
        page.evaluate("localStorage.removeItem('kiqpy-times')")



def test_queues_sort_by_size_and_latency(page: Any, r: redis.Redis) -> None:
    for name, count, waited in (("mail", 3, 5), ("reports", 1, 900), ("media", 7, 30)):
        for _ in range(count):
            push(r, job("Work", queue=name, enqueued_at=time.time() - waited), name)
    go(page, "/queues")
    names = page.locator("table.queues tbody tr td:first-child a")
    assert names.all_inner_texts() == ["mail", "media", "reports"]  # by name at first
    page.get_by_role("link", name="Size").click()  # every queue, by the server
    page.wait_for_url("**/queues?sort=size")
    assert names.all_inner_texts() == ["media", "mail", "reports"]
    page.click("button.sort[data-sort=latency]")
    assert names.all_inner_texts() == ["reports", "media", "mail"]
    assert page.locator("tr.high-latency").count() == 1
    shot(page, "queues-sorted")
