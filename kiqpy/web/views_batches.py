"""The Batches pages: every batch (and workflow) not expired, newest first, with its progress;
and one batch with its callbacks, its failed jobs (linked to the retry or dead set where they
wait) and, for a workflow, the state of each step."""

from __future__ import annotations

import re

from kiqpy.api import BatchSet, BatchStatus
from kiqpy.web.context import Context, require_page
from kiqpy.web.http import HTTPError, Response

PAGE_SIZE = 25
_BID = re.compile(r"^[0-9a-zA-Z_-]{1,64}$")


def listing(ctx: Context) -> Response:
    page = BatchSet(ctx.config, ctx.redis).page(ctx.request.int_arg("page", 1), PAGE_SIZE)
    require_page(page)
    return ctx.render("batches.html", page=page)


def batch(ctx: Context, bid: str) -> Response:
    if not _BID.match(bid):
        raise HTTPError(404, "that is not a batch id")
    status = BatchStatus(bid, ctx.config, ctx.redis)
    if not status.exists:
        raise HTTPError(404, f"there is no batch {bid} (it may have expired)")
    failures = status.failure_info
    links = {}
    for failure in failures:
        if failure.dead:
            links[failure.jid] = ctx.url("/dead", filter=failure.jid)
        elif failure.error_class != "Cancelled":
            links[failure.jid] = ctx.url("/retries", filter=failure.jid)
    return ctx.render("batch.html", status=status, failures=failures, links=links,
                      children=status.children())
