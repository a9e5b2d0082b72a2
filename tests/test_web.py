"""The dashboard at the request level (kiqpy/web): every page with real data in a real Redis,
JSON endpoints, escaping, error pages, the cross-site rule, basic auth, mounting, and
`kiqpy web`. The changes each button makes are in tests/test_web_actions.py."""

from __future__ import annotations

import datetime as _dt
import os
import re
import subprocess
import sys
import time

import pytest
import redis

import kiqpy
from kiqpy.config import Config
from kiqpy.errors import ConfigurationError
from kiqpy.keys import Keys
from kiqpy.web import create_app
from tests.conftest import wait_for
from tests.redis_server import free_port
from tests.web_helpers import (
    XSS_ATTR,
    XSS_SCRIPT,
    WebClient,
    add,
    client_for,
    entry_ids,
    failed,
    job,
    push,
    text,
)
from tests.workers import ROOT, WorkerProcess, identity_of

PAGES = ["/", "/?days=1", "/?days=180", "/busy", "/queues", "/queues/default", "/retries",
         "/scheduled", "/dead", "/keys", "/keys/view?key=queue%3Adefault", "/retries?filter=it"]


@pytest.fixture
def web(config: Config) -> WebClient:
    return client_for(config)


@pytest.fixture
def data(r: redis.Redis, config: Config) -> dict[str, bytes]:
    """One of everything: queued, scheduled, retrying, dead and malformed jobs."""
    return {
        "queued": push(r, job(args=["queued-arg", 42])),
        "scheduled": add(r, "schedule", job(args=["later"])),
        "retry": add(r, "retry", failed(args=["retrying"])),
        "dead": add(r, "dead", failed(args=["gone"]), time.time()),
        "garbage": add(r, "retry", b"\xc1 not a job", time.time() + 60),
    }


# -- pages ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_real_data(web: WebClient, data: dict, path: str) -> None:
    response = web.get(path)

    assert response.status_code == 200, text(response)[:2000]
    assert response.content_type == "text/html; charset=utf-8"
    assert "<main" in text(response)


def test_pages_show_the_jobs_and_their_fields(web: WebClient, data: dict) -> None:
    assert "queued-arg" in text(web.get("/queues/default"))
    assert "later" in text(web.get("/scheduled"))
    retries = text(web.get("/retries"))
    assert "retrying" in retries and "ValueError" in retries and "it broke" in retries
    assert "not a valid msgpack payload" in retries  # the malformed entry is listed, readable
    assert "gone" in text(web.get("/dead"))
    queues = text(web.get("/queues"))
    assert 'href="/queues/default"' in queues


def test_summary_and_stats_json_count_the_same_things(web: WebClient, data: dict,
                                                      r: redis.Redis) -> None:
    r.set("stat:processed", 1234)
    r.set("stat:failed", 5)

    stats = web.get("/stats").get_json()

    assert stats["kiqpy"] == {"processed": 1234, "failed": 5, "busy": 0, "processes": 0,
                              "enqueued": 1, "scheduled": 1, "retries": 2, "dead": 1,
                              "default_latency": stats["kiqpy"]["default_latency"]}
    assert stats["redis"]["redis_version"]
    assert set(stats["redis"]) >= {"uptime_in_days", "connected_clients", "used_memory_human"}
    assert web.get("/stats/queues").get_json() == {"default": 1}
    page = text(web.get("/"))
    assert 'data-stat="processed">1,234<' in page


def test_dashboard_history_and_redis_facts(web: WebClient, r: redis.Redis, config: Config
                                           ) -> None:
    today = _dt.datetime.now(_dt.timezone.utc).date()
    r.set(Keys().stat("processed", today), 77)
    r.set(Keys().stat("failed", today - _dt.timedelta(days=2)), 3)

    page = text(web.get("/?days=7"))

    chart = re.search(r'data-chart="([^"]*)"', page)
    assert chart is not None
    assert "&#34;processed&#34;: [0, 0, 0, 0, 0, 0, 77]" in chart.group(1)
    assert f"<td>{today.isoformat()}</td><td class=\"num\">77</td>" in page
    assert "Redis" in page and "Connected clients" in page and "Memory used" in page


