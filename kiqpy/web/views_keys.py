"""The Redis key browser: every key of our namespace (SCAN, a page at a time, with type, size
and TTL), and the contents of one key, a page at a time, job payloads decoded.

Key names are bytes end to end (a key need not be UTF-8): URLs carry them percent-encoded.
Reads only; SCAN-family commands, so a big database is never blocked.

One page of a key costs bounded work whatever its elements hold. A string is read with STRLEN
and GETRANGE (64 KiB). Elements of lists, sorted sets, hashes, sets and streams cannot be read
in part (Redis has no GETRANGE for them), so they are read a few at a time (:class:`Budget`):
one at first, doubled while the biggest element seen keeps a read under 512 KiB, one at a time
once they are big. Each element is cut to its first bytes (with its length) as soon as it
arrives, and a page stops once 8 MiB were read, with a link to read on. So one command copies
about 512 KiB or one element in Redis (a 5 MB element: under 1 ms), the process holds about
that much at a time (one read: the previous one is dropped first), and one request reads 8 MiB
plus one read at most. Sets and hashes are the exception Redis imposes: an SSCAN/HSCAN step
returns a whole hash bucket, which holds as many elements as the server's random hash seed put
together (CI once met 3 to 5 of 12).

(A Lua script returning ``string.sub`` heads was measured too: Redis copies every element into
Lua through its reply buffer, about 14 ms of Redis time for a 5 MB element against 0.7 ms for a
plain LINDEX, so the server would block longer to send fewer bytes.)
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from kiqpy.api import JobRecord
from kiqpy.connection import is_cluster, key_count, translate_errors
from kiqpy.web.context import Context, JobRow, back, digest
from kiqpy.web.http import MAX_CURSOR, HTTPError, Response
from kiqpy.web.views_jobs import job_links

KEYS_PER_PAGE = 50
SCAN_COUNT = 100  # keys SCAN examines per call
ITEMS_PER_PAGE = 50
SCAN_ROUNDS = 50  # SCAN calls for one page at most: a sparse namespace still answers quickly
STRING_LIMIT = 64 * 1024
VALUE_LIMIT = 4000  # characters of one value shown
HEAD_BYTES = 4 * VALUE_LIMIT + 4  # bytes of an element kept to show VALUE_LIMIT characters
PAGE_BYTES = 8 * 1024 * 1024  # bytes of elements one page reads at most (plus one element)
BATCH_BYTES = 512 * 1024  # bytes one read aims at (Budget)
STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
SIZE_COMMANDS = {"list": "LLEN", "set": "SCARD", "zset": "ZCARD", "hash": "HLEN",
                 "string": "STRLEN", "stream": "XLEN"}


def key_link(ctx: Context, key: bytes, **query: Any) -> str:
    extra = "".join(f"&{name}={value}" for name, value in query.items())
    return ctx.key_url(key) + extra


class Peek(NamedTuple):
    """The first bytes of an element (``head``) and its full length (``size``)."""

    head: bytes
    size: int
    digest: str = ""  # of the whole element: names a job in links to its page


def show(value: bytes | Peek) -> dict[str, Any]:
    """A value as a person should see it: a job (class, jid, args), text, or escaped bytes.
    A value read only in part (a :class:`Peek` of a longer element) is shown as text."""
    size = value.size if isinstance(value, Peek) else len(value)
    head = value.head if isinstance(value, Peek) else value[:HEAD_BYTES]
    if size == len(head):
        record = JobRecord(head)
        if record.error is None and record.klass:
            return {"job": record, "row": JobRow(record), "text": None}
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = size > len(head) and exc.start >= len(head) - 3  # inside a character at the end
        text = head[: exc.start].decode("utf-8") if cut else repr(head)[2:-1]
    if len(text) > VALUE_LIMIT or size > len(head):
        text = text[:VALUE_LIMIT] + f"… ({size:,} bytes in all)"
    return {"job": None, "row": None, "text": text}


# -- the listing ---------------------------------------------------------------------------------
def listing(ctx: Context) -> Response:
    cursor = ctx.request.int_arg("cursor", 0, low=0, high=MAX_CURSOR)
    needle = ctx.request.arg("match")
    with translate_errors(ctx.redis):
        next_cursor, names = _scan(ctx, cursor, ctx.keys.scan_pattern(needle))
        rows = _describe(ctx, sorted(names))
        total = key_count(ctx.redis)
    return ctx.render("keys.html", rows=rows, cursor=cursor, next_cursor=next_cursor,
                      needle=needle, total=total, key_link=lambda k: key_link(ctx, k))


def _scan(ctx: Context, cursor: int, pattern: str) -> tuple[int, list[bytes]]:
    if is_cluster(ctx.redis):
        return _scan_cluster(ctx, cursor, pattern)
    names: list[bytes] = []
    for _ in range(SCAN_ROUNDS):
        reply: Any = ctx.redis.scan(cursor, match=pattern, count=SCAN_COUNT)
        cursor, batch = reply
        names.extend(batch)
        if cursor == 0 or len(names) >= KEYS_PER_PAGE:
            break
    return int(cursor), list(dict.fromkeys(names))


# On Redis Cluster the page's cursor walks the primaries one after the other: it is the
# primary's index (sorted by name) times NODE_CURSORS plus that node's own SCAN cursor.
NODE_CURSORS = 1 << 32


def _scan_cluster(ctx: Context, cursor: int, pattern: str) -> tuple[int, list[bytes]]:
    client: Any = ctx.redis
    nodes = sorted(client.get_primaries(), key=lambda node: node.name)
    index, node_cursor = divmod(cursor, NODE_CURSORS)
    names: list[bytes] = []
    for _ in range(SCAN_ROUNDS):
        if index >= len(nodes):
            return 0, list(dict.fromkeys(names))
        cursors, batch = client.scan(node_cursor, match=pattern, count=SCAN_COUNT,
                                     target_nodes=nodes[index])
        node_cursor = int(next(iter(cursors.values())))
        names.extend(batch)
        if node_cursor == 0:
            index += 1
        if len(names) >= KEYS_PER_PAGE:
            break
    following = 0 if index >= len(nodes) else index * NODE_CURSORS + int(node_cursor)
    return following, list(dict.fromkeys(names))


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
                      show=show, link=lambda **q: key_link(ctx, name, **q),
                      job_href=job_links(ctx, name), utf8_name=_label(name) == name.decode(
                          "utf-8", "replace"), **content)


def action(ctx: Context) -> Response:
    """POST ``op=delete``: delete the key (an odd value found through a page's notice, or
    anything else of the namespace)."""
    name = ctx.request.arg_bytes("key")
    if not name or not ctx.keys.owns(name):
        raise HTTPError(404, "which key of this namespace? (?key=<name>)")
    op = ctx.request.field("op")
    if op != "delete":
        raise HTTPError(400, f"unknown action {op[:40]!r}: use delete")
    with translate_errors(ctx.redis):
        deleted = int(ctx.redis.unlink(name))
    return back(ctx, "/keys", "unlink", deleted)


def _content(ctx: Context, name: bytes, kind: str) -> dict[str, Any]:
    readers = {"string": _string, "list": _list, "zset": _zset, "set": _set, "hash": _hash,
               "stream": _stream}
    reader = readers.get(kind)
    if reader is None:
        return {"rows": [], "total": None, "page": 1, "pages": 1, "next_cursor": None,
                "next_after": None, "cut_short": None, "unsupported": True}
    return {"unsupported": False, "page": 1, "pages": 1, "next_cursor": None,
            "next_after": None, "cut_short": None, **reader(ctx, name)}


def _paged(ctx: Context, total: int) -> tuple[int, int, int]:
    """(page, first index, pages) for an indexable key of ``total`` items."""
    pages = max(1, -(-total // ITEMS_PER_PAGE))
    page = ctx.request.int_arg("page", 1)
    if page > pages:
        raise HTTPError(404, f"page {page} does not exist: this key has {pages} page(s)")
    # ?start= continues a page cut short because its elements were big.
    first = ctx.request.int_arg("start", (page - 1) * ITEMS_PER_PAGE, low=0)
    return first // ITEMS_PER_PAGE + 1, first, pages


def _string(ctx: Context, name: bytes) -> dict[str, Any]:
    total = int(ctx.redis.strlen(name))
    value: Any = ctx.redis.getrange(name, 0, min(STRING_LIMIT, HEAD_BYTES) - 1)
    return {"rows": [(None, Peek(value, total))], "total": total}


class Budget:
    """The reads of one page of a key: how many elements to ask for next (:attr:`batch`, slow
    start as in the module docstring) and whether the page's bytes are spent."""

    def __init__(self) -> None:
        self.batch, self.read, self.biggest = 1, 0, 0

    @property
    def spent(self) -> bool:
        return self.read >= PAGE_BYTES

    def took(self, values: list[bytes]) -> list[Peek]:
        """Account for ``values`` just read; their heads and lengths (the rest is dropped)."""
        sizes = [len(v) for v in values]
        self.read += sum(sizes)
        self.biggest = max([self.biggest, *sizes])
        self.batch = max(1, min(ITEMS_PER_PAGE, self.batch * 2,
                                BATCH_BYTES // max(1, self.biggest)))
        return [Peek(v[:HEAD_BYTES], n, digest(v)) for v, n in zip(values, sizes, strict=True)]


def _cut_short(at: int, end: int) -> int | None:
    """Where a page stopped because its elements were big (None: it is complete)."""
    return at if at < end else None


def _list(ctx: Context, name: bytes) -> dict[str, Any]:
    total = int(ctx.redis.llen(name))
    page, first, pages = _paged(ctx, total)
    end, at, budget = min(first + ITEMS_PER_PAGE, total), first, Budget()
    rows: list[tuple[int, Peek]] = []
    while at < end and not budget.spent:
        values: Any = ctx.redis.lrange(name, at, min(end, at + budget.batch) - 1)
        if not values:
            break
        rows.extend(enumerate(budget.took(values), at))
        at += len(values)
        del values  # before the next read: the process holds one read at a time
    return {"rows": rows, "total": total, "page": page, "pages": pages,
            "cut_short": _cut_short(at, end)}


def _zset(ctx: Context, name: bytes) -> dict[str, Any]:
    total = int(ctx.redis.zcard(name))
    page, first, pages = _paged(ctx, total)
    end, at, budget = min(first + ITEMS_PER_PAGE, total), first, Budget()
    rows: list[tuple[float, Peek]] = []
    while at < end and not budget.spent:
        pairs: Any = ctx.redis.zrange(name, at, min(end, at + budget.batch) - 1,
                                      withscores=True)
        if not pairs:
            break
        peeks = budget.took([value for value, _ in pairs])
        rows.extend((score, peek) for (_, score), peek in zip(pairs, peeks, strict=True))
        at += len(pairs)
        del pairs  # before the next read
    return {"rows": rows, "total": total, "page": page, "pages": pages,
            "cut_short": _cut_short(at, end)}


def _set(ctx: Context, name: bytes) -> dict[str, Any]:
    cursor = ctx.request.int_arg("cursor", 0, low=0, high=MAX_CURSOR)
    budget, members = Budget(), list[Peek]()
    while True:
        reply: Any = ctx.redis.sscan(name, cursor, count=budget.batch)
        cursor, batch = int(reply[0]), reply[1]
        members.extend(budget.took(batch))
        del reply, batch  # before the next read
        if cursor == 0 or len(members) >= ITEMS_PER_PAGE or budget.spent:
            break
    return {"rows": [(None, m) for m in sorted(members)], "total": int(ctx.redis.scard(name)),
            "next_cursor": cursor or None}


def _hash(ctx: Context, name: bytes) -> dict[str, Any]:
    cursor = ctx.request.int_arg("cursor", 0, low=0, high=MAX_CURSOR)
    budget, rows = Budget(), list[tuple[Peek, Peek]]()
    while True:
        reply: Any = ctx.redis.hscan(name, cursor, count=budget.batch)
        cursor, fields = int(reply[0]), reply[1]
        flat = budget.took([part for pair in fields.items() for part in pair])
        del reply, fields  # before the next read
        rows.extend(zip(flat[0::2], flat[1::2], strict=True))
        if cursor == 0 or len(rows) >= ITEMS_PER_PAGE or budget.spent:
            break
    return {"rows": sorted(rows), "total": int(ctx.redis.hlen(name)),
            "next_cursor": cursor or None}


def _stream(ctx: Context, name: bytes) -> dict[str, Any]:
    after = ctx.request.arg("after")
    if after and not STREAM_ID.match(after):
        raise HTTPError(400, f"after must be a stream entry id such as 1700000000000-0, "
                             f"got {after[:40]!r}")
    budget, rows, ended = Budget(), list[tuple[str, Peek]](), False
    while len(rows) < ITEMS_PER_PAGE and not budget.spent:
        start = f"({after}" if after else "-"
        count = min(budget.batch, ITEMS_PER_PAGE - len(rows))
        entries: Any = ctx.redis.xrange(name, start, "+", count=count)
        idents = [_text(ident) for ident, _ in entries]
        joined = [b" ".join(k + b"=" + v for k, v in fields.items()) for _, fields in entries]
        del entries  # the joined copies replace the entries before the next read
        rows.extend(zip(idents, budget.took(joined), strict=True))
        del joined
        if len(idents) < count:
            ended = True
            break
        after = rows[-1][0]
    return {"rows": rows, "total": int(ctx.redis.xlen(name)),
            "next_after": rows[-1][0] if rows and not ended else None}
