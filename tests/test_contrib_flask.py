"""kiqpy.contrib.flask: app.config["KIQPY_*"], the dashboard blueprint behind a
login_required-style decorator (Flask's test client), jobs in the app context with a real
``flask kiqpy`` worker, and ``flask kiqpy stats``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import kiqpy
from kiqpy.config import Config
from kiqpy.keys import Keys
from tests.conftest import wait_for
from tests.workers import FAST, ROOT, LoggedProcess

flask = pytest.importorskip("flask")

KEYS = Keys("flaskshop")


@pytest.fixture
def app(r: redis.Redis, redis_url: str) -> Iterator[Any]:
    from tests.flask_site import create_app

    yield create_app(redis_url)
    kiqpy.configure(Config(redis_url=redis_url))


def flask_cli(redis_url: str, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
    env.pop("KIQPY_REDIS_URL", None)
    return [sys.executable, "-m", "flask", "--app", "tests.flask_site:create_app()", *args], env


def test_config_comes_from_app_config(app: Any, redis_url: str) -> None:
    config = kiqpy.default_config()
    assert config.redis_url == redis_url and config.namespace == "flaskshop"
    from kiqpy.contrib.flask import AppContext

    assert AppContext in config.server_middleware


def test_unknown_or_bad_kiqpy_keys_are_named(redis_url: str) -> None:
    from kiqpy.contrib.flask import Kiqpy

    for key, value, words in [("KIQPY_REDIS_URLL", "redis://x", "KIQPY_REDIS_URLL"),
                              ("KIQPY_QUEUES", "default", "KIQPY_QUEUES"),
                              ("KIQPY_CONCURRENCY", 0, "concurrency")]:
        bad = flask.Flask("bad")
        bad.config[key] = value
        with pytest.raises(kiqpy.ConfigurationError, match=words):
            Kiqpy().init_app(bad)
    kiqpy.configure(Config(redis_url=redis_url))


def test_dashboard_behind_login_required(app: Any) -> None:
    from tests.flask_site import Greet

    Greet.perform_async("ann")
    client = app.test_client()
    page = client.get("/kiqpy/")
    assert page.status_code == 302 and page.headers["Location"] == "/login?next=/kiqpy/"
    client.get("/login")
    page = client.get("/kiqpy/queues")
    assert page.status_code == 200
    assert b'href="/kiqpy/busy"' in page.data and b"flaskshop" not in page.data[:0]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert client.get("/kiqpy").status_code == 200  # the mount point itself
    # POSTs carry kiqpy's own CSRF token
    token = client.get_cookie("kiqpy_csrf", path="/kiqpy")
    assert token is not None
    refused = client.post("/kiqpy/queues/default", data={"op": "clear"},
                          headers={"Sec-Fetch-Site": "same-origin"})
    assert refused.status_code == 403
    done = client.post("/kiqpy/queues/default", data={"op": "clear", "csrf": token.value},
                       headers={"Sec-Fetch-Site": "same-origin"})
    assert done.status_code == 303 and done.headers["Location"].startswith("/kiqpy/queues")
    client_redis = redis.Redis.from_url(kiqpy.default_config().redis_url)
    assert client_redis.llen(KEYS.queue("default")) == 0


def test_dashboard_prefix_and_none(r: redis.Redis, redis_url: str) -> None:
    from kiqpy.contrib.flask import Kiqpy

    elsewhere = flask.Flask("elsewhere")
    elsewhere.config.update(KIQPY_REDIS_URL=redis_url, KIQPY_DASHBOARD_PREFIX="/ops/jobs/")
    Kiqpy(elsewhere)
    page = elsewhere.test_client().get("/ops/jobs/queues")
    assert page.status_code == 200 and b'href="/ops/jobs/busy"' in page.data
    hidden = flask.Flask("hidden")
    hidden.config.update(KIQPY_REDIS_URL=redis_url, KIQPY_DASHBOARD_PREFIX=None)
    Kiqpy(hidden)
    assert hidden.test_client().get("/kiqpy/").status_code == 404
    kiqpy.configure(Config(redis_url=redis_url))


@pytest.mark.slow
def test_jobs_run_in_the_app_context_with_a_real_worker(app: Any, r: redis.Redis,
                                                        redis_url: str, tmp_path: Path) -> None:
    from tests.flask_site import Greet

    argv, env = flask_cli(redis_url, "kiqpy", "--log-format", "json", "-c", "2", *FAST)
    with LoggedProcess(argv, ROOT, env, tmp_path / "worker.log") as worker:
        Greet.perform_async("bob")
        wait_for(lambda: r.get("greeted:bob") or worker.process.poll() is not None,
                 timeout=30)
        assert r.get("greeted:bob") == b"hello bob", worker.log()
    Greet.perform_async("cy")
    argv, env = flask_cli(redis_url, "kiqpy", "stats", "--json")
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    # flask kiqpy stats reads the app's namespace, with no flag.
    assert [(q["name"], q["size"]) for q in data["queues"]] == [("default", 1)]
