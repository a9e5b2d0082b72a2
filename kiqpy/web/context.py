"""What every page handler shares: the request's :class:`Context` (the request, Redis, key
names, URLs and rendering), page checks, redirects back with a notice, and payload digests.

Handlers (``views*.py``) take a :class:`Context` and the route's parameters and return a
:class:`~kiqpy.web.http.Response`; the application (``app.py``) builds the context and routes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import math
from typing import Any, Protocol
from urllib.parse import quote, quote_from_bytes, urlencode

import jinja2
import redis

from kiqpy.api import JobRecord, Page, Stats
from kiqpy.api.base import to_datetime
from kiqpy.config import Config
from kiqpy.connection import safe_url
from kiqpy.keys import Keys
from kiqpy.payload import epoch_seconds
from kiqpy.version import __version__
from kiqpy.web import security
from kiqpy.web.http import HTTPError, Request, Response, redirect
from kiqpy.web.render import ARGS_LIMIT, EXPAND_LIMIT, show_args, shrink


class Site(Protocol):
    """What a context needs of the application (:class:`kiqpy.web.app.Dashboard` is one)."""

    config: Config
    redis: redis.Redis
    keys: Keys
    templates: jinja2.Environment
    prometheus: bool

log = logging.getLogger("kiqpy.web")

PAGE_SIZE = 25
# Queues whose sizes the summary (on every page) and /stats add up, at most: with more, the
# Enqueued count covers these and says so, and a page still costs the same.
SUMMARY_QUEUES = 10_000
# After a change the browser is sent back with ?done=<what>&n=<count>; the text is ours.
NOTICES = {
    "quiet": "Asked {n} process(es) to stop fetching jobs.",
    "stop": "Asked {n} process(es) to shut down.",
    "clear": "Deleted {n} job(s) and the queue.",
    "delete": "Deleted {n} job(s).",
    "retry": "Queued {n} job(s) to run now.",
    "enqueue": "Queued {n} job(s) to run now.",
    "kill": "Moved {n} job(s) to the dead set.",
    "cancel-running": "Asked {n} running job to stop: it sees self.cancelled.",
    "cancel-waiting": "Cancelled {n} job: removed before it ran.",
    "queue-pause": "Paused {n} queue: workers take none of its jobs until it is unpaused.",
    "queue-unpause": "Unpaused {n} queue.",
    "periodic-pause": "Paused {n} periodic entry: its ticks are skipped until unpaused.",
    "periodic-unpause": "Unpaused {n} periodic entry.",
    "periodic-run": "Enqueued {n} periodic job now.",
    "unlink": "Deleted {n} key(s).",
}


def notice(request: Request) -> str | None:
    """The message for ``?done=...&n=...`` (made from our own texts, never from the URL)."""
    template = NOTICES.get(request.arg("done"))
    count = request.arg("n")
    ok = count.isascii() and count.isdigit() and len(count) < 10
    return template.format(n=int(count)) if template and ok else None


def back(ctx: Context, path: str, done: str, count: int, **query: Any) -> Response:
    return redirect(ctx.url(path, done=done, n=count, **query))


def digest(value: bytes) -> str:
    """A short, stable name for a stored payload (payloads need not have a jid)."""
    return hashlib.sha1(value).hexdigest()[:20]


class JobRow:
    """What a listing shows of one job, without its bytes: built as each job is read, so a
    page of 25 jobs of 20 MB each never holds them all. ``digest`` names it in forms."""

    def __init__(self, record: JobRecord, score: float | None = None) -> None:
        self.digest = digest(record.value)
        self.size = len(record.value)
        self.jid = record.jid
        self.display_class = record.display_class[:TEXT_LIMIT]
        self.error = record.error[:TEXT_LIMIT] if record.error else None
        self.display_args = shrink(record.display_args, ARGS_LIMIT)
        # The "show all" expander: only when one line cuts the args, up to EXPAND_LIMIT
        # characters (the job's page has more, and its raw download all).
        whole = show_args(record.display_args, EXPAND_LIMIT)
        self.args_more = whole if len(whole) > ARGS_LIMIT else None
        self.args_more_cut = len(whole) >= EXPAND_LIMIT and whole.endswith("…")
        self.queue = record.queue[:TEXT_LIMIT] if record.queue else None
        self.error_class = record.error_class[:TEXT_LIMIT] if record.error_class else None
        self.error_message = record.error_message[:TEXT_LIMIT] if record.error_message \
            else None
        self.retry_count = record.retry_count
        self.failed_at = record.failed_at
        # As the retrier counts: an int ``retry`` is the number of retries, anything else the
        # configured default (None here: the page says the default).
        retry = record.get("retry")
        self.retry_limit: int | None = retry if type(retry) is int else None
        # A time that is no time (-inf) is shown as stored, not as "-".
        stored = epoch_seconds(record.get("enqueued_at"))
        odd = stored if stored is not None and not math.isfinite(stored) else None
        self.enqueued_at: _dt.datetime | float | None = record.enqueued_at or odd
        self.score = score
        self.at = None if score is None else to_datetime(score)


TEXT_LIMIT = 1000  # characters of a name or message a listing keeps


def require_page(page: Page[Any]) -> None:
    """404 for a page past the last (page 1 of nothing is fine: an empty listing)."""
    if page.number > page.pages:
        raise HTTPError(404, f"page {page.number} does not exist: there "
                             f"{'is 1 page' if page.pages == 1 else f'are {page.pages} pages'}")



class Context:
    """One request as handlers see it: the request, Redis, key names, URLs and rendering."""

    def __init__(self, app: Site, request: Request, base: str, csrf: str) -> None:
        self.app, self.request, self.base, self.csrf = app, request, base, csrf
        self.config: Config = app.config
        self.redis: redis.Redis = app.redis
        self.keys: Keys = app.keys

    def url(self, path: str = "/", **query: Any) -> str:
        """The URL of ``path`` (below the mount point) with ``query`` (None values left out)."""
        pairs = [(k, v) for k, v in query.items() if v is not None and v != ""]
        return self.base + path + (("?" + urlencode(pairs, doseq=True)) if pairs else "")

    def key_url(self, key: str | bytes) -> str:
        """The key browser's page of ``key`` (where an odd value can be seen and deleted)."""
        raw = key.encode() if isinstance(key, str) else key
        return f"{self.url('/keys/view')}?key={quote_from_bytes(raw, safe='')}"

    def render(self, template: str, code: int = 200, **values: Any) -> Response:
        if "summary" not in values:
            values["summary"] = Stats(self.config, self.redis, queue_limit=SUMMARY_QUEUES)
        page = self.app.templates.get_template(template).render(
            notice=notice(self.request),
            url=self.url, key_url=self.key_url, quote=_quote, csrf=self.csrf,
            csrf_field=security.CSRF_FIELD,
            version=__version__, redis_url=safe_url(self.config.redis_url),
            namespace=self.config.namespace, path=self.request.path, **values)
        return Response(page, code)

    def error(self, status: int, message: str) -> Response:
        try:
            return self.render("error.html", status, status=status, message=message,
                               summary=None)
        except Exception:  # the error page itself failed: plain text still says what happened
            log.exception("kiqpy.web: rendering the error page failed")
            return Response(f"{status}: {message}\n", status, "text/plain; charset=utf-8")


def _quote(value: str) -> str:
    """A path segment (a queue name, an entry id) for a URL."""
    return quote(value, safe="")
