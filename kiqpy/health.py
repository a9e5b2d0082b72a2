"""Health checks: a tiny HTTP endpoint for container probes, and the `kiqpy check` logic.

``GET /health`` answers 200 while the check passes and 503 otherwise, with a one-line reason.
Bound to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any

import redis

from kiqpy.keys import Keys

Check = Callable[[], tuple[bool, str]]


def make_server(host: str, port: int, check: Check, threading_server: bool = True
                ) -> HTTPServer:
    """An HTTP server answering ``/health`` (and ``/``) with ``check()``'s verdict."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/", "/health", "/healthz"):
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

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would drown the job log

    server_class = ThreadingHTTPServer if threading_server else HTTPServer
    return server_class((host, port), Handler)


def serve_in_thread(host: str, port: int, check: Check) -> HTTPServer:
    """Serve health checks from a daemon thread (``kiqpy.health``); returns the server."""
    server = make_server(host, port, check)
    thread = threading.Thread(target=server.serve_forever, name="kiqpy.health", daemon=True)
    thread.start()
    return server


def live_processes(client: redis.Redis, keys: Keys, max_age: float | None = None
                   ) -> list[dict[str, Any]]:
    """Info of every process whose heartbeat hash exists (and, with ``max_age``, beat within
    that many seconds), with ``identity``, ``beat`` and ``quiet`` added."""
    identities = sorted(m.decode() if isinstance(m, bytes) else m
                        for m in client.smembers(keys.processes))
    pipe = client.pipeline(transaction=False)
    for identity in identities:
        pipe.hmget(keys.process(identity), "info", "beat", "quiet")
    result = []
    now = time.time()
    for identity, (info, beat, quiet) in zip(identities, pipe.execute(), strict=True):
        if info is None or beat is None:
            continue
        if max_age is not None and now - float(beat) > max_age:
            continue
        data = json.loads(info)
        data.update(identity=identity, beat=float(beat), quiet=quiet == b"true")
        result.append(data)
    return result


def check_cluster(client: redis.Redis, keys: Keys, queues: Iterable[str] = ()
                  ) -> tuple[bool, str]:
    """``kiqpy check``: Redis answers and a live, non-quiet process serves every queue."""
    client.ping()
    processes = [p for p in live_processes(client, keys) if not p["quiet"]]
    if not processes:
        return False, "no live kiqpy process"
    missing = [q for q in queues if not any(q in p.get("queues", []) for p in processes)]
    if missing:
        return False, f"no live kiqpy process serves {', '.join(missing)}"
    return True, f"{len(processes)} live process(es)"
