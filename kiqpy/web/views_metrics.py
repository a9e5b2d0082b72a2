"""The Metrics page: per job class, executions, failures, failure rate, average and p95 time over
a period (1 h, 8 h, 24 h, 72 h), and one class's page with its histogram and its executions and
time per minute, deploy marks drawn on the charts. Charts are SVG drawn here, no script."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from kiqpy.api import Metrics
from kiqpy.api.metrics import PERIODS, ClassMetrics, DeployMark
from kiqpy.histogram import BUCKETS_MS
from kiqpy.web.context import Context
from kiqpy.web.http import HTTPError, Response

SORTS = {"time": lambda r: -r.milliseconds, "processed": lambda r: -r.processed,
         "failed": lambda r: -r.failed, "avg": lambda r: -r.avg_seconds,
         "p95": lambda r: -(r.p95_seconds or 0.0), "class": lambda r: r.job_class}
WIDTH, HEIGHT = 720, 160
TOP_CHARTED = 5


def _period(ctx: Context) -> tuple[str, int]:
    period = ctx.request.arg("period") or "1h"
    if period not in PERIODS:
        raise HTTPError(400, f"unknown period {period[:20]!r}: use {', '.join(PERIODS)}")
    return period, PERIODS[period]


def listing(ctx: Context) -> Response:
    if ctx.app.prometheus and "text/html" not in (
            ctx.request.header("Accept") or ""):
        return _prometheus(ctx)
    period, minutes = _period(ctx)
    sort = ctx.request.arg("sort") or "time"
    if sort not in SORTS:
        raise HTTPError(400, f"unknown sort {sort[:20]!r}: use {', '.join(SORTS)}")
    metrics = Metrics(ctx.config, ctx.redis)
    top = metrics.top(minutes)
    rows = sorted(top, key=SORTS[sort])
    # The chart: executions per minute of the classes with the most time, one line each.
    names = [row.job_class for row in top[:TOP_CHARTED]]
    table = metrics.table(names, minutes) if names else []
    marks = metrics.deploys(minutes)
    charts = []
    for title, value in (("Executions per minute", lambda r: r.processed),
                         ("Seconds of work per minute", lambda r: r.total_seconds)):
        top_value = _top(table, value)
        lines = [{"name": name, "n": n, **_chart([(t, by[name]) for t, by in table], marks,
                                                 value, top=top_value)}
                 for n, name in enumerate(names)]
        charts.append((title, lines))
    return ctx.render("metrics.html", rows=rows, period=period, periods=list(PERIODS),
                      sort=sort, charts=charts if names else [], width=WIDTH, height=HEIGHT)


def _top(table: list[tuple[_dt.datetime, dict[str, ClassMetrics]]], value: Any) -> float:
    """The largest value any charted class reaches, so every line shares one scale."""
    return float(max((value(row) for _, by in table for row in by.values()), default=0))


def _prometheus(ctx: Context) -> Response:
    """A Prometheus scrape (``create_app(metrics=True)``): the cluster's numbers from Redis."""
    from kiqpy.api.prometheus import CONTENT_TYPE, exposition

    return Response(exposition(ctx.config, process=False), 200, CONTENT_TYPE)


def job_class(ctx: Context, name: str) -> Response:
    period, minutes = _period(ctx)
    metrics = Metrics(ctx.config, ctx.redis)
    series = metrics.series(name, minutes)
    total = ClassMetrics(name)
    for _, row in series:
        total.processed += row.processed
        total.failed += row.failed
        total.milliseconds += row.milliseconds
        total.histogram = [a + b for a, b in zip(total.histogram, row.histogram, strict=True)]
    marks = metrics.deploys(minutes)
    charts = [
        ("Executions per minute", _chart(series, marks, lambda r: r.processed)),
        ("Seconds of work per minute", _chart(series, marks, lambda r: r.total_seconds)),
    ]
    bars = _bars(total.histogram)
    return ctx.render("metrics_class.html", name=name, total=total, period=period,
                      periods=list(PERIODS), charts=charts, bars=bars, marks=marks)


def _chart(series: list[tuple[_dt.datetime, ClassMetrics]], marks: list[DeployMark],
           value: Any, top: float | None = None) -> dict[str, Any]:
    """Polyline points and deploy-mark x positions for one series (scaled to ``top``, or to
    its own largest value)."""
    values = [float(value(row)) for _, row in series]
    top = top or max(values, default=0.0) or 1.0
    step = WIDTH / max(1, len(values) - 1)
    points = " ".join(f"{i * step:.1f},{HEIGHT - v / top * (HEIGHT - 10):.1f}"
                      for i, v in enumerate(values))
    start = series[0][0].timestamp() if series else 0.0
    span = (series[-1][0].timestamp() - start) if len(series) > 1 else 1.0
    lines = [{"x": round((m.at.timestamp() - start) / span * WIDTH, 1), "label": m.label}
             for m in marks if span > 0]
    return {"points": points, "max": max(values, default=0.0), "marks": lines,
            "width": WIDTH, "height": HEIGHT,
            "first": series[0][0] if series else None, "last": series[-1][0] if series else None}


def _bars(counts: list[int]) -> list[dict[str, Any]]:
    top = max(counts, default=0) or 1
    labels = [_bound(ms) for ms in BUCKETS_MS] + [f"> {_bound(BUCKETS_MS[-1])}"]
    return [{"label": f"≤ {label}" if i < len(BUCKETS_MS) else label, "count": count,
             "percent": round(count / top * 100)} for i, (label, count)
            in enumerate(zip(labels, counts, strict=True))]


def _bound(ms: int) -> str:
    return f"{ms} ms" if ms < 1000 else f"{ms // 1000} s"
