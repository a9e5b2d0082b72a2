"""The Redis key browser: every key of our namespace (SCAN, a page at a time, with type, size
and TTL), and the contents of one key, a page at a time, job payloads decoded.

Key names are bytes end to end (a key need not be UTF-8): URLs carry them percent-encoded.
Reads only; SCAN-family commands, so a big database is never blocked.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote_from_bytes

from kiqpy.api import JobRecord
from kiqpy.connection import translate_errors
from kiqpy.web.context import Context
from kiqpy.web.http import HTTPError, Response

KEYS_PER_PAGE = 50
SCAN_COUNT = 100  # keys SCAN examines per call
ITEMS_PER_PAGE = 50
SCAN_ROUNDS = 50  # SCAN calls for one page at most: a sparse namespace still answers quickly
STRING_LIMIT = 64 * 1024
VALUE_LIMIT = 4000  # characters of one value shown
MAX_CURSOR = 2**64 - 1
STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
SIZE_COMMANDS = {"list": "LLEN", "set": "SCARD", "zset": "ZCARD", "hash": "HLEN",
                 "string": "STRLEN", "stream": "XLEN"}


def key_link(ctx: Context, key: bytes, **query: Any) -> str:
    extra = "".join(f"&{name}={value}" for name, value in query.items())
    return f"{ctx.url('/keys/view')}?key={quote_from_bytes(key, safe='')}{extra}"


def show(value: bytes) -> dict[str, Any]:
    """A value as a person should see it: a job (class, jid, args), text, or escaped bytes."""
    record = JobRecord(value)
    if record.error is None and record.klass:
        return {"job": record, "text": None}
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = repr(value)[2:-1]
    if len(text) > VALUE_LIMIT:
        text = text[:VALUE_LIMIT] + f"… ({len(value):,} bytes in all)"
    return {"job": None, "text": text}


# -- the listing ---------------------------------------------------------------------------------
def listing(ctx: Context) -> Response:
    cursor = ctx.request.int_arg("cursor", 0, low=0, high=MAX_CURSOR)
    needle = ctx.request.arg("match")
    with translate_errors(ctx.redis):
        next_cursor, names = _scan(ctx, cursor, ctx.keys.scan_pattern(needle))
        rows = _describe(ctx, sorted(names))
        total = ctx.redis.dbsize()
    return ctx.render("keys.html", rows=rows, cursor=cursor, next_cursor=next_cursor,
                      needle=needle, total=total, key_link=lambda k: key_link(ctx, k))


def _scan(ctx: Context, cursor: int, pattern: str) -> tuple[int, list[bytes]]:
    names: list[bytes] = []
    for _ in range(SCAN_ROUNDS):
        reply: Any = ctx.redis.scan(cursor, match=pattern, count=SCAN_COUNT)
        cursor, batch = reply
        names.extend(batch)
        if cursor == 0 or len(names) >= KEYS_PER_PAGE:
            break
    return int(cursor), list(dict.fromkeys(names))


def _describe(ctx: Context, names: list[bytes]) -> list[dict[str, Any]]:
    """Type, TTL and size of each key: two pipelined round trips for the whole page."""
    pipe = ctx.redis.pipeline(transaction=False)
    for name in names:
        pipe.type(name)
        pipe.ttl(name)
    replies = pipe.execute()
    kinds = [_text(k) for k in replies[0::2]]
    pipe = ctx.redis.pipeline(transaction=False)
    for name, kind in zip(names, kinds, strict=True):
        pipe.execute_command(SIZE_COMMANDS.get(kind, "EXISTS"), name)
    sizes = pipe.execute(raise_on_error=False)
    return [{"name": name, "label": _label(name), "type": kind, "ttl": int(ttl),
             "size": size if isinstance(size, int) and kind in SIZE_COMMANDS else None}
            for name, kind, ttl, size in zip(names, kinds, replies[1::2], sizes, strict=True)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _label(name: bytes) -> str:
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        return repr(name)[2:-1]


# -- one key -------------------------------------------------------------------------------------
def view(ctx: Context) -> Response:
    name = ctx.request.arg_bytes("key")
    if not name:
        raise HTTPError(400, "which key? (?key=<name>)")
    if not ctx.keys.owns(name):
        raise HTTPError(404, f"{_label(name)[:200]!r} is not a key of namespace "
                             f"{ctx.config.namespace!r}")
    with translate_errors(ctx.redis):
        kind = _text(ctx.redis.type(name))
        if kind == "none":
            raise HTTPError(404, f"there is no key {_label(name)[:200]!r}")
        ttl = int(ctx.redis.ttl(name))
        content = _content(ctx, name, kind)
    return ctx.render("key.html", name=name, label=_label(name), kind=kind, ttl=ttl,
                      show=show, link=lambda **q: key_link(ctx, name, **q), **content)


def _content(ctx: Context, name: bytes, kind: str) -> dict[str, Any]:
    readers = {"string": _string, "list": _list, "zset": _zset, "set": _set, "hash": _hash,
               "stream": _stream}
    reader = readers.get(kind)
    if reader is None:
        return {"rows": [], "total": None, "page": 1, "pages": 1, "next_cursor": None,
                "next_after": None, "unsupported": True}
    return {"unsupported": False, "page": 1, "pages": 1, "next_cursor": None,
            "next_after": None, **reader(ctx, name)}


def _paged(ctx: Context, total: int) -> tuple[int, int, int]:
    """(page, first index, pages) for an indexable key of ``total`` items."""
    pages = max(1, -(-total // ITEMS_PER_PAGE))
    page = ctx.request.int_arg("page", 1)
    if page > pages:
        raise HTTPError(404, f"page {page} does not exist: this key has {pages} page(s)")
    return page, (page - 1) * ITEMS_PER_PAGE, pages


def _string(ctx: Context, name: bytes) -> dict[str, Any]:
    total = int(ctx.redis.strlen(name))
    value = ctx.redis.getrange(name, 0, STRING_LIMIT - 1)
    return {"rows": [(None, value)], "total": total}


def _list(ctx: Context, name: bytes) -> dict[str, Any]:
    total = int(ctx.redis.llen(name))
    page, first, pages = _paged(ctx, total)
    values = ctx.redis.lrange(name, first, first + ITEMS_PER_PAGE - 1)
    return {"rows": list(enumerate(values, first)), "total": total, "page": page,
            "pages": pages}


def _zset(ctx: Context, name: bytes) -> dict[str, Any]:
    total = int(ctx.redis.zcard(name))
    page, first, pages = _paged(ctx, total)
    pairs: Any = ctx.redis.zrange(name, first, first + ITEMS_PER_PAGE - 1, withscores=True)
    return {"rows": [(score, value) for value, score in pairs], "total": total,
            "page": page, "pages": pages}


def _set(ctx: Context, name: bytes) -> dict[str, Any]:
    cursor = ctx.request.int_arg("cursor", 0, low=0, high=MAX_CURSOR)
    next_cursor, members = ctx.redis.sscan(name, cursor, count=ITEMS_PER_PAGE)
    return {"rows": [(None, m) for m in sorted(members)], "total": int(ctx.redis.scard(name)),
            "next_cursor": int(next_cursor) or None}


def _hash(ctx: Context, name: bytes) -> dict[str, Any]:
    cursor = ctx.request.int_arg("cursor", 0, low=0, high=MAX_CURSOR)
    reply: Any = ctx.redis.hscan(name, cursor, count=ITEMS_PER_PAGE)
    next_cursor, fields = reply
    return {"rows": sorted(fields.items()), "total": int(ctx.redis.hlen(name)),
            "next_cursor": int(next_cursor) or None}


def _stream(ctx: Context, name: bytes) -> dict[str, Any]:
    after = ctx.request.arg("after")
    if after and not STREAM_ID.match(after):
        raise HTTPError(400, f"after must be a stream entry id such as 1700000000000-0, "
                             f"got {after[:40]!r}")
    start = f"({after}" if after else "-"
    entries: Any = ctx.redis.xrange(name, start, "+", count=ITEMS_PER_PAGE)
    rows = [(_text(ident), b" ".join(k + b"=" + v for k, v in fields.items()))
            for ident, fields in entries]
    return {"rows": rows, "total": int(ctx.redis.xlen(name)),
            "next_after": rows[-1][0] if len(rows) == ITEMS_PER_PAGE else None}
