"""The dashboard as a native ASGI application (Starlette, FastAPI, Django's ASGI, any ASGI
server), with no WSGI adapter in between::

    from kiqpy.web import create_asgi_app
    app.mount("/kiqpy", create_asgi_app())      # FastAPI / Starlette

Each HTTP request is turned into the environ the dashboard's routing reads, and the
dashboard's views run in a worker thread (``asyncio.to_thread``): their Redis calls block, and
the event loop must not. The same views, templates and security checks as the WSGI app serve
the page. The mount's ``root_path`` is the URL base of the links (as SCRIPT_NAME is for WSGI).
Runs on asyncio (uvicorn, hypercorn's asyncio worker, Starlette's TestClient).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from kiqpy.web.app import Dashboard
from kiqpy.web.http import MAX_BODY

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class AsgiDashboard:
    """An ASGI 3 callable around a :class:`~kiqpy.web.app.Dashboard`: HTTP requests (and the
    lifespan protocol, so it can be the server's top-level app); websockets are refused."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard

    @property
    def prefix(self) -> str:
        return self.dashboard.prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1003})
        else:
            raise ValueError(f"kiqpy's dashboard serves HTTP, not ASGI {kind!r} scopes")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        environ = environ_from_scope(scope, body)
        response = await asyncio.to_thread(self.dashboard.serve, environ)
        await send({"type": "http.response.start", "status": response.status,
                    "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                                for k, v in response.headers]})
        await send({"type": "http.response.body", "body": response.body})


async def _read_body(receive: Receive) -> bytes:
    """The request body, up to one byte past MAX_BODY (enough for the dashboard's 413)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if size <= MAX_BODY:
            chunks.append(chunk[:MAX_BODY + 1 - size])
            size += len(chunks[-1])
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def environ_from_scope(scope: Scope, body: bytes) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of an ASGI HTTP scope, for the dashboard's routing."""
    root = str(scope.get("root_path", "") or "")
    path = str(scope.get("path", "") or "/")
    # Starlette's Mount and uvicorn's --root-path keep the mount in "path" (ASGI spec since
    # 2023); older servers pass only the part below it. Either way, PATH_INFO is below root.
    if root and (path == root or path.startswith(root.rstrip("/") + "/")):
        path = path[len(root.rstrip("/")):]
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": str(scope.get("method", "GET")).upper(),
        "SCRIPT_NAME": root.rstrip("/"),
        # PEP 3333: the URL's bytes as latin-1 text; the dashboard decodes them as UTF-8.
        "PATH_INFO": (path or "/").encode("utf-8").decode("latin-1"),
        "QUERY_STRING": bytes(scope.get("query_string", b"")).decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]) if server[1] is not None else "",
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "wsgi.url_scheme": str(scope.get("scheme", "http")),
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
    }
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
        elif name == "CONTENT_LENGTH":
            continue  # the body read above is what counts
        else:
            key = "HTTP_" + name
            environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ
