"""Health checks: a tiny HTTP endpoint for container probes, and the `kiqpy check` logic.

``GET /health`` answers 200 while the check passes and 503 otherwise, with a one-line reason.
Bound to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import redis

from kiqpy import queues as queue_spec
from kiqpy.config import Config
from kiqpy.keys import Keys

if TYPE_CHECKING:
    from kiqpy.api import Process

Check = Callable[[], tuple[bool, str]]


def make_server(host: str, port: int, check: Check, threading_server: bool = True,
                metrics: Callable[[], bytes] | None = None) -> HTTPServer:
    """An HTTP server answering ``/health`` (and ``/``) with ``check()``'s verdict, and, given
    ``metrics``, ``/metrics`` with the Prometheus text it returns."""

    class Handler(BaseHTTPRequestHandler):
        # A client that connects and sends nothing is dropped after this many seconds; under
        # `-p` the server runs in the supervisor's own loop, which must not wait on it.
        timeout = 1.0

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/metrics" and metrics is not None:
                self._metrics()
                return
            if path not in ("/", "/health", "/healthz"):
                self.send_error(404)
                return
            try:
                ok, reason = check()
            except Exception as exc:  # a broken check is an unhealthy worker, not a crash
                ok, reason = False, f"check failed: {exc!r}"
            body = (reason + "\n").encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _metrics(self) -> None:
            assert metrics is not None
            try:
                body, code = metrics(), 200
            except Exception as exc:  # a scrape must not take the health server down
                body, code = f"metrics failed: {exc!r}\n".encode(), 503
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would drown the job log

    server_class = ThreadingHTTPServer if threading_server else HTTPServer
    return server_class((host, port), Handler)


def serve_in_thread(host: str, port: int, check: Check,
                    metrics: Callable[[], bytes] | None = None,
                    spawn: Callable[[str, Callable[[], None]], Any] | None = None
                    ) -> HTTPServer:
    """Serve health checks (and ``/metrics``, given ``metrics``) from a daemon thread
    (``kiqpy.health``, started by ``spawn``, the launcher's guarded start, when given);
    returns the server."""
    server = make_server(host, port, check, metrics=metrics)
    if spawn is not None:
        spawn("kiqpy.health", server.serve_forever)
    else:
        threading.Thread(target=server.serve_forever, name="kiqpy.health", daemon=True).start()
    return server


def prometheus(config: Config) -> Callable[[], bytes] | None:
    """The ``/metrics`` of a health port: the cluster's numbers and this process's (or, in
    multiprocess mode, every child's) registry; None without prometheus_client."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return None
    from kiqpy.api.prometheus import exposition

    return lambda: exposition(config)


def live_processes(client: redis.Redis, keys: Keys, max_age: float | None = None
                   ) -> list[Process]:
    """Processes whose heartbeat hash exists (and, with ``max_age``, that beat within that
    many seconds), read through the data API without pruning anything."""
    from kiqpy.api import ProcessSet

    # Only the key layout matters: the client is given.
    config = Config(namespace=keys.prefix[:-1], cluster=keys.cluster)
    processes = ProcessSet(config, client, prune=False)
    if max_age is None:
        return list(processes)
    now = time.time()
    return [p for p in processes if p.beat is not None and now - p.beat.timestamp() <= max_age]


def check_cluster(client: redis.Redis, keys: Keys, queues: Iterable[str] = (),
                  max_age: float | None = None) -> tuple[bool, str]:
    """``kiqpy check``: Redis answers and a live, non-quiet process (one that beat within
    ``max_age`` seconds, when given) serves every queue. ``queues`` are names or patterns as
    ``-q`` takes them (``critical:3``, ``*``, ``mail_*``, ``*,!low``); patterns stand for the
    queues Redis knows now."""
    client.ping()
    processes = [p for p in live_processes(client, keys, max_age) if not p.is_quiet]
    if not processes:
        return False, "no live kiqpy process"
    spec = queue_spec.parse(queues) if queues else ()
    known = [q.decode() for q in client.smembers(keys.queues)]  # type: ignore[union-attr]
    names = [name for name, _ in queue_spec.resolve(spec, known)]
    missing = [q for q in names if not any(q in p.queues for p in processes)]
    if missing:
        return False, f"no live kiqpy process serves {', '.join(missing)}"
    return True, f"{len(processes)} live process(es)"
