"""The Periodic page: every periodic entry (schedule, job, last and next tick, paused) and the
leader, with Pause, Unpause and Enqueue now."""

from __future__ import annotations

from kiqpy.api import PeriodicSet
from kiqpy.web.context import Context, back
from kiqpy.web.http import HTTPError, Response


def listing(ctx: Context) -> Response:
    entries = PeriodicSet(ctx.config, ctx.redis)
    return ctx.render("periodic.html", entries=entries.entries(), leader=entries.leader)


def action(ctx: Context) -> Response:
    op, name = ctx.request.field("op"), ctx.request.field("name")
    if op not in ("pause", "unpause", "run"):
        raise HTTPError(400, f"unknown action {op[:40]!r}: use pause, unpause or run")
    entry = PeriodicSet(ctx.config, ctx.redis).find(name)
    if entry is None:
        raise HTTPError(404, f"there is no periodic entry named {name[:200]!r}")
    if op == "pause":
        entry.pause()
    elif op == "unpause":
        entry.unpause()
    else:
        entry.enqueue_now()
    return back(ctx, "/periodic", f"periodic-{op}", 1)
