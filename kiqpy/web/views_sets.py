"""Retries, Scheduled and Dead: listings (paginated, filterable), one entry's page, and the
changes (per row, for the selected rows, and for all).

An entry is named in URLs by ``<score>-<digest of its bytes>``: scores alone are not unique,
and entries need not have a jid (a payload that is not a job is listed too, so it can be
seen and deleted). ``/retries/<jid>`` works too, for links built from a log line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from kiqpy.api import DeadSet, JobSet, Page, RetrySet, ScheduledSet, Search, SortedEntry
from kiqpy.api.jobs import BACKTRACE_LIMIT
from kiqpy.api.sets import SEARCH_ENTRIES
from kiqpy.errors import PayloadError
from kiqpy.web.context import PAGE_SIZE, Context, JobRow, back, digest, require_page
from kiqpy.web.http import HTTPError, Response
from kiqpy.web.views_jobs import download, shown_fields

# kind -> (class, title, what the score means, the changes offered)
KINDS: dict[str, tuple[type[JobSet], str, str, tuple[str, ...]]] = {
    "retries": (RetrySet, "Retries", "Next try", ("retry", "delete", "kill")),
    "scheduled": (ScheduledSet, "Scheduled", "When", ("enqueue", "delete")),
    "dead": (DeadSet, "Dead", "Died", ("retry", "delete")),
}
# Listing order by default, as Sidekiq's Web: retries and scheduled jobs soonest first, the
# dead newest first; ?direction=asc|desc flips it.
DEFAULT_DIRECTION = {"retries": "asc", "scheduled": "asc", "dead": "desc"}
LABELS = {"retry": "Retry now", "enqueue": "Add to queue", "delete": "Delete", "kill": "Kill"}
# A filter longer than any class name, jid or error text a person types is not a search.
MAX_NEEDLE = 200
JID = re.compile(r"^[0-9a-f]{24}$")


def entry_id(entry: SortedEntry | JobRow) -> str:
    named = entry.digest if isinstance(entry, JobRow) else digest(entry.value)
    return f"{entry.score!r}-{named}"


def job_set(ctx: Context, kind: str) -> JobSet:
    return KINDS[kind][0](ctx.config, ctx.redis)


def parse_id(ident: str) -> tuple[float, str] | None:
    """``<score>-<digest>`` -> (score, digest); None when ``ident`` is not of that form.
    Scores may be ``inf``/``-inf``: such an entry must still be reachable, to delete it."""
    score_text, _, wanted = ident.rpartition("-")
    try:
        score = float(score_text)
    except ValueError:
        return None
    return None if math.isnan(score) or not wanted else (score, wanted)


def find_entry(jobs: JobSet, title: str, ident: str) -> SortedEntry:
    """The entry named ``ident`` (or, for links from logs, by its jid), or a 404 that says it
    has left (or never was). By id: O(log n) plus the entries sharing its score; by jid: one
    bounded search (:meth:`JobSet.search`), which may give up on a very big set."""
    if JID.match(ident):
        search = jobs.search(ident, limit=1_000, newest_first=False)
        found = next((e for e in search.entries if e.jid == ident), None)
        if found is not None:
            return found
        where = "" if search.exhausted else \
            f" among the first {search.scanned:,} entries (filter by it to search further)"
        raise HTTPError(404, f"there is no job with jid {ident} in {title}{where}")
    parsed = parse_id(ident)
    if parsed is None:
        raise HTTPError(404, f"{ident[:80]!r} does not name an entry of {title}")
    score, wanted = parsed
    search = jobs.search(lambda value: digest(value) == wanted, score=score, limit=1)
    if search.entries:
        return search.entries[0]
    raise HTTPError(404, f"that job is no longer in {title} "
                         f"(it may have been retried, moved or deleted)")


def _needle(needle: str) -> str:
    needle = needle.strip()
    if len(needle) > MAX_NEEDLE:
        raise HTTPError(400, f"the filter is at most {MAX_NEEDLE} characters long; this one "
                             f"has {len(needle):,}")
    return needle


def _direction(kind: str, asked: str) -> str:
    return asked if asked in ("asc", "desc") else DEFAULT_DIRECTION[kind]


def listing(ctx: Context, kind: str) -> Response:
    jobs = job_set(ctx, kind)
    needle = _needle(ctx.request.arg("filter"))
    direction = _direction(kind, ctx.request.arg("direction"))
    descending = direction == "desc"
    search: Search | None = None
    if needle:
        start = ctx.request.int_arg("from", 0, low=0)
        search = jobs.search(needle, start, newest_first=descending, limit=PAGE_SIZE)
        rows = [JobRow(e, e.score) for e in search.entries]
        page: Page[JobRow] = Page(rows, len(rows), 1, PAGE_SIZE)
    else:
        page = jobs.page_of(lambda e: JobRow(e, e.score), ctx.request.int_arg("page", 1),
                            PAGE_SIZE, newest_first=descending)
        require_page(page)
    _, title, when, ops = KINDS[kind]
    query = {key: value for key, value in (("filter", needle), ("direction", direction))
             if value and (key != "direction" or value != DEFAULT_DIRECTION[kind])}
    return ctx.render("set.html", kind=kind, title=title, when=when, ops=ops, labels=LABELS,
                      page=page, needle=needle, entry_id=entry_id, direction=direction,
                      query=query, search=search, max_retries=ctx.config.max_retries)


def entry(ctx: Context, kind: str, entry_id: str) -> Response:
    _, title, when, ops = KINDS[kind]
    found = find_entry(job_set(ctx, kind), title, entry_id)
    fields = shown_fields(found)
    raw = ctx.url(f"/{kind}/{_segment(entry_id)}/raw")
    return ctx.render("entry.html", kind=kind, title=title, when=when, ops=ops, labels=LABELS,
                      entry=found, ident=entry_id, fields=fields, raw=raw,
                      backtrace_limit=BACKTRACE_LIMIT)


def raw(ctx: Context, kind: str, entry_id: str) -> Response:
    """The entry's stored bytes, as a download (msgpack or JSON, as stored)."""
    found = find_entry(job_set(ctx, kind), KINDS[kind][1], entry_id)
    name = f"{kind}-{found.jid if found.jid and JID.match(found.jid) else digest(found.value)}"
    return download(found.value, name)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _apply(op: str, entry: SortedEntry) -> bool:
    """One change to one entry; False when it had already left the set."""
    if op == "delete":
        return entry.delete()
    if op == "kill":
        return entry.kill()
    if op == "enqueue":
        return entry.add_to_queue()
    return entry.retry()


