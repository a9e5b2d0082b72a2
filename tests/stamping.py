"""Reading back the ``enqueued_at`` that a move to a queue adds to a payload's bytes.

schedule.lua appends the field without re-encoding (kiqpy/lua/schedule.lua explains why), so a
moved payload must be its member byte for byte, but for a map header counting one more entry
and the field at the end. :func:`unstamp` undoes exactly that and fails on anything else.
"""

from __future__ import annotations

import re
import time

import msgpack

_KEY = msgpack.packb("enqueued_at")
_JSON_FIELD = re.compile(rb',?"enqueued_at":(\d+)$')


def unstamp(queued: bytes) -> tuple[bytes, int]:
    """(the payload as it was before the move, the enqueued_at added) for a payload a move
    stamped; AssertionError if the bytes are anything else."""
    if queued[:1] < b"\x80":
        body = queued.rstrip(b" \t\r\n")
        assert body.endswith(b"}"), queued
        found = _JSON_FIELD.search(body[:-1])
        assert found, queued
        before = body[:found.start()] + queued[len(body) - 1:]
        return before, int(found.group(1))
    first = queued[0]
    if first <= 0x8F:
        count, header = first & 0x0F, 1
    elif first == 0xDE:
        count, header = int.from_bytes(queued[1:3], "big"), 3
    else:
        assert first == 0xDF, queued
        count, header = int.from_bytes(queued[1:5], "big"), 5
    at = queued.rindex(_KEY)
    value = msgpack.unpackb(queued[at + len(_KEY):])
    assert type(value) is int and at + len(_KEY) + len(msgpack.packb(value)) == len(queued)
    count -= 1
    if count < 16:
        old_header = bytes([0x80 | count])
    elif count < 2**16:
        old_header = b"\xde" + count.to_bytes(2, "big")
    else:
        old_header = b"\xdf" + count.to_bytes(4, "big")
    return old_header + queued[header:at], value


def assert_moved(queued: bytes, member: bytes, since: float | None = None) -> None:
    """``queued`` is ``member`` with a fresh enqueued_at (epoch ms, not before ``since``)."""
    before, enqueued_at = unstamp(queued)
    assert before == member
    low = (time.time() - 60 if since is None else since) * 1000
    assert low - 1 <= enqueued_at <= time.time() * 1000 + 1
