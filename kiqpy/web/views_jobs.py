"""The page of one queued job (linked from its queue's page and the key browser) and of one
running job (linked from Busy): every field, each value capped as on the Retries, Scheduled
and Dead entry pages (``views_sets.py``), and the stored bytes as a download.

A queued job is named by the digest of its bytes (or its jid) and found near the page of the
queue it was listed on (:meth:`Queue.find_near`: three pages at most, whatever the queue's
length), so opening it costs what showing that page did. A running job is named by its
process and thread, read from the process's ``work`` hash as Busy reads it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from kiqpy.api import JobRecord, ProcessSet, Work, WorkSet
from kiqpy.api.jobs import BACKTRACE_LIMIT
from kiqpy.payload import serializer_of
from kiqpy.web.context import PAGE_SIZE, Context, digest
from kiqpy.web.http import HTTPError, Response
from kiqpy.web.render import duration, iso
from kiqpy.web.views import known_queue

JOB_IDENT = re.compile(r"^(?:[0-9a-f]{20}|[0-9a-f]{24})$")  # a digest, or a jid


def shown_fields(job: JobRecord) -> dict[str, Any]:
    """The job's map for "All fields", with the values shown above it named, not repeated:
    a big value is printed once."""
    shown = {"args": "(under Arguments, above)"}
    if job.error_message:
        shown["error_message"] = "(under Message, above)"
    if job.error_backtrace:
        shown["error_backtrace"] = "(under Backtrace, above)"
    return {**job.item, **{k: v for k, v in shown.items() if k in job.item}}


def _page_hint(ctx: Context) -> tuple[int, bool]:
    number = ctx.request.int_arg("page", 1)
    return number, ctx.request.arg("order") == "newest"


def find_queued(ctx: Context, name: str, ident: str) -> JobRecord:
    """The job of queue ``name`` whose digest (or jid) is ``ident``, looked for on the page
    the link came from (``?page=&order=``) and the pages either side; a 404 otherwise."""
    if not JOB_IDENT.match(ident):
        raise HTTPError(404, f"{ident[:80]!r} does not name a job")
    queue, _ = known_queue(ctx, name)
    number, newest = _page_hint(ctx)
    jid = ident.encode() if len(ident) == 24 else None

    def wanted(value: bytes) -> bool:
        if jid is None:
            return digest(value) == ident
        return jid in value and JobRecord(value).jid == ident

    found = queue.find_near(wanted, number, PAGE_SIZE, newest_first=newest)
    if found is None:
        raise HTTPError(404, f"that job is no longer in queue {name[:200]!r} near page "
                             f"{number} (it may have run already)")
    return found


def queued(ctx: Context, name: str, ident: str) -> Response:
    job = find_queued(ctx, name, ident)
    number, newest = _page_hint(ctx)
    order = "newest" if newest else None
    qpath = f"/queues/{_segment(name)}"
    raw = ctx.url(f"{qpath}/jobs/{ident}/raw", page=number, order=order)
    delete_form = {"action": ctx.url(qpath),
                   "fields": {"job": digest(job.value), "page": number, "order": order or ""}}
    facts = [("Latency", duration(job.latency))] if job.enqueued_at else []
    return ctx.render("job.html", job=job, where=f"Queue {name}", state="Waiting in its queue",
                      back_url=ctx.url(qpath, page=number if number > 1 else None,
                                       order=order),
                      raw=raw, delete_form=delete_form, facts=facts,
                      fields=shown_fields(job), backtrace_limit=BACKTRACE_LIMIT)


def queued_raw(ctx: Context, name: str, ident: str) -> Response:
    job = find_queued(ctx, name, ident)
    return download(job.value, f"queue-{job.jid or digest(job.value)}")


def find_running(ctx: Context) -> tuple[str, str, Work]:
    """(process, thread, its job) named by ``?process=<identity>&thread=<name>``."""
    identity, thread = ctx.request.arg("process"), ctx.request.arg("thread")
    processes = ProcessSet(ctx.config, ctx.redis, prune=False, with_work=True)
    work = next((w for p, t, w in WorkSet.of(processes) if p == identity and t == thread),
                None)
    if work is None:
        raise HTTPError(404, f"thread {thread[:80]!r} of {identity[:200]!r} runs no job now "
                             f"(it may have finished)")
    return identity, thread, work


def running(ctx: Context) -> Response:
    """``/busy/job?process=<identity>&thread=<name>``: the job that thread runs now."""
    identity, thread, work = find_running(ctx)
    raw = ctx.url("/busy/job/raw", process=identity, thread=thread)
    facts = [("Process", identity), ("Thread", thread), ("Started", iso(work.run_at))]
    return ctx.render("job.html", job=work.job, where="Busy", state="Running now",
                      back_url=ctx.url("/busy"), raw=raw, delete_form=None, facts=facts,
                      fields=shown_fields(work.job), backtrace_limit=BACKTRACE_LIMIT)


def running_raw(ctx: Context) -> Response:
    _, _, work = find_running(ctx)
    return download(work.job.value, f"running-{work.job.jid or digest(work.job.value)}")


def job_links(ctx: Context, key: bytes) -> Callable[[Any, Any], str | None]:
    """For the key browser: ``href(index or score, element)``, the page of the job an element
    of ``key`` holds (a queue's list, or the retry, schedule or dead set), else None."""
    sets = {ctx.keys.retry: "retries", ctx.keys.schedule: "scheduled", ctx.keys.dead: "dead"}
    try:
        name = key.decode()
    except UnicodeDecodeError:
        return lambda first, element: None
    kind = sets.get(name)
    queue = ctx.keys.queue_name(name) if name.startswith(ctx.keys.queue_prefix) else None

    def href(first: Any, element: Any) -> str | None:
        named = getattr(element, "digest", "")
        if not named:
            return None
        if kind is not None and isinstance(first, float):
            return ctx.url(f"/{kind}/{_segment(f'{first!r}-{named}')}")
        if queue and isinstance(first, int):
            # The key browser lists from the left (newest first, as jobs are LPUSHed).
            return ctx.url(f"/queues/{_segment(queue)}/jobs/{named}",
                           page=first // PAGE_SIZE + 1, order="newest")
        return None

    return href


def download(value: bytes, name: str) -> Response:
    """Stored bytes as a download named ``<name>.json`` or ``.msgpack``, as stored."""
    suffix = "json" if serializer_of(value) == "json" else "msgpack"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100]
    return Response(value, 200, "application/octet-stream", [
        ("Content-Disposition", f'attachment; filename="{safe}.{suffix}"')])


def _segment(value: str) -> str:
    return quote(value, safe="")