@pytest.mark.parametrize("days", ["0", "181", "abc", "1.5", "²", "9" * 50])
def test_bad_history_days_give_a_400_page(web: WebClient, days: str) -> None:
    response = web.get(f"/?days={days}")

    assert response.status_code == 400
    assert "days must be a whole number from 1 to 180" in text(response)


def test_health_is_cheap_and_says_when_redis_is_away(web: WebClient, closed_url: str) -> None:
    assert web.get("/health").get_json()["status"] == "ok"

    away = client_for(Config(redis_url=closed_url, socket_timeout=0.5))
    response = away.get("/health")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"
    page = away.get("/queues")
    assert page.status_code == 503
    assert "cannot reach Redis" in text(page)


# -- busy, with a real worker --------------------------------------------------------------------
BUSY_ONE = re.compile(r'data-label="Threads">3</td>\s*<td class="num" data-label="Busy">1</td>')


def test_busy_shows_a_live_process_and_its_running_job(web: WebClient, r: redis.Redis,
                                                       redis_url: str, config: Config) -> None:
    with WorkerProcess(redis_url, "-c", "3", "-q", "default", "-g", "web-test") as worker:
        identity = identity_of(worker)
        kiqpy.enqueue("Sleepy", "busy-tag", 30)
        wait_for(lambda: r.get("test:started:busy-tag"), message="the job to start")
        # The process row (busy count) and the running jobs are two reads of two hashes; a
        # heartbeat can land between them, so wait for a page on which both are up to date.
        page = wait_for(lambda: (p := text(web.get("/busy"))) and "Sleepy" in p
                        and BUSY_ONE.search(p) and p,
                        message="the running job and a busy count of 1 on /busy")

    assert isinstance(page, str)
    assert identity in page and f":{worker.pid}" in page and "web-test" in page
    assert '&#34;busy-tag&#34;, 30' in page or '"busy-tag", 30' in page
    assert BUSY_ONE.search(page)
    assert "MB" in page and "running" in page


# -- escaping ------------------------------------------------------------------------------------
def test_values_from_redis_are_shown_as_text_everywhere(web: WebClient, r: redis.Redis) -> None:
    evil = [XSS_SCRIPT, XSS_ATTR, {"k": XSS_ATTR}]
    push(r, job(klass=XSS_SCRIPT, args=evil), queue=XSS_ATTR)
    push(r, job(args=evil))
    add(r, "retry", failed(args=evil, error_message=XSS_SCRIPT, error_class=XSS_ATTR))
    add(r, "dead", failed(args=evil))
    r.set(f"{XSS_SCRIPT}key", XSS_ATTR)

    retry_page = text(web.get("/retries"))
    pages = {
        "/queues": None, "/queues/default": None, "/retries": retry_page, "/dead": None,
        f"/retries/{entry_ids(retry_page, 'retries')[0]}": None, "/keys": None,
        "/keys/view?key=queue%3Adefault": None, "/keys/view?key=retry": None,
        "/keys/view?key=%3Cscript%3Ealert('xss')%3C%2Fscript%3Ekey": None,
    }
    for path in pages:
        response = web.get(path)
        body = text(response)
        assert response.status_code == 200, (path, body[:500])
        assert "<script>alert" not in body, path
        assert "<img src=x" not in body, path
        assert "&lt;script&gt;" in body or "&lt;img src=x onerror=alert(1)&gt;" in body, path


# -- security headers, no third parties ----------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/retries", "/nope", "/static/app.js", "/stats",
                                  "/health", "/queues/nope"])
def test_every_response_has_the_security_headers(web: WebClient, path: str) -> None:
    headers = web.get(path).headers

    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_pages_load_nothing_from_elsewhere_and_run_no_inline_script(web: WebClient,
                                                                    data: dict) -> None:
    for path in PAGES:
        body = text(web.get(path))
        for attr in re.findall(r'(?:src|href|action|formaction)="([^"]*)"', body):
            assert attr.startswith(("/", "?", "#")), (path, attr)
        assert not re.search(r"<script(?![^>]*\bsrc=)", body), path
        assert not re.search(r"\son[a-z]+=", body), path  # no inline event handlers
        assert " style=" not in body, path
    js = text(web.get("/static/app.js")) + text(web.get("/static/app.css"))
    assert "http://" not in js.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in js and "@import" not in js


