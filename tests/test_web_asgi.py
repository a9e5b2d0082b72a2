"""kiqpy.web.create_asgi_app: the dashboard as native ASGI. Starlette's TestClient on a mount
and on the app alone, and a real ASGI server (uvicorn, in a subprocess) driven by Chromium."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import kiqpy
from kiqpy.config import Config
from kiqpy.web import create_asgi_app
from tests.conftest import wait_for
from tests.redis_server import free_port
from tests.test_web_browser import browser_context, shot  # noqa: F401  (a fixture)
from tests.web_helpers import job, push
from tests.workers import ROOT, LoggedProcess, WorkerProcess

starlette = pytest.importorskip("starlette")
from starlette.applications import Starlette  # noqa: E402
from starlette.routing import Mount  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

FORM = {"Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def mounted(r: redis.Redis, config: Config) -> Iterator[TestClient]:
    app = Starlette(routes=[Mount("/kiqpy", app=create_asgi_app(config))])
    with TestClient(app, base_url="http://localhost") as client:
        yield client


def test_mounted_pages_link_below_the_mount(mounted: TestClient, r: redis.Redis) -> None:
    push(r, job("SendInvoice", [1], "mail"), "mail")
    page = mounted.get("/kiqpy/queues")
    assert page.status_code == 200
    assert 'href="/kiqpy/queues/mail"' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.cookies.get("kiqpy_csrf")
    assert mounted.get("/kiqpy/queues/mail").status_code == 200
    assert mounted.get("/kiqpy/static/app.js").headers["content-type"].startswith(
        "text/javascript")
    assert mounted.get("/kiqpy/nowhere").status_code == 404


def test_post_with_kiqpy_csrf_changes_redis(mounted: TestClient, r: redis.Redis) -> None:
    push(r, job("SendInvoice", [1], "mail"), "mail")
    mounted.get("/kiqpy/queues")
    token = mounted.cookies.get("kiqpy_csrf")
    refused = mounted.post("/kiqpy/queues/mail", data={"op": "clear"}, headers=FORM)
    assert refused.status_code == 403 and r.llen("queue:mail") == 1
    done = mounted.post("/kiqpy/queues/mail", data={"op": "clear", "csrf": token},
                        headers=FORM, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith("/kiqpy/queues")
    assert r.llen("queue:mail") == 0


def test_odd_paths_head_and_big_bodies(mounted: TestClient, r: redis.Redis) -> None:
    push(r, job("Hard", [1], "naïve/queue"), "naïve/queue")
    page = mounted.get("/kiqpy/queues/na%C3%AFve/queue")
    assert page.status_code == 200 and "naïve/queue" in page.text
    head = mounted.head("/kiqpy/queues")
    assert head.status_code == 200 and head.content == b""
    huge = mounted.post("/kiqpy/queues/default", content=b"x" * (2 * 1024 * 1024),
                        headers={**FORM, "content-type": "application/x-www-form-urlencoded"})
    assert huge.status_code == 413


def test_alone_with_prefix_basic_auth_and_lifespan(r: redis.Redis, config: Config) -> None:
    app = create_asgi_app(config, prefix="/ops", basic_auth="admin:s3cret")
    with TestClient(app) as client:  # the context manager runs the lifespan protocol
        assert client.get("/ops/").status_code == 401
        assert client.get("/ops/", auth=("admin", "s3cret")).status_code == 200
        assert client.get("/ops/health").status_code == 200
        assert client.get("/elsewhere").status_code == 404


def test_views_run_off_the_event_loop(r: redis.Redis, config: Config) -> None:
    app = create_asgi_app(config)
    threads: list[str] = []
    serve = app.dashboard.serve

    def recording(environ: dict[str, Any]) -> Any:
        threads.append(threading.current_thread().name)
        return serve(environ)

    app.dashboard.serve = recording  # type: ignore[method-assign]
    loop_thread: list[str] = []

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        loop_thread.append(threading.current_thread().name)
        await app(scope, receive, send)

    with TestClient(outer) as client:
        assert client.get("/queues").status_code == 200
    assert threads and loop_thread and threads[0] != loop_thread[-1]


# -- a real ASGI server in a browser -------------------------------------------------------------
@pytest.fixture
def uvicorn_url(redis_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
    env.pop("KIQPY_REDIS_URL", None)
    argv = [sys.executable, "-m", "uvicorn", "tests.asgi_site:app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning"]
    with LoggedProcess(argv, ROOT, env, tmp_path / "uvicorn.log") as server:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            import urllib.request

            try:
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(base + "/kiqpy/health", timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return server.process.poll() is not None
        wait_for(up, timeout=30, interval=0.1)
        assert server.process.poll() is None, server.log()
        yield base


@pytest.mark.slow
def test_browser_retries_a_job_through_uvicorn(browser_context: Any, uvicorn_url: str,  # noqa: F811
                                              r: redis.Redis, redis_url: str,
                                              config: Config) -> None:
    tab = browser_context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    with WorkerProcess(redis_url, "-c", "2", require="tests.web_jobs"):
        # Given a job that failed for real, its next try an hour away
        kiqpy.enqueue("FailsUntilFixed", "invoice-88")
        wait_for(lambda: r.zcard("retry") == 1, message="the job to fail into Retries")
        r.set("test:fixed", 1)
        response = tab.goto(uvicorn_url + "/kiqpy/retries")
        assert response is not None and response.status == 200
        row = tab.locator("table.entries tbody tr", has_text="FailsUntilFixed")
        assert "the service for invoice-88 is down" in row.inner_text()
        shot(tab, "asgi-retries")
        # When "Retry now" is clicked (a POST through uvicorn, kiqpy's CSRF token)
        row.get_by_role("button", name="Retry now").click()
        # Then the page comes back below the mount and the worker runs the job
        tab.wait_for_url("**/kiqpy/retries?done=retry&n=1")
        wait_for(lambda: r.lrange("test:ran", 0, -1) == [b"invoice-88"], timeout=15,
                 message="the retried job to run")
        # The dashboard's own pages load their script and styles under the mount
        tab.goto(uvicorn_url + "/kiqpy/")
        tab.wait_for_selector("main")
        shot(tab, "asgi-dashboard")
    tab.close()
    assert not errors, f"the page logged errors: {errors}"
    assert r.zcard("retry") == 0
