"""The Limits page: every rate limiter (kiqpy.limiter) used in the last day, with its kind,
size, what is in use now, and how often it was over its limit."""

from __future__ import annotations

from kiqpy.api import Limiters
from kiqpy.web.context import Context
from kiqpy.web.http import Response


def listing(ctx: Context) -> Response:
    return ctx.render("limits.html", limiters=Limiters(ctx.config, ctx.redis).all())