def test_static_files_are_served_by_name_only(web: WebClient) -> None:
    assert web.get("/static/app.css").content_type == "text/css; charset=utf-8"
    assert web.get("/static/nope.js").status_code == 404
    assert web.get("/static/..%2F__init__.py").status_code == 404
    assert web.get("/static/../app.py").status_code == 404


# -- the cross-site rule -------------------------------------------------------------------------
def test_the_csrf_cookie_is_http_only_and_same_site(web: WebClient) -> None:
    cookie = web.get("/").headers["Set-Cookie"]

    assert cookie.startswith("kiqpy_csrf=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie


@pytest.mark.parametrize("case", [
    {"token": None},
    {"token": "x" * 43},
    {"origin": "http://evil.example"},
    {"origin": "null"},
    {"site": "cross-site"},
    {"site": "same-site"},
])
def test_a_post_from_elsewhere_or_without_the_token_is_refused(web: WebClient, r: redis.Redis,
                                                               data: dict, case: dict) -> None:
    response = web.post("/queues/default", {"op": "clear"}, **case)

    assert response.status_code == 403
    assert "refused" in text(response) or "security token" in text(response)
    assert r.llen("queue:default") == 1


def test_a_post_without_origin_headers_but_with_the_token_passes(web: WebClient,
                                                                 r: redis.Redis,
                                                                 data: dict) -> None:
    # Older browsers and scripts send neither header; the token alone then decides.
    response = web.post("/queues/default", {"op": "clear"}, origin=None, site=None)

    assert response.status_code == 303
    assert r.llen("queue:default") == 0


def test_get_never_changes_anything(web: WebClient, r: redis.Redis, data: dict) -> None:
    entry = entry_ids(text(web.get("/retries")), "retries")[0]
    for path in ["/queues/default?op=clear", f"/retries/{entry}?op=delete",
                 "/retries?op=delete&all=1", "/busy?op=stop&all=1", "/dead?op=delete&all=1"]:
        assert web.get(path).status_code in (200, 404)

    assert r.llen("queue:default") == 1
    assert r.zcard("retry") == 2 and r.zcard("dead") == 1


def test_a_post_must_be_a_form(web: WebClient, data: dict) -> None:
    response = web.client.post("/queues/default", data='{"op": "clear"}',
                               content_type="application/json",
                               headers={"Origin": "http://localhost"})

    assert response.status_code == 415


# -- basic auth ----------------------------------------------------------------------------------
def test_basic_auth_guards_every_page_but_health(config: Config) -> None:
    web = client_for(config, basic_auth="admin:s3cret")

    assert web.get("/").status_code == 401
    assert "Basic" in web.get("/").headers["WWW-Authenticate"]
    assert web.get("/", auth=("admin", "wrong")).status_code == 401
    assert web.get("/static/app.js").status_code == 401
    assert web.get("/", auth=("admin", "s3cret")).status_code == 200
    assert web.get("/health").status_code == 200


@pytest.mark.parametrize("bad", ["nopassword", ":x", "user:"])
def test_a_bad_basic_auth_setting_is_refused_when_the_app_is_built(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="basic auth"):
        create_app(basic_auth=bad)


# -- error pages ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path, status, message", [
    ("/nope", 404, "there is no page at /nope"),
    ("/queues/nope", 404, "there is no queue named &#39;nope&#39;"),
    ("/queues/default?page=0", 400, "page must be a whole number"),
    ("/queues/default?page=99", 404, "page 99 does not exist"),
    ("/retries?page=-1", 400, "page must be a whole number"),
    ("/retries?page=2", 404, "page 2 does not exist"),
    ("/dead?page=x", 400, "page must be a whole number"),
    ("/retries/123.0-abc", 404, "that job is no longer in Retries"),
    ("/retries/not-a-score", 404, "does not name an entry of Retries"),
    ("/retries/nan-abc", 404, "does not name an entry of Retries"),
    ("/dead/inf-abc", 404, "no longer in Dead"),  # inf is a score Redis holds
    ("/retries?page=99999999999999999999", 400, "page must be a whole number from 1 to"),
    ("/queues/default?page=1000000001", 400, "page must be a whole number from 1 to"),
    ("/scheduled/%00", 404, "does not name an entry"),
    ("/keys?cursor=-5", 400, "cursor must be a whole number"),
    ("/keys/view", 400, "which key?"),
    ("/keys/view?key=nothing-here", 404, "there is no key"),
    ("/keys/view?key=queue%3Adefault&page=50", 404, "page 50 does not exist"),
])
def test_bad_input_gives_a_clear_page_never_a_500(web: WebClient, data: dict, path: str,
                                                  status: int, message: str) -> None:
    response = web.get(path)

    assert response.status_code == status, text(response)[:1000]
    assert message in text(response)


