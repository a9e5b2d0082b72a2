"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` package, which
``make browser`` installs) driven by Playwright, against the app served by waitress on a free
local port, a real Redis and real worker processes. Screenshots go to
``test-output/screenshots/``.

Nothing is downloaded at run time (no ``playwright install``): Playwright drives
``/usr/bin/chromium``. Without it the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import datetime as _dt
import os
import random
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

import kiqpy
from kiqpy.config import Config
from kiqpy.keys import Keys
from kiqpy.web import create_app
from tests.conftest import wait_for

try:
    from playwright.sync_api import expect
except ImportError:  # the fixture below says what to install
    expect = None
from tests.redis_server import RedisServer
from tests.web_helpers import XSS_ATTR, XSS_SCRIPT, add, failed, job, push
from tests.workers import ROOT, WorkerProcess, identity_of, log_events

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "test-output" / "screenshots"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.slow


def _unavailable(reason: str) -> None:
    message = f"{reason}; `make browser` installs Debian's chromium (as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser_context() -> Iterator[Any]:
    """One Chromium for the module, with a fresh profile; records every request it makes."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the dev extra installs it
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is not installed")
    with tempfile.TemporaryDirectory(prefix="kiqpy-chromium-") as profile, \
            sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport=LAPTOP)
        context.requests = []
        context.on("request", lambda request: context.requests.append(request.url))
        context.on("dialog", lambda dialog: dialog.accept())
        yield context
        context.close()


@pytest.fixture(scope="module")
def base_url(redis_server: RedisServer) -> Iterator[str]:
    """The dashboard served by waitress in a thread, on a free port."""
    from waitress.server import create_server

    server = create_server(create_app(Config(redis_url=redis_server.url)), host="127.0.0.1",
                           port=0, threads=4)
    thread = threading.Thread(target=server.run, name="kiqpy.test-web", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    # close() stops accepting; the daemon thread's loop ends with the test session.
    server.close()


@pytest.fixture
def page(browser_context: Any, base_url: str) -> Iterator[Any]:
    """A tab whose console errors (CSP violations among them) fail the test."""
    tab = browser_context.new_page()
    tab.errors = []
    tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    tab.base = base_url
    yield tab
    errors = tab.errors
    tab.close()
    assert not errors, f"the page logged errors: {errors}"


def shot(page: Any, name: str, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def go(page: Any, path: str) -> None:
    response = page.goto(page.base + path)
    assert response is not None and response.status == 200, f"{path}: {response}"


def only_local(requests: list[str]) -> None:
    hosts = {urlsplit(url).hostname for url in requests if not url.startswith(("data:", "about:"))}
    assert hosts <= {"127.0.0.1"}, f"requests left this machine: {sorted(hosts)}"


def seed(r: redis.Redis) -> None:
    """Data for every page: history, queues, scheduled, retrying, dead and odd jobs."""
    rng = random.Random(4)
    today = _dt.datetime.now(_dt.timezone.utc).date()
    for n in range(30):
        day = today - _dt.timedelta(days=n)
        r.set(Keys().stat("processed", day), rng.randint(800, 1600) - n * 15)
        r.set(Keys().stat("failed", day), rng.randint(0, 60))
    r.mset({"stat:processed": 38211, "stat:failed": 912})
    for n in range(3):
        push(r, job("SendInvoice", [1000 + n, "bob@example.com"], "mail"), "mail")
    push(r, job("ResizeImage", [XSS_SCRIPT, XSS_ATTR], "media"), "media")
    add(r, "schedule", job("WeeklyDigest", ["team-7"]), time.time() + 7200)
    add(r, "retry", failed("ChargeCard", [42, {"amount": 1999}], error_class="TimeoutError",
                           error_message="gateway did not answer in 5 s"), time.time() + 300)
    add(r, "retry", failed("ResizeImage", [XSS_SCRIPT], error_message=XSS_ATTR),
        time.time() + 900)
    add(r, "dead", failed("ImportCsv", ["s3://bucket/big.csv"], retry_count=25,
                          error_class="KeyError", error_message="'email'"), time.time() - 3600)


# -- the tests -----------------------------------------------------------------------------------
def test_every_page_loads_with_real_data(page: Any, browser_context: Any, r: redis.Redis,
                                         redis_url: str, config: Config) -> None:
    seed(r)
    with WorkerProcess(redis_url, "-c", "4", "-q", "critical:3", "-q", "default:1", "-g", "web",
                       require="tests.web_jobs"):
        kiqpy.enqueue("Nap", 30, "nightly report", queue="default")
        wait_for(lambda: r.keys("*:work") and any(r.hlen(k) for k in r.keys("*:work")),
                 message="the Nap job to run")
        for path, name, check in [
            ("/", "dashboard", "#history-chart svg polyline"),
            ("/busy", "busy", "table.running td"),
            ("/queues", "queues", "table.queues td"),
            ("/queues/media", "queue", "table.jobs td"),
            ("/retries", "retries", "table.entries td"),
            ("/scheduled", "scheduled", "table.entries td"),
            ("/dead", "dead", "table.entries td"),
            ("/keys", "keys", "table.keys td"),
            ("/keys/view?key=retry", "key", "table.contents td"),
        ]:
            go(page, path)
            assert page.locator(check).count() > 0, path
            shot(page, name)
        go(page, "/dead")
        page.click("table.entries a >> nth=0")  # the dead job's own page
        assert "KeyError" in page.inner_text("main")
        shot(page, "dead-entry")

        page.set_viewport_size(PHONE)
        for path, name in [("/", "phone-dashboard"), ("/busy", "phone-busy"),
                           ("/retries", "phone-retries")]:
            go(page, path)
            overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
            assert overflow <= 1, f"{path} is wider than a phone by {overflow}px"
            shot(page, name, full_page=False)
        page.set_viewport_size(LAPTOP)

    # Args with markup are shown as text, and nothing was loaded from anywhere else
    go(page, "/queues/media")
    assert XSS_SCRIPT in page.inner_text("table.jobs")
    assert page.locator("table.jobs img, table.jobs script").count() == 0
    only_local(browser_context.requests)


def test_retry_now_sends_a_failed_job_back_to_run(page: Any, r: redis.Redis,
                                                  redis_url: str, config: Config) -> None:
    with WorkerProcess(redis_url, "-c", "2", require="tests.web_jobs"):
        # Given a job that really failed, its next try an hour away
        kiqpy.enqueue("FailsUntilFixed", "invoice-77")
        wait_for(lambda: r.zcard("retry") == 1, message="the job to fail into Retries")
        r.set("test:fixed", 1)
        go(page, "/retries")
        row = page.locator("table.entries tbody tr", has_text="FailsUntilFixed")
        assert "RuntimeError" in row.inner_text()
        assert "the service for invoice-77 is down" in row.inner_text()
        shot(page, "retry-before")

        # When "Retry now" is clicked on its row
        row.get_by_role("button", name="Retry now").click()

        # Then it leaves the Retries page, and the worker runs it
        page.wait_for_url("**/retries?done=retry&n=1")
        assert "Queued 1 job(s) to run now." in page.inner_text("main")
        assert page.locator("table.entries").count() == 0
        shot(page, "retry-after")
        wait_for(lambda: r.lrange("test:ran", 0, -1) == [b"invoice-77"], timeout=15,
                 message="the retried job to run")
    assert r.zcard("retry") == 0


def test_live_polling_and_quiet_on_a_live_process(page: Any, browser_context: Any,
                                                  r: redis.Redis, redis_url: str,
                                                  config: Config) -> None:
    with WorkerProcess(redis_url, "-c", "2", require="tests.web_jobs") as worker:
        identity = identity_of(worker)
        go(page, "/")
        page.evaluate("localStorage.setItem('kiqpy-poll-ms', '500')")
        wait_for(lambda: r.sismember("processes", identity), message="the worker to register")

        # Live on: counters and the live graph follow jobs as they are processed
        page.click("#live-toggle")
        assert page.get_attribute("#live-toggle", "aria-pressed") == "true"
        for burst in (20, 45, 10):
            for n in range(burst):
                kiqpy.enqueue("Tick", n)
            time.sleep(0.6)
        expect(page.locator("[data-stat=processed]")).to_have_text("75", timeout=10_000)
        page.wait_for_selector("#live-graph svg polyline.processed", timeout=10_000)
        time.sleep(1)  # a few flat samples after the bursts
        shot(page, "dashboard-live")

        # Quiet clicked on the process: the page, still live, shows its state change
        go(page, "/busy")
        row = page.locator(f'tr[data-identity="{identity}"]')
        assert row.locator(".badge.running").count() == 1
        row.get_by_role("button", name="Quiet").click()
        page.wait_for_url("**/busy?done=quiet&n=1")
        # At once "quiet requested" (unless its heartbeat was quicker than the page: that
        # case is tests/test_web_jobs.py's); "quiet" once the heartbeat has taken the command
        badge = page.locator(f'tr[data-identity="{identity}"] .badge.quiet')
        assert badge.inner_text() in ("quiet requested", "quiet")
        expect(badge).to_have_text("quiet", timeout=10_000)
        shot(page, "busy-quiet")
        assert r.hget(Keys().process(identity), "quiet") == b"true"

        # Live off: it stays off on the next page too
        page.click("#live-toggle")
        go(page, "/queues")
        assert page.get_attribute("#live-toggle", "aria-pressed") == "false"

        # ... and the dashboard's graph still draws, as Sidekiq's does: with Live off only
        # the counters and the graph poll
        go(page, "/")
        assert page.get_attribute("#live-toggle", "aria-pressed") == "false"
        page.wait_for_selector("#live-graph svg polyline.processed", state="attached",
                               timeout=10_000)
        r.incrby("stat:processed", 5)  # the worker is quiet now; the counter is what polls
        expect(page.locator("[data-stat=processed]")).to_have_text("80", timeout=10_000)
    only_local(browser_context.requests)



def test_periodic_page_pauses_an_entry_the_workers_run(page: Any, r: redis.Redis,
                                                        redis_url: str, config: Config) -> None:
    # Given a worker running a per-second periodic entry (tests/app_periodic.py)
    with WorkerProcess(redis_url, "-c", "2", require="tests.app_periodic"):
        wait_for(lambda: r.llen("test:ticks") >= 2, timeout=20, message="two ticks")
        go(page, "/periodic")
        row = page.locator("table.periodic tbody tr", has_text="every-second")
        assert "* * * * * *" in row.inner_text() and "periodic.Tick" in row.inner_text()
        assert "Leader:" in page.inner_text("main")
        shot(page, "periodic")
        # When Pause is clicked
        row.get_by_role("button", name="Pause").click()
        page.wait_for_url("**/periodic?done=periodic-pause&n=1")
        # Then the entry is shown paused and its ticks stop
        assert "paused" in page.locator("table.periodic tbody tr").inner_text()
        paused_at = r.llen("test:ticks")
        with pytest.raises(AssertionError):  # polls for 3 s: no second tick while paused
            wait_for(lambda: r.llen("test:ticks") > paused_at + 1, timeout=3,
                     message="no more ticks while paused")
        page.get_by_role("button", name="Unpause").click()
        page.wait_for_url("**/periodic?done=periodic-unpause&n=1")
        wait_for(lambda: r.llen("test:ticks") > paused_at + 1, timeout=10,
                 message="ticks again after unpausing")
        # And the Busy page marks the leader
        go(page, "/busy")
        assert page.locator("a.badge", has_text="periodic leader").count() == 1
        page.set_viewport_size(PHONE)
        go(page, "/periodic")
        overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 1, f"/periodic is wider than a phone by {overflow}px"
        page.set_viewport_size(LAPTOP)


def test_metrics_pages_chart_a_class_with_its_deploy_marks(page: Any, r: redis.Redis,
                                                            config: Config) -> None:
    from kiqpy.api import mark_deploy
    from kiqpy.log import get_logger
    from kiqpy.server.metrics import MetricsWriter, Recorder

    # Given an hour of metrics: more and slower invoices after a deploy
    keys, now = Keys(), int(time.time())
    for back in range(60):
        minute = now // 60 - back
        runs = 20 + (40 if back < 20 else 0)
        r.hset(keys.metrics(minute), mapping={"InvoiceJob|p": runs, "InvoiceJob|ms": runs * 7,
                                              "InvoiceJob|h3": runs, "MailJob|p": 5,
                                              "MailJob|ms": 900, "MailJob|h8": 5})
    mark_deploy("v7: invoices in bulk", config, r, at=now - 20 * 60)
    recorder = Recorder()
    recorder.record("InvoiceJob", 1.5, failed=True)
    MetricsWriter(config, r, keys, [recorder], get_logger()).flush()
    # When the Metrics page and the class's page are opened
    go(page, "/metrics")
    assert page.locator("table.metrics td", has_text="InvoiceJob").count() == 1
    assert page.locator("svg.metrics-chart polyline").count() == 4  # 2 classes x 2 charts
    shot(page, "metrics")
    page.click("table.metrics a >> text=InvoiceJob")
    # Then the charts and the histogram are drawn, with the deploy marked
    assert page.locator("svg.metrics-chart polyline").count() == 2
    assert page.locator("svg.metrics-chart line.deploy").count() == 2
    assert "v7: invoices in bulk" in page.inner_text("main")
    shot(page, "metrics-class")
    page.set_viewport_size(PHONE)
    overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
    assert overflow <= 1, f"the metrics page is wider than a phone by {overflow}px"
    page.set_viewport_size(LAPTOP)


def test_limits_page_and_pausing_a_queue_from_its_buttons(page: Any, r: redis.Redis,
                                                          redis_url: str, config: Config) -> None:
    from tests import app_limits

    # Given a worker running a job that holds its class's concurrency slot, and a queue
    # that has run one job
    kiqpy.configure(redis_url=redis_url)
    paced = app_limits.Paced.set(queue="paced")
    paced.perform_async(0, 0)
    app_limits.LongLimited.perform_async()
    with WorkerProcess(redis_url, "-c", "3", "-q", "default", "-q", "paced",
                       require="tests.app_limits") as worker:
        wait_for(lambda: r.exists("test:long_started") and r.llen("test:paced_done") == 1,
                 timeout=30, message="the limited job to start and the first paced job to run")
        # When the Limits page is opened, Then it shows the class's slot in use
        go(page, "/limits")
        row = page.locator("table.limits tbody tr", has_text="class:LongLimited")
        assert "concurrent" in row.inner_text()
        assert row.locator("td[data-label='In use']").inner_text().strip() == "1"
        shot(page, "limits")
        # When the paced queue is paused from the Queues page
        go(page, "/queues")
        page.locator("table.queues tbody tr", has_text="paced").get_by_role(
            "button", name="Pause").click()
        page.wait_for_url("**/queues?done=queue-pause&n=1")
        assert "paused" in page.locator("table.queues tbody tr", has_text="paced").inner_text()
        shot(page, "queues-paused")
        # Then, once the worker knows (within the 2 s the pause promises), jobs pushed to it
        # wait there
        wait_for(lambda: any(e.get("event") == "queue paused" and e.get("queue") == "paced"
                             for e in log_events(worker)), timeout=5,
                 message="the worker to log that the queue is paused")
        for n in (1, 2, 3):
            paced.perform_async(n, 0)
        with pytest.raises(AssertionError):  # polls for 3 s: none runs while paused
            wait_for(lambda: r.llen("test:paced_done") > 1, timeout=3,
                     message="no paced job while paused")
        assert r.llen("queue:paced") == 3
        # and after Unpause on the queue's own page they all run, once each
        go(page, "/queues/paced")
        page.get_by_role("button", name="Unpause").click()
        page.wait_for_url("**/queues/paced?done=queue-unpause&n=1")
        wait_for(lambda: r.llen("test:paced_done") == 4, timeout=20,
                 message="the paced jobs to run after unpausing")
        assert sorted(r.lrange("test:paced_done", 0, -1)) == [b"paced:0", b"paced:1",
                                                               b"paced:2", b"paced:3"]
        r.set("test:long_release", 1)
        wait_for(lambda: r.llen("test:long_done") == 1, timeout=20, message="the long job")


def test_batches_pages_show_progress_steps_and_link_failed_jobs(page: Any, r: redis.Redis,
                                                                 redis_url: str,
                                                                 config: Config) -> None:
    from tests import app_batches as app

    # Given a batch with a job that dies, and a workflow with a failing branch, run by a worker
    batch = kiqpy.Batch(description="Import 1234")
    batch.on("complete", app.Callback, {"import_id": 1234})
    with batch.jobs():
        app.Row.perform_bulk([[n] for n in range(5)])
        dead_jid = app.Dies.perform_async()
    flow = kiqpy.Workflow("nightly")
    flow.add("extract", app.Step, args=["extract"])
    flow.add("archive", app.Dies, deps=["extract"])
    flow.add("notify", app.Step, args=["notify"], deps=["archive"])
    flow.run()
    with WorkerProcess(redis_url, "-c", "3", require="tests.app_batches") as worker:
        wait_for(lambda: r.llen("test:callbacks") == 1 and r.zcard("dead") == 2, 30,
                 message="the batch to complete and two jobs to die")
        worker.terminate()
        worker.process.wait(30)
    # When the Batches page is opened, and the batch
    go(page, "/batches")
    assert page.locator("table.batches tbody tr").count() == 2
    assert "Import 1234" in page.inner_text("table.batches")
    shot(page, "batches")
    page.click(f"a[href$='/batches/{batch.bid}']")
    main = page.inner_text("main")
    assert "5 of 6 succeeded" in main and "RuntimeError: this job dies" in main
    shot(page, "batch")
    # Then its failed job links to the dead set, filtered to that job
    page.click(f"table.failures a:has-text('{dead_jid}')")
    assert page.url.endswith(f"/dead?filter={dead_jid}")
    assert page.locator("table.entries tbody tr").count() == 1
    # And a workflow shows each step's state
    go(page, f"/batches/{flow.bid}")
    steps = page.inner_text("table.steps")
    assert "extract" in steps and "succeeded" in steps and "dead" in steps
    assert "cancelled" in steps
    shot(page, "workflow")
