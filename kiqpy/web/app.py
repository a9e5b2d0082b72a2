"""The WSGI application: routing, security checks on the way in (basic auth, the cross-site
rule for POSTs), security headers on the way out, and error pages.

Handlers (``views*.py``) take a :class:`~kiqpy.web.context.Context` and the route's parameters
and return a :class:`~kiqpy.web.http.Response`; they raise :class:`~kiqpy.web.http.HTTPError`
for a clear 4xx page. Anything else they raise becomes a logged 500 whose page says no more
than that.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from kiqpy.api import ApiObject
from kiqpy.config import Config, default_config
from kiqpy.errors import RedisUnavailableError
from kiqpy.keys import Keys
from kiqpy.web import (
    render,
    security,
    views,
    views_batches,
    views_cancel,
    views_jobs,
    views_keys,
    views_limits,
    views_metrics,
    views_periodic,
    views_sets,
)
from kiqpy.web.context import Context
from kiqpy.web.http import HTTPError, Request, Response

log = logging.getLogger("kiqpy.web")

Handler = Callable[..., Response]
SETS = "(?P<kind>retries|scheduled|dead)"
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/", views.dashboard),
    ("GET", "/stats", views.stats),
    ("GET", "/stats/queues", views.stats_queues),
    ("GET", "/health", views.health),
    ("GET", "/busy", views.busy),
    ("GET", "/busy/job", views_jobs.running),
    ("GET", "/busy/job/raw", views_jobs.running_raw),
    ("POST", "/busy", views.busy_action),
    ("GET", "/queues", views.queues),
    # Before the queue's own page: a queue's name may hold "/" (so "<name>/jobs/<id>").
    ("GET", "/queues/(?P<name>.+)/jobs/(?P<ident>[0-9a-f]{20,24})", views_jobs.queued),
    ("GET", "/queues/(?P<name>.+)/jobs/(?P<ident>[0-9a-f]{20,24})/raw", views_jobs.queued_raw),
    ("GET", "/queues/(?P<name>.+)", views.queue),
    ("POST", "/queues/(?P<name>.+)", views.queue_action),
    ("GET", f"/{SETS}", views_sets.listing),
    ("POST", f"/{SETS}", views_sets.bulk_action),
    ("GET", f"/{SETS}/all", views_sets.confirm_matching),
    ("GET", f"/{SETS}/(?P<entry_id>[^/]+)", views_sets.entry),
    ("GET", f"/{SETS}/(?P<entry_id>[^/]+)/raw", views_sets.raw),
    ("POST", f"/{SETS}/(?P<entry_id>[^/]+)", views_sets.entry_action),
    ("POST", "/cancel", views_cancel.cancel),
    ("GET", "/metrics", views_metrics.listing),
    ("GET", "/metrics/(?P<name>.+)", views_metrics.job_class),
    ("GET", "/limits", views_limits.listing),
    ("GET", "/batches", views_batches.listing),
    ("GET", "/batches/(?P<bid>[^/]+)", views_batches.batch),
    ("GET", "/periodic", views_periodic.listing),
    ("POST", "/periodic", views_periodic.action),
    ("GET", "/keys", views_keys.listing),
    ("GET", "/keys/view", views_keys.view),
    ("POST", "/keys/view", views_keys.action),
    ("GET", "/static/(?P<name>[a-z0-9-]+\\.(?:js|css|svg))", views.static),
]


class Dashboard:
    """The dashboard as a WSGI callable; build it with :func:`kiqpy.web.create_app`."""

    def __init__(self, config: Config | None = None, prefix: str = "",
                 basic_auth: str | tuple[str, str] | None = None,
                 trust_proxy: bool = False, metrics: bool = False) -> None:
        self.config = config if config is not None else default_config()
        self.redis = ApiObject(self.config).redis
        self.keys = Keys(self.config.namespace, self.config.on_cluster)
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.auth = security.parse_basic_auth(basic_auth)
        self.trust_proxy = trust_proxy
        self.prometheus = metrics
        self.templates = render.environment()
        self.routes = [(m, re.compile(f"^{p}$"), h) for m, p, h in ROUTES]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        response = self.serve(environ)
        start_response(response.status_line, response.headers)
        return [response.body]

    def serve(self, environ: dict[str, Any]) -> Response:
        """The complete response to one request given as a WSGI environ: what the WSGI
        callable sends, and what the ASGI app (:mod:`kiqpy.web.asgi`) and the framework
        mounts (:mod:`kiqpy.contrib`) send after building an environ from their request.
        Blocking (Redis calls): an event loop runs it in a thread."""
        response = self.handle(environ)
        security.add_security_headers(response)
        response.headers.append(("Content-Length", str(len(response.body))))
        if environ.get("REQUEST_METHOD") == "HEAD":
            response.body = b""
        return response

    def handle(self, environ: dict[str, Any]) -> Response:
        split = self._split(environ)
        if split is None:
            return Response("Not found.\n", 404, "text/plain; charset=utf-8")
        base, path = split
        request = Request(environ, path)
        if self.auth and path != "/health" and not security.check_basic_auth(request, self.auth):
            return security.unauthorized()
        token, new = security.csrf_token(request)
        response = self._dispatch(Context(self, request, base, token))
        if new:
            secure = security.is_https(request, self.trust_proxy)
            response.headers.append(("Set-Cookie", security.csrf_cookie(token, base, secure)))
        return response

    def _split(self, environ: dict[str, Any]) -> tuple[str, str] | None:
        """(the URL base of the app, the path below it), or None for a path outside ``prefix``.
        A server or dispatcher that already moved the prefix into SCRIPT_NAME is recognised."""
        script = str(environ.get("SCRIPT_NAME", "")).rstrip("/")
        # PEP 3333: PATH_INFO is the URL's bytes as latin-1; the URL itself is UTF-8.
        raw = str(environ.get("PATH_INFO", "") or "/")
        path = raw.encode("latin-1", "replace").decode("utf-8", "replace")
        prefix = self.prefix
        if prefix and not script.endswith(prefix):
            if path != prefix and not path.startswith(prefix + "/"):
                return None
            script, path = script + prefix, path[len(prefix):]
        return script, path or "/"

    def _dispatch(self, ctx: Context) -> Response:
        request = ctx.request
        try:
            handler, params = self._route(request)
            if request.method == "POST":
                security.check_post(request)
            return handler(ctx, **params)
        except HTTPError as exc:
            return ctx.error(exc.status, exc.message)
        except RedisUnavailableError as exc:
            return ctx.error(503, str(exc))
        except Exception:
            log.exception("kiqpy.web: %s %s failed", request.method, request.path)
            return ctx.error(500, "Something went wrong; the server's log has the details.")

    def _route(self, request: Request) -> tuple[Handler, dict[str, str]]:
        method = "GET" if request.method == "HEAD" else request.method
        allowed = []
        for route_method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if match:
                if route_method == method:
                    return handler, match.groupdict()
                allowed.append(route_method)
        if allowed:
            raise HTTPError(405, f"{request.method} is not allowed here")
        raise HTTPError(404, f"there is no page at {request.path[:200]}")