def test_a_wrong_method_is_a_405(web: WebClient) -> None:
    assert web.client.delete("/queues/default").status_code == 405
    assert web.post("/").status_code == 405


# -- mounting ------------------------------------------------------------------------------------
def test_prefix_mounts_the_app_below_a_path(config: Config, data: dict) -> None:
    web = client_for(config, prefix="/kiqpy/")

    page = text(web.get("/kiqpy/queues"))
    assert 'href="/kiqpy/queues/default"' in page
    assert 'src="/kiqpy/static/app.js' in page
    assert web.get("/kiqpy").status_code == 200
    assert web.get("/queues").status_code == 404
    assert "Path=/kiqpy;" in client_for(config, prefix="/kiqpy").get("/kiqpy/").headers[
        "Set-Cookie"]


def test_a_dispatcher_that_sets_script_name_is_followed(config: Config, r: redis.Redis,
                                                        data: dict) -> None:
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    def host_app(environ, start_response):  # the application the dashboard is mounted in
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"host"]

    web = WebClient(DispatcherMiddleware(host_app, {"/admin/jobs": create_app(config)}),
                    cookie_path="/admin/jobs")

    assert 'href="/admin/jobs/queues/default"' in text(web.get("/admin/jobs/queues"))
    assert text(web.get("/elsewhere")) == "host"
    response = web.post("/admin/jobs/queues/default", {"op": "clear"})
    assert response.headers["Location"] == "/admin/jobs/queues?done=clear&n=1"
    assert r.llen("queue:default") == 0


# -- kiqpy web -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_kiqpy_web_serves_the_dashboard_with_waitress(redis_url: str, r: redis.Redis) -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "KIQPY_WEB_AUTH": "admin:pw"}
    server = subprocess.Popen([sys.executable, "-m", "kiqpy.cli", "web", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        health = wait_for(lambda: _fetch(base + "/health"), message="kiqpy web to answer")
        assert health == 200
        assert _fetch(base + "/") == 401
        assert _fetch(base + "/", auth=("admin", "pw")) == 200
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0].decode()
    assert f"http://127.0.0.1:{port}/" in output


def _fetch(url: str, auth: tuple[str, str] | None = None) -> int | None:
    import base64
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization",
                           "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


BLOCK_WEB_EXTRA = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("jinja2", "waitress", "markupsafe"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
import kiqpy, kiqpy.cli, kiqpy.web
from click.testing import CliRunner
try:
    kiqpy.web.create_app()
except kiqpy.ConfigurationError as exc:
    print("create_app:", exc)
print("cli:", CliRunner().invoke(kiqpy.cli.main, ["web"]).output.strip())
"""


def test_kiqpy_imports_without_the_web_extra_and_says_how_to_get_it() -> None:
    done = subprocess.run([sys.executable, "-c", BLOCK_WEB_EXTRA], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert "create_app: the dashboard needs Jinja2: pip install 'kiqpy[web]'" in done.stdout
    assert "cli: Error: the dashboard needs the web extra: pip install 'kiqpy[web]'" \
        in done.stdout
