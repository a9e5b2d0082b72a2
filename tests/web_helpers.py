"""Helpers for the dashboard tests: a WSGI test client that knows the CSRF rule, and jobs put
straight into Redis the way workers leave them (failed, scheduled, dead, malformed)."""

from __future__ import annotations

import re
import time
from typing import Any

import redis
from werkzeug.test import Client, TestResponse

from kiqpy.keys import Keys
from kiqpy.payload import encode, new_jid, now_ms
from kiqpy.web import create_app

XSS_SCRIPT = "<script>alert('xss')</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'


class WebClient:
    """werkzeug's test client on the dashboard; :meth:`post` sends what a browser on the
    dashboard's own page sends (the token cookie and field, a same-origin Origin)."""

    def __init__(self, app: Any, cookie_path: str = "/") -> None:
        self.app = app
        self.client = Client(app)
        self.cookie_path = cookie_path

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, **kwargs)

    def token(self) -> str:
        cookie = self.client.get_cookie("kiqpy_csrf", path=self.cookie_path)
        if cookie is None:
            self.client.get(self.cookie_path.rstrip("/") + "/health")
            cookie = self.client.get_cookie("kiqpy_csrf", path=self.cookie_path)
        assert cookie is not None, "the dashboard set no CSRF cookie"
        return cookie.value

    def post(self, path: str, data: dict[str, Any] | None = None, *,
             origin: str | None = "http://localhost", site: str | None = "same-origin",
             token: str | None = "auto", **kwargs: Any) -> TestResponse:
        form = dict(data or {})
        if token == "auto":
            form["csrf"] = self.token()
        elif token is not None:
            form["csrf"] = token
        headers = {k: v for k, v in (("Origin", origin), ("Sec-Fetch-Site", site)) if v}
        return self.client.post(path, data=form, headers=headers, **kwargs)


def client_for(config: Any, **options: Any) -> WebClient:
    return WebClient(create_app(config, **options))


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def job(klass: str = "Hard", args: list[Any] | None = None, queue: str = "default",
        **fields: Any) -> dict[str, Any]:
    """A job map as a client pushes it."""
    return {"class": klass, "args": [1] if args is None else args, "queue": queue,
            "jid": new_jid(), "created_at": now_ms(), "enqueued_at": now_ms(), "retry": True,
            **fields}


def failed(klass: str = "Hard", args: list[Any] | None = None, **fields: Any
           ) -> dict[str, Any]:
    """A job map as the retrier leaves it after a failure."""
    defaults = {"error_class": "ValueError", "error_message": "it broke", "retry_count": 2,
                "failed_at": now_ms()}
    return job(klass, args, **{**defaults, **fields})


def add(r: redis.Redis, key: str, item: dict[str, Any] | bytes, score: float | None = None
        ) -> bytes:
    """ZADD one payload (a job map, encoded, or raw bytes) at ``score`` (default now + 1 h)."""
    value = item if isinstance(item, bytes) else encode(item)
    r.zadd(key, {value: time.time() + 3600 if score is None else score})
    return value


def push(r: redis.Redis, item: dict[str, Any] | bytes, queue: str = "default",
         keys: Keys | None = None) -> bytes:
    keys = keys or Keys()
    value = item if isinstance(item, bytes) else encode(item)
    r.sadd(keys.queues, queue)
    r.lpush(keys.queue(queue), value)
    return value


def entry_ids(page: str, kind: str) -> list[str]:
    """The entry ids a set listing links to, in page order (a row links to its entry from
    its time, class and error)."""
    return list(dict.fromkeys(re.findall(rf'href="/{kind}/([^"?]+)"', page)))


def form_value(page: str, name: str) -> list[str]:
    return re.findall(rf'name="{name}" value="([^"]*)"', page)
