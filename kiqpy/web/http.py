"""The little HTTP the dashboard needs, on plain WSGI: a parsed :class:`Request`, a
:class:`Response`, and :class:`HTTPError` for the clear 4xx pages.

No framework, so the dashboard mounts anywhere a WSGI callable does and adds no dependency
beyond Jinja2. Query strings and forms are read as UTF-8 text, except where a value names a
Redis key, which may be any bytes (:meth:`Request.arg_bytes`).
"""

from __future__ import annotations

import json
import math
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote_to_bytes

# Forms here hold a few hundred checkbox values at most; anything bigger is not ours.
MAX_BODY = 1024 * 1024
MAX_NUMBER = 1_000_000_000
MAX_CURSOR = 2**64 - 1  # SCAN-family cursors are unsigned 64-bit


class HTTPError(Exception):
    """Stops a request with ``status`` and a message the person reading the page can act on."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Request:
    """One WSGI request: method, path (below the mount point), query, form and cookies."""

    def __init__(self, environ: dict[str, Any], path: str) -> None:
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        self.path = path
        self.query_string = str(environ.get("QUERY_STRING", ""))
        self.query = parse_qs(self.query_string, keep_blank_values=True)
        self.cookies = _cookies(str(environ.get("HTTP_COOKIE", "")))
        self._form: dict[str, list[str]] | None = None

    def header(self, name: str) -> str | None:
        """A request header by its HTTP name (``Sec-Fetch-Site``)."""
        value = self.environ.get("HTTP_" + name.upper().replace("-", "_"))
        return None if value is None else str(value)

    def arg(self, name: str, default: str = "") -> str:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def arg_bytes(self, name: str) -> bytes | None:
        """A query parameter as the exact bytes sent (Redis key names need not be UTF-8)."""
        for raw in self.query_string.split("&"):
            key, _, value = raw.partition("=")
            if unquote_to_bytes(key.replace("+", " ")) == name.encode():
                return unquote_to_bytes(value.replace("+", " "))
        return None

    def int_arg(self, name: str, default: int, low: int = 1, high: int = MAX_NUMBER) -> int:
        """A whole-number query parameter within bounds; anything else is a 400. The default
        upper bound keeps page arithmetic inside what Redis takes as an index."""
        raw = self.arg(name)
        if raw == "":
            return default
        whole = raw.isascii() and raw.isdigit() and len(raw) <= 20
        if not whole or not low <= int(raw) <= high:
            bounds = f"from {low} to {high}"
            raise HTTPError(400, f"{name} must be a whole number {bounds}, got {raw[:40]!r}")
        return int(raw)

    @property
    def form(self) -> dict[str, list[str]]:
        """The url-encoded body of a POST (read once)."""
        if self._form is None:
            self._form = _read_form(self.environ)
        return self._form

    def field(self, name: str, default: str = "") -> str:
        values = self.form.get(name)
        return values[0] if values else default


def _cookies(header: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return {}
    return {key: morsel.value for key, morsel in jar.items()}


def _read_form(environ: dict[str, Any]) -> dict[str, list[str]]:
    kind = str(environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPError(415, "changes are sent as an HTML form (application/x-www-form-urlencoded)")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HTTPError(400, "bad Content-Length") from None
    if length > MAX_BODY:
        raise HTTPError(413, "the form is too large")
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    form: dict[str, list[str]] = {}
    for key, value in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
        form.setdefault(key, []).append(value)
    return form


class Response:
    """Status, headers and a body (bytes) for ``start_response``."""

    def __init__(self, body: bytes | str = b"", status: int = 200,
                 content_type: str = "text/html; charset=utf-8",
                 headers: list[tuple[str, str]] | None = None) -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.status = status
        self.headers: list[tuple[str, str]] = [("Content-Type", content_type), *(headers or [])]

    @property
    def status_line(self) -> str:
        return f"{self.status} {HTTPStatus(self.status).phrase}"

    def set_header(self, name: str, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        self.headers.append((name, value))

    def has_header(self, name: str) -> bool:
        return any(k.lower() == name.lower() for k, _ in self.headers)


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` as JSON; a float that JSON cannot hold (inf, nan: an odd value in Redis) is
    sent as null, never as the ``Infinity`` that JSON parsers refuse."""
    return Response(json.dumps(_finite(data), sort_keys=True, allow_nan=False), status,
                    "application/json")


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(value) for value in data]
    return data


def redirect(location: str) -> Response:
    """303 See Other: after a POST, the browser GETs ``location`` (Post/Redirect/Get)."""
    return Response(b"", 303, headers=[("Location", location)])
