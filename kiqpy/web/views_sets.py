"""Retries, Scheduled and Dead: listings (paginated, filterable), one entry's page, and the
changes (per row, for the selected rows, and for all).

An entry is named in URLs by ``<score>-<digest of its bytes>``: scores alone are not unique,
and entries need not have a jid (a payload that is not a job is listed too, so it can be
seen and deleted). ``/retries/<jid>`` works too, for links built from a log line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from kiqpy.api import DeadSet, JobSet, Page, RetrySet, ScheduledSet, SortedEntry
from kiqpy.errors import PayloadError
from kiqpy.web.context import PAGE_SIZE, Context, back, digest, require_page
from kiqpy.web.http import HTTPError, Response

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
FILTER_LIMIT = 5000
JID = re.compile(r"^[0-9a-f]{24}$")  # matching entries read for one filtered listing


def entry_id(entry: SortedEntry) -> str:
    return f"{entry.score!r}-{digest(entry.value)}"


def job_set(ctx: Context, kind: str) -> JobSet:
    return KINDS[kind][0](ctx.config, ctx.redis)


def find_entry(jobs: JobSet, title: str, ident: str) -> SortedEntry:
    """The entry named ``ident`` (or, for links from logs, by its jid), or a 404 that says it
    has left (or never was)."""
    if JID.match(ident):
        found = jobs.find_job(ident)
        if found is None:
            raise HTTPError(404, f"there is no job with jid {ident} in {title}")
        return found
    score_text, _, wanted = ident.rpartition("-")
    try:
        score = float(score_text)
    except ValueError:
        score = math.nan
    if not math.isfinite(score):
        raise HTTPError(404, f"{ident[:80]!r} does not name an entry of {title}")
    for entry in jobs.fetch(score):
        if digest(entry.value) == wanted:
            return entry
    raise HTTPError(404, f"that job is no longer in {title} "
                         f"(it may have been retried, moved or deleted)")


def listing(ctx: Context, kind: str) -> Response:
    jobs = job_set(ctx, kind)
    number = ctx.request.int_arg("page", 1)
    needle = ctx.request.arg("filter").strip()
    direction = ctx.request.arg("direction") or DEFAULT_DIRECTION[kind]
    if direction not in ("asc", "desc"):
        direction = DEFAULT_DIRECTION[kind]
    descending = direction == "desc"
    page = (filtered(jobs, needle, number, descending) if needle
            else jobs.page(number, PAGE_SIZE, newest_first=descending))
    require_page(page)
    _, title, when, ops = KINDS[kind]
    query = {key: value for key, value in (("filter", needle), ("direction", direction))
             if value and (key != "direction" or value != DEFAULT_DIRECTION[kind])}
    return ctx.render("set.html", kind=kind, title=title, when=when, ops=ops, labels=LABELS,
                      page=page, needle=needle, entry_id=entry_id, direction=direction,
                      query=query)


def filtered(jobs: JobSet, needle: str, number: int, descending: bool = True
             ) -> Page[SortedEntry]:
    """Entries whose bytes contain ``needle``, latest first unless not ``descending``, as one
    page."""
    found: list[SortedEntry] = []
    for entry in jobs.scan(needle):
        found.append(entry)
        if len(found) >= FILTER_LIMIT:
            break
    found.sort(key=lambda e: e.score, reverse=descending)
    start = (number - 1) * PAGE_SIZE
    return Page(found[start:start + PAGE_SIZE], len(found), number, PAGE_SIZE)


def entry(ctx: Context, kind: str, entry_id: str) -> Response:
    _, title, when, ops = KINDS[kind]
    found = find_entry(job_set(ctx, kind), title, entry_id)
    return ctx.render("entry.html", kind=kind, title=title, when=when, ops=ops, labels=LABELS,
                      entry=found, ident=entry_id)


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


def bulk_action(ctx: Context, kind: str) -> Response:
    op = _op(ctx, kind)
    jobs = job_set(ctx, kind)
    if ctx.request.field("all"):
        return back(ctx, f"/{kind}", op, _all(jobs, op))
    idents = ctx.request.form.get("ids", [])
    if not idents:
        raise HTTPError(400, "no jobs were selected: tick the rows to change first")
    count = 0
    for ident in idents:
        try:
            count += _apply(op, find_entry(jobs, KINDS[kind][1], ident))
        except (HTTPError, PayloadError):
            continue  # gone meanwhile, or not a job (only Delete applies to those)
    return back(ctx, f"/{kind}", op, count)


def _all(jobs: JobSet, op: str) -> int:
    actions: dict[str, Callable[[], Any]] = {
        "delete": jobs.clear, "kill": jobs.kill_all, "retry": jobs.retry_all,
        "enqueue": jobs.retry_all}
    return int(actions[op]())
