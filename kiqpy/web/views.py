"""Page handlers: the dashboard, ``/stats`` and ``/health``, Busy (processes and running jobs),
Queues and one queue's jobs.

The job sets live in ``views_sets.py``, the Redis key browser in ``views_keys.py``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from importlib import resources
from typing import Any
from urllib.parse import quote

from kiqpy.api import (
    History,
    Page,
    PeriodicSet,
    ProcessSet,
    Queue,
    Stats,
    WorkSet,
    iteration_progress,
)
from kiqpy.api.queues import SORTED_QUEUES
from kiqpy.connection import REDIS_DOWN, translate_errors
from kiqpy.web.context import PAGE_SIZE, SUMMARY_QUEUES, Context, JobRow, back, digest, require_page
from kiqpy.web.http import MAX_CURSOR, HTTPError, Response, json_response

log = logging.getLogger("kiqpy.web")

HISTORY_DAYS = (1, 7, 30, 90, 180)
STATIC_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
                "svg": "image/svg+xml"}
def static(ctx: Context, name: str) -> Response:
    """A file of ``kiqpy/web/static`` (the route allows plain names only: no path tricks)."""
    resource = resources.files("kiqpy.web") / "static" / name
    if not resource.is_file():
        raise HTTPError(404, f"there is no static file {name}")
    kind = STATIC_TYPES[name.rsplit(".", 1)[1]]
    return Response(resource.read_bytes(), 200, kind, [("Cache-Control", "max-age=3600")])


# -- dashboard, stats, health --------------------------------------------------------------------
def redis_info(ctx: Context) -> dict[str, Any]:
    with translate_errors(ctx.redis):
        info: dict[str, Any] = ctx.redis.info()
    return {"redis_version": info.get("redis_version", "?"),
            "uptime_in_days": info.get("uptime_in_days", 0),
            "uptime_in_seconds": info.get("uptime_in_seconds", 0),
            "connected_clients": info.get("connected_clients", 0),
            "used_memory_human": info.get("used_memory_human", "?"),
            "used_memory_peak_human": info.get("used_memory_peak_human", "?")}


def dashboard(ctx: Context) -> Response:
    days = ctx.request.int_arg("days", 30, 1, 180)
    history = History(days, config=ctx.config, redis_client=ctx.redis)
    dates = sorted(history.processed)
    labels = [d.isoformat() for d in dates]
    processed = [history.processed[d] for d in dates]
    failed = [history.failed[d] for d in dates]
    chart = {"dates": labels, "processed": processed, "failed": failed}
    rows = list(zip(labels, processed, failed, strict=True))[::-1]
    return ctx.render("dashboard.html", days=days, day_choices=HISTORY_DAYS, history=rows,
                      chart=json.dumps(chart), redis=redis_info(ctx),
                      problems=history.problems)


def stats_data(ctx: Context) -> dict[str, Any]:
    stats = Stats(ctx.config, ctx.redis, queue_limit=SUMMARY_QUEUES)
    return {
        "problems": [{"key": p.key, "problem": p.message} for p in stats.problems],
        "enqueued_complete": stats.queues_complete,
        "kiqpy": {"processed": stats.processed, "failed": stats.failed,
                  "busy": stats.workers_size, "processes": stats.processes_size,
                  "enqueued": stats.enqueued, "scheduled": stats.scheduled_size,
                  "retries": stats.retry_size, "dead": stats.dead_size,
                  "default_latency": round(stats.default_queue_latency, 3)},
        "redis": {k: v for k, v in redis_info(ctx).items() if k != "uptime_in_seconds"},
        "server_utc_time": _dt.datetime.now(_dt.timezone.utc).strftime("%H:%M:%S UTC"),
    }


def stats(ctx: Context) -> Response:
    """Like Sidekiq's ``/stats``: counters under ``kiqpy``, Redis facts under ``redis``, odd
    values under ``problems``. ``enqueued`` sums the first ``SUMMARY_QUEUES`` queues when
    there are more (the top-level ``enqueued_complete`` is then false)."""
    return json_response(stats_data(ctx))


def stats_queues(ctx: Context) -> Response:
    """Queue name -> size, biggest first (Sidekiq's ``/stats/queues``); of the first
    ``SUMMARY_QUEUES`` queues when there are more."""
    return json_response(Stats(ctx.config, ctx.redis, queue_limit=SUMMARY_QUEUES).queues)


def health(ctx: Context) -> Response:
    """One PING: 200 when Redis answers, 503 when it does not. Needs no login, so it says no
    more than that: Redis's error names its address and port, which goes to the log only."""
    started = time.perf_counter()
    try:
        ctx.redis.ping()
    except REDIS_DOWN as exc:
        log.warning("kiqpy.web: /health: Redis does not answer: %s", exc)
        return json_response({"status": "unavailable", "error": "Redis does not answer"}, 503)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    return json_response({"status": "ok", "redis_ms": elapsed_ms})


# -- busy ----------------------------------------------------------------------------------------
def busy(ctx: Context) -> Response:
    # One transaction for both, as the heartbeat writes them: the busy counts and the list of
    # running jobs on the page always come from the same beat. A GET changes nothing, so dead
    # members of `processes` are left out, not removed (orphan recovery removes them).
    processes = ProcessSet(ctx.config, ctx.redis, prune=False, with_work=True)
    work = WorkSet.of(processes)
    now = time.time()
    running = [(identity, thread, w,
                max(0.0, now - w.run_at.timestamp()) if w.run_at else None, JobRow(w.job))
               for identity, thread, w in work]
    threads = processes.total_concurrency
    utilisation = round(100 * processes.total_busy / threads) if threads else 0
    jids = [w.job.jid for _, _, w in work if w.job.jid][:200]
    return ctx.render("busy.html", processes=processes, running=running,
                      utilisation=utilisation, pending=processes.pending_signals(),
                      periodic_leader=PeriodicSet(ctx.config, ctx.redis).leader,
                      progress=iteration_progress(jids, ctx.config, ctx.redis))


def busy_action(ctx: Context) -> Response:
    op = ctx.request.field("op")
    if op not in ("quiet", "stop"):
        raise HTTPError(400, f"unknown action {op[:40]!r}: use quiet or stop")
    processes = ProcessSet(ctx.config, ctx.redis, prune=False)
    if ctx.request.field("all"):
        count = processes.quiet_all() if op == "quiet" else processes.stop_all()
        return back(ctx, "/busy", op, count)
    identity = ctx.request.field("identity")
    process = processes.find(identity)
    if process is None:
        raise HTTPError(404, f"there is no live process {identity[:200]!r} "
                             f"(it may have stopped)")
    process.quiet() if op == "quiet" else process.stop()
    return back(ctx, "/busy", op, 1)


# -- queues --------------------------------------------------------------------------------------
QUEUES_PER_PAGE = 100
# A queue whose oldest job has waited this long is marked: a minute is far beyond what a
# healthy queue shows (milliseconds to seconds), and short enough to notice a stall early.
HIGH_LATENCY = 60.0


def queues(ctx: Context) -> Response:
    """The known queues, a page at a time (sorted by name, or in Redis's order beyond
    ``SORTED_QUEUES`` names): a page costs the same with 10 queues or 100,000."""
    number = ctx.request.int_arg("page", 1)
    cursor = ctx.request.int_arg("cursor", 0, low=0, high=MAX_CURSOR)
    by_size = ctx.request.arg("sort") == "size"
    listing = Queue.listing(number, QUEUES_PER_PAGE, cursor, ctx.config, ctx.redis,
                            by_size=by_size)
    if listing.sorted and number > listing.pages:
        raise HTTPError(404, f"page {number} does not exist: there are {listing.pages} pages")
    return ctx.render("queues.html", listing=listing, cursor=cursor,
                      sorted_limit=SORTED_QUEUES, high_latency=HIGH_LATENCY, by_size=by_size,
                      paused_unknown=_paused_unknown(ctx))


def _paused_unknown(ctx: Context) -> list[str]:
    """Paused queues that are not in the ``queues`` set (paused before their first job, or
    cleared since), so the listing does not show them: named apart, so they can be found."""
    paused = Queue.paused_names(ctx.config, ctx.redis)
    if not paused:
        return []
    with translate_errors(ctx.redis):
        known = ctx.redis.smismember(ctx.keys.queues, paused)
    return [name for name, is_known in zip(paused, known, strict=True) if not is_known]


def known_queue(ctx: Context, name: str) -> tuple[Queue, str]:
    """The queue and its key's type ("list", or "none" for an empty one); a 404 for a name
    that is neither known nor holds jobs."""
    queue = Queue(name, ctx.config, ctx.redis)
    with translate_errors(ctx.redis):
        known = ctx.redis.sismember(ctx.keys.queues, name)
        kind = _text(ctx.redis.type(queue.key))
        paused = ctx.redis.sismember(ctx.keys.paused_queues, name)
    if not known and kind == "none" and not paused:
        raise HTTPError(404, f"there is no queue named {name[:200]!r}")
    return queue, kind


def queue(ctx: Context, name: str) -> Response:
    found, kind = known_queue(ctx, name)
    number = ctx.request.int_arg("page", 1)
    order = ctx.request.arg("order") or "oldest"
    if kind not in ("list", "none"):  # an odd value: say so, and offer to clear it
        page: Page[JobRow] = Page([], 0, 1, PAGE_SIZE)
        return ctx.render("queue.html", queue=found, page=page, digest=digest, order=order,
                          problem=f"{found.key} is a {kind}, not a list",
                          paused=found.paused)
    page = found.page_of(JobRow, number, PAGE_SIZE, newest_first=order == "newest")
    require_page(page)
    return ctx.render("queue.html", queue=found, page=page, digest=digest, order=order,
                      problem=None, paused=found.paused)


def queue_action(ctx: Context, name: str) -> Response:
    found, _ = known_queue(ctx, name)
    op = ctx.request.field("op")
    if op == "clear":
        return back(ctx, "/queues", "clear", found.clear())
    if op in ("pause", "unpause"):
        changed = found.pause() if op == "pause" else found.unpause()
        # Back to the page the button was on: the queue's own, or the Queues page.
        to = f"/queues/{_segment(name)}" if ctx.request.field("from") == "queue" else "/queues"
        return back(ctx, to, f"queue-{op}", int(changed))
    if op != "delete":
        raise HTTPError(400, f"unknown action {op[:40]!r}: use clear, delete, pause or "
                             "unpause")
    wanted = ctx.request.field("job")
    page = ctx.request.field("page")
    number = int(page) if page.isascii() and page.isdigit() and 0 < len(page) < 10 else 1
    newest = ctx.request.field("order") == "newest"
    record = found.find_near(lambda value: digest(value) == wanted, max(1, number),
                             PAGE_SIZE, newest_first=newest)
    if record is not None and record.delete():
        return back(ctx, f"/queues/{_segment(name)}", "delete", 1, page=page or None,
                    order="newest" if newest else None)
    raise HTTPError(404, "that job is no longer in the queue where the page showed it (it may "
                         "have run already): reload the page")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _segment(value: str) -> str:
    return quote(value, safe="")