def _op(ctx: Context, kind: str) -> str:
    op = ctx.request.field("op")
    allowed = KINDS[kind][3]
    if op not in allowed:
        raise HTTPError(400, f"unknown action {op[:40]!r} here: use {', '.join(allowed)}")
    return op


def entry_action(ctx: Context, kind: str, entry_id: str) -> Response:
    op = _op(ctx, kind)
    found = find_entry(job_set(ctx, kind), KINDS[kind][1], entry_id)
    try:
        done = _apply(op, found)
    except PayloadError as exc:
        raise HTTPError(400, f"{exc}. Delete it instead.") from exc
    return back(ctx, f"/{kind}", op, int(done))


def _matching(ctx: Context, kind: str, needle: str, start: str, direction: str) -> Search:
    """The entries matching a filter in one bounded window (SEARCH_ENTRIES entries or
    SEARCH_BYTES from rank ``start``): what "All matching" shows, counts and changes."""
    first = int(start) if start.isascii() and start.isdigit() and len(start) < 10 else 0
    return job_set(ctx, kind).search(needle, first, newest_first=direction == "desc",
                                     limit=SEARCH_ENTRIES)


def confirm_matching(ctx: Context, kind: str) -> Response:
    """GET ``/<kind>/all?op=&filter=&from=&direction=``: how many entries an "All matching"
    change would touch (read only), with the button that makes it."""
    op = ctx.request.arg("op")
    _, title, _, ops = KINDS[kind]
    if op not in ops:
        raise HTTPError(400, f"unknown action {op[:40]!r} here: use {', '.join(ops)}")
    needle = _needle(ctx.request.arg("filter"))
    if not needle:
        raise HTTPError(400, "no filter: the All buttons under the list change every job")
    direction = _direction(kind, ctx.request.arg("direction"))
    start = ctx.request.arg("from")
    search = _matching(ctx, kind, needle, start, direction)
    return ctx.render("confirm.html", kind=kind, title=title, op=op, label=LABELS[op],
                      needle=needle, search=search, count=len(search.entries),
                      fields={"op": op, "all": 1, "filter": needle, "from": search.start,
                              "direction": direction, "expect": len(search.entries)})


def bulk_action(ctx: Context, kind: str) -> Response:
    op = _op(ctx, kind)
    jobs = job_set(ctx, kind)
    if ctx.request.field("all"):
        needle = _needle(ctx.request.field("filter"))
        if not needle:
            return back(ctx, f"/{kind}", op, _all(jobs, op))
        # The filtered set, as counted on the confirmation page (the same bounded window).
        direction = _direction(kind, ctx.request.field("direction"))
        search = _matching(ctx, kind, needle, ctx.request.field("from"), direction)
        count = 0
        for found in search.entries:
            try:
                count += _apply(op, found)
            except PayloadError:
                continue  # not a job (only Delete applies to those)
        return back(ctx, f"/{kind}", op, count, filter=needle)
    idents = list(dict.fromkeys(ctx.request.form.get("ids", [])))
    if not idents:
        raise HTTPError(400, "no jobs were selected: tick the rows to change first")
    count = 0
    for found in _selected(jobs, KINDS[kind][1], idents):
        try:
            count += _apply(op, found)
        except PayloadError:
            continue  # not a job (only Delete applies to those)
    return back(ctx, f"/{kind}", op, count)


def _selected(jobs: JobSet, title: str, idents: list[str]) -> Iterator[SortedEntry]:
    """The entries named by ``idents`` that are still there, one at a time (so a hundred big
    ones are never all in memory). Entry ids are found one by one in O(log n) each (by their
    score); jids, from links or scripts, all together in one bounded search."""
    jids = {ident for ident in idents if JID.match(ident)}
    for ident in idents:
        if ident not in jids:
            try:
                yield find_entry(jobs, title, ident)
            except HTTPError:
                continue  # gone meanwhile
    if jids:
        pattern = re.compile(b"|".join(re.escape(j.encode()) for j in sorted(jids)))
        search = jobs.search(lambda value: pattern.search(value) is not None,
                             newest_first=False, limit=10 * len(jids))
        yield from (e for e in search.entries if e.jid in jids)


def _all(jobs: JobSet, op: str) -> int:
    actions: dict[str, Callable[[], Any]] = {
        "delete": jobs.clear, "kill": jobs.kill_all, "retry": jobs.retry_all,
        "enqueue": jobs.retry_all}
    return int(actions[op]())
