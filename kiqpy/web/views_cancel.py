"""Cancel, from the Busy page, a job's page and a scheduled or retrying entry's page
(:func:`kiqpy.api.cancel`): a POST with the jid and the page to go back to."""

from __future__ import annotations

from kiqpy.api import cancel as cancel_job
from kiqpy.web.context import Context, back
from kiqpy.web.http import HTTPError, Response


def cancel(ctx: Context) -> Response:
    jid = ctx.request.field("jid")
    if not jid or len(jid) > 100:
        raise HTTPError(400, "cancel needs the job's jid")
    back_to = ctx.request.field("back") or "/busy"
    if not back_to.startswith("/") or back_to.startswith("//"):
        back_to = "/busy"  # only pages of this dashboard
    result = cancel_job(jid, ctx.config, ctx.redis)
    if not result.found:
        raise HTTPError(404, str(result))
    return back(ctx, back_to.split("?")[0], "cancel-" + ("running" if result.where == "running"
                                                         else "waiting"), 1)
