"""Templates (Jinja2, autoescape on for every template) and the filters pages use to show
values from Redis as text: every value is escaped by Jinja, never marked safe here."""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from typing import Any

import jinja2

from kiqpy.payload import epoch_seconds

ARGS_LIMIT = 400  # characters of args shown in a table cell
# Characters of args a row's "show all" expander holds: a page of 25 rows of huge jobs stays
# near 100 KiB; beyond it, the job's own page (64 KiB) and its raw download.
EXPAND_LIMIT = 4 * 1024
# Fields of a job map that hold times (epoch seconds or milliseconds): "All fields" shows them
# as times, with the stored number beside.
TIME_FIELDS = ("created_at", "enqueued_at", "failed_at", "retried_at", "at", "run_at",
               "scheduled_at", "completed_at")
# Characters of one value (arguments, a message, all fields) shown on a job's page; the rest
# is downloadable as the raw stored job.
VALUE_LIMIT = 64 * 1024


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kiqpy.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=ago, number=number, args=show_args, mb=megabytes, iso=iso,
                       duration=duration, pretty=pretty, text=as_text, clip=clip,
                       clip_json=clip_json, with_times=with_times)
    env.globals["inf"] = float("inf")
    return env


def ago(moment: _dt.datetime | float | None, now: float | None = None) -> str:
    """``3m 5s ago`` or ``in 2h 10m`` (``-`` for no time)."""
    if moment is None:
        return "-"
    epoch = moment.timestamp() if isinstance(moment, _dt.datetime) else float(moment)
    if not math.isfinite(epoch):
        return f"{epoch!r} (not a time)"  # a score of inf or -inf: shown as stored
    delta = epoch - (time.time() if now is None else now)
    text = duration(abs(delta))
    return f"in {text}" if delta > 0.5 else f"{text} ago"


def duration(seconds: float) -> str:
    """``12s``, ``5m 3s``, ``2h 10m``, ``3d 4h``."""
    if not math.isfinite(seconds):
        return f"{seconds!r}"
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
    """A value as indented JSON (reprs for what JSON cannot hold). Unbounded: for values
    from Redis use :func:`clip_json`."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr, sort_keys=True)


def clip_json(value: Any, limit: int = VALUE_LIMIT) -> tuple[str, int]:
    """(``value`` as JSON cut to ``limit`` characters, how many characters were cut). Small
    values are indented; a big one is encoded once, compactly (C speed), and cut, so a job
    with 20 MB of args costs one encoding, not a 20 MB page."""
    compact = json.dumps(value, ensure_ascii=False, default=repr, sort_keys=True)
    if len(compact) <= limit:
        indented = pretty(value)
        if len(indented) <= limit:
            return indented, 0
    return compact[:limit], max(0, len(compact) - limit)


def clip(value: bytes | str | None, limit: int = VALUE_LIMIT) -> tuple[str, int]:
    """(``value`` as text cut to ``limit`` characters, how many were cut)."""
    if value is None:
        return "", 0
    text = as_text(value, limit)
    return (text, 0) if len(text) <= limit else (text[:limit], max(1, len(value) - limit))


def with_times(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with each time field (:data:`TIME_FIELDS`) shown as ``"<UTC time> (<stored
    number>)"``, so "All fields" reads as times and still says what is stored."""
    out = dict(fields)
    for name in TIME_FIELDS:
        stored = out.get(name)
        seconds = epoch_seconds(stored)
        if seconds is not None:
            out[name] = f"{iso(seconds)} ({stored!r})" if math.isfinite(seconds) \
                else f"{stored!r} (not a time)"
    return out


def show_args(args: Any, limit: int = ARGS_LIMIT) -> str:
    """Job args as one line of JSON, cut at ``limit`` characters. Only about ``limit``
    characters of them are ever encoded, however big they are."""
    args = shrink(args, limit)
    text = ", ".join(json.dumps(a, ensure_ascii=False, default=repr) for a in args) \
        if isinstance(args, list) else json.dumps(args, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shrink(value: Any, budget: int) -> Any:
    """A copy of ``value`` holding about ``budget`` characters at most: long strings cut,
    lists and maps cut after the items that fit (work proportional to ``budget``)."""
    left = [budget]

    def walk(item: Any, depth: int) -> Any:
        if left[0] <= 0 or depth > 20:
            return "…"
        if isinstance(item, str):
            cut = item[: left[0] + 1]
            left[0] -= len(cut) + 2
            return cut
        if isinstance(item, list):
            out = []
            for element in item:
                if left[0] <= 0:
                    out.append("…")
                    break
                out.append(walk(element, depth + 1))
            return out
        if isinstance(item, dict):
            mapping = {}
            for key, element in item.items():
                if left[0] <= 0:
                    mapping["…"] = "…"
                    break
                left[0] -= len(str(key)[:budget]) + 4
                mapping[str(key)[:budget]] = walk(element, depth + 1)
            return mapping
        left[0] -= 8
        return item

    return walk(value, 0)


def as_text(value: bytes | str, limit: int = 4000) -> str:
    """Bytes as UTF-8 text, or with escapes (``\\x81``) where they are not UTF-8; cut at
    ``limit`` characters (only about that much of ``value`` is decoded)."""
    if isinstance(value, str):
        text = value[: limit + 1]
    else:
        head = value[: 4 * limit + 4]
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Cut inside a character at the end: the text before it; else not UTF-8 at all.
            cut = len(head) < len(value) and exc.start >= len(head) - 3
            text = head[: exc.start].decode("utf-8") if cut else repr(head)[2:-1]
    return text if len(text) <= limit else text[:limit] + "…"
