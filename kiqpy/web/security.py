"""What keeps the dashboard from being steered by anyone but its user.

- **Cross-site requests**: every change is a POST, and a POST passes only with (1) the
  per-session CSRF token from the ``kiqpy_csrf`` cookie repeated in the form's ``csrf`` field
  (double submit: another site can make a browser send the cookie, but cannot read it to put it
  in the form), and (2) no sign of coming from another site: ``Sec-Fetch-Site``, when sent, is
  ``same-origin``, and ``Origin``, when sent, names this host. Behind a proxy that rewrites
  ``Host``, the proxy must pass ``X-Forwarded-Host``. Only tokens of the form this module
  issues are accepted.
- **The cookie** is ``HttpOnly; SameSite=Strict``, and ``Secure`` when the request came over
  HTTPS: the server says so (``wsgi.url_scheme``), or, with ``trust_proxy``, a TLS-terminating
  proxy in front does (``X-Forwarded-Proto: https``). Trust it only behind such a proxy: a
  client reaching the app directly could send the header.
- **Basic auth**, optional: ``user:pass``, compared in constant time.
- **Headers** on every response: a strict Content-Security-Policy (scripts and styles only from
  this app, no inline script, nothing from any other host), no framing, no sniffing, no caching
  of pages.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
from urllib.parse import urlsplit

from kiqpy.errors import ConfigurationError
from kiqpy.web.http import HTTPError, Request, Response

CSRF_COOKIE = "kiqpy_csrf"
CSRF_FIELD = "csrf"
# What csrf_token issues: secrets.token_urlsafe(32), 43 URL-safe base64 characters. A POST
# whose token has any other form was not issued by us, whatever the form field repeats.
CSRF_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")

CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
])
SECURITY_HEADERS = [
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
]


def parse_basic_auth(value: str | tuple[str, str] | None) -> tuple[str, str] | None:
    """``"user:pass"`` or ``("user", "pass")`` -> the pair; None or "" -> no auth."""
    if value is None or value == "":
        return None
    if isinstance(value, tuple):
        user, password = value
    else:
        user, sep, password = value.partition(":")
        if not sep:
            raise ConfigurationError("basic auth must be given as user:password")
    if not user or not password:
        raise ConfigurationError("basic auth needs a non-empty user and password")
    return user, password


def check_basic_auth(request: Request, expected: tuple[str, str]) -> bool:
    """True when the request carries these credentials."""
    header = request.header("Authorization") or ""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, _, password = decoded.partition(":")
    # Both compared, always, so the time taken says nothing about which one was wrong.
    user_ok = hmac.compare_digest(user.encode(), expected[0].encode())
    password_ok = hmac.compare_digest(password.encode(), expected[1].encode())
    return user_ok and password_ok


def unauthorized() -> Response:
    return Response("Authentication required.\n", 401, "text/plain; charset=utf-8",
                    [("WWW-Authenticate", 'Basic realm="kiqpy", charset="UTF-8"')])


def csrf_token(request: Request) -> tuple[str, bool]:
    """The session's token from its cookie, or a new one; True when it is new (to be set)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if CSRF_TOKEN.match(token):
        return token, False
    return secrets.token_urlsafe(32), True


def csrf_cookie(token: str, path: str, secure: bool) -> str:
    """The Set-Cookie value: readable by no script, sent on no cross-site request."""
    flags = "; Secure" if secure else ""
    return f"{CSRF_COOKIE}={token}; Path={path or '/'}; HttpOnly; SameSite=Strict{flags}"


def is_https(request: Request, trust_proxy: bool) -> bool:
    """Whether the browser's request was HTTPS: the WSGI scheme, or (``trust_proxy``) the
    first ``X-Forwarded-Proto`` value, set by the proxy nearest the browser."""
    if request.environ.get("wsgi.url_scheme") == "https":
        return True
    forwarded = request.header("X-Forwarded-Proto") or ""
    return trust_proxy and forwarded.split(",")[0].strip().lower() == "https"


def check_post(request: Request) -> None:
    """Refuse (403) a POST that may come from another site or lacks the session's token."""
    site = request.header("Sec-Fetch-Site")
    if site is not None and site != "same-origin":
        raise HTTPError(403, f"refused a change requested from another site "
                             f"(Sec-Fetch-Site: {site[:40]})")
    origin = request.header("Origin")
    if origin is not None and not _same_host(origin, request):
        raise HTTPError(403, f"refused a change requested from another origin ({origin[:80]})")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.field(CSRF_FIELD)
    issued = CSRF_TOKEN.match(cookie) is not None
    if not issued or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise HTTPError(403, "the form's security token is missing or stale: "
                             "reload the page and try again")


def _same_host(origin: str, request: Request) -> bool:
    # Host only, not scheme: a proxy ending TLS shows https to the browser and http to us.
    netloc = urlsplit(origin).netloc.lower()
    hosts = {request.header("Host"), request.header("X-Forwarded-Host")}
    if request.header("Host") is None:
        hosts.add(f"{request.environ.get('SERVER_NAME')}:{request.environ.get('SERVER_PORT')}")
    return bool(netloc) and netloc in {h.lower() for h in hosts if h}


def add_security_headers(response: Response) -> None:
    for name, value in SECURITY_HEADERS:
        if not response.has_header(name):
            response.headers.append((name, value))
    if not response.has_header("Cache-Control"):
        response.headers.append(("Cache-Control", "no-store"))
