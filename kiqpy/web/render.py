"""Templates (Jinja2, autoescape on for every template) and the filters pages use to show
values from Redis as text: every value is escaped by Jinja, never marked safe here."""

from __future__ import annotations

import datetime as _dt
import json
import time
from typing import Any

import jinja2

ARGS_LIMIT = 400  # characters of args shown in a table cell; the job's page shows them all


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kiqpy.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=ago, number=number, args=show_args, mb=megabytes, iso=iso,
                       duration=duration, pretty=pretty, text=as_text)
    env.globals["inf"] = float("inf")
    return env


def ago(moment: _dt.datetime | float | None, now: float | None = None) -> str:
    """``3m 5s ago`` or ``in 2h 10m`` (``-`` for no time)."""
    if moment is None:
        return "-"
    epoch = moment.timestamp() if isinstance(moment, _dt.datetime) else float(moment)
    delta = epoch - (time.time() if now is None else now)
    text = duration(abs(delta))
    return f"in {text}" if delta > 0.5 else f"{text} ago"


def duration(seconds: float) -> str:
    """``12s``, ``5m 3s``, ``2h 10m``, ``3d 4h``."""
    whole = int(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                      ("m", 60, "s", 1)):
        if whole >= size:
            return f"{whole // size}{unit} {whole % size // sub_size}{sub}"
    return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"


def iso(moment: _dt.datetime | float | None) -> str:
    """UTC, to the second: ``2026-11-23 17:02:11 UTC``."""
    if moment is None:
        return "-"
    if not isinstance(moment, _dt.datetime):
        try:
            moment = _dt.datetime.fromtimestamp(float(moment), _dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return "-"
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: int | float) -> str:
    return f"{value:,}"


def megabytes(kib: int) -> str:
    return f"{kib / 1024:.1f} MB"


def pretty(value: Any) -> str:
    """A value as indented JSON (reprs for what JSON cannot hold)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr, sort_keys=True)


def show_args(args: Any, limit: int = ARGS_LIMIT) -> str:
    """Job args as one line of JSON, cut at ``limit`` characters."""
    text = ", ".join(json.dumps(a, ensure_ascii=False, default=repr) for a in args) \
        if isinstance(args, list) else json.dumps(args, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_text(value: bytes | str, limit: int = 4000) -> str:
    """Bytes as UTF-8 text, or with escapes (``\\x81``) where they are not UTF-8."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = repr(value)[2:-1]
    return text if len(text) <= limit else text[:limit] + "…"
