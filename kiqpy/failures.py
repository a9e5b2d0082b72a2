"""How a failure is written down, shared by the worker (retries, recovery, the scheduler) and
the data API: the error fields of a failed job, its compressed backtrace, the dead set's add and
trim, and the dead-set entry that stands for bytes that are not a job. No I/O of its own: the
dead-set helpers queue commands on a pipeline the caller owns.
"""

from __future__ import annotations

import base64
import json
import time
import traceback
import zlib
from typing import Any

from kiqpy.config import Config
from kiqpy.keys import Keys
from kiqpy.payload import Job, new_jid, now_ms

MAX_MESSAGE = 10_000


def error_class(exc: BaseException) -> str:
    """``ValueError`` for builtins, ``module.QualName`` otherwise."""
    kind = type(exc)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def error_message(exc: BaseException) -> str:
    """``str(exc)`` cut to :data:`MAX_MESSAGE` chars, fit for both encodings: lone surrogates
    (``os.fsdecode`` of an undecodable file name makes them) are escaped, and an exception
    whose ``__str__`` raises still gets a message. Recording a failure must not fail."""
    try:
        text = str(exc)
    except Exception as str_exc:
        text = f"<{type(exc).__name__}: str() failed: {type(str_exc).__name__}>"
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:MAX_MESSAGE]


def compress_backtrace(exc: BaseException, lines: bool | int) -> str:
    """The traceback (innermost ``lines`` entries, or all) as base64(zlib(JSON list)), the
    same packing Sidekiq uses for ``error_backtrace``."""
    entries = [line.rstrip("\n") for line in traceback.format_tb(exc.__traceback__)]
    if lines is not True:
        entries = entries[-int(lines):]
    return base64.b64encode(zlib.compress(json.dumps(entries).encode())).decode()


def decompress_backtrace(data: str) -> list[str]:
    """The inverse of :func:`compress_backtrace`. Unbounded: for a backtrace stored by anyone,
    use :func:`read_backtrace`, which stops at a size."""
    return json.loads(zlib.decompress(base64.b64decode(data)))


# base64 characters decoded at a time by read_backtrace (a multiple of 4).
_B64_CHUNK = 64 * 1024


def read_backtrace(data: str, max_bytes: int) -> tuple[list[str], bool]:
    """The lines of a compressed backtrace, inflating at most ``max_bytes`` bytes of it, and
    whether it was cut there. Memory stays near ``max_bytes`` however far the stored bytes
    would inflate (a zip bomb of 200 MB stops at the limit): base64 is decoded a chunk at a
    time and zlib's ``max_length`` caps each step. A cut list keeps its complete lines (or,
    when even the first is longer than the limit, that line's start). Raises ValueError
    (binascii.Error, zlib.error) for bytes that are not a compressed backtrace."""
    inflate = zlib.decompressobj()
    out: list[bytes] = []
    size, cut = 0, False
    for at in range(0, len(data), _B64_CHUNK):
        pending = base64.b64decode(data[at:at + _B64_CHUNK])
        while pending:
            piece = inflate.decompress(pending, max_bytes + 1 - size)
            out.append(piece)
            size += len(piece)
            pending = inflate.unconsumed_tail
            if size > max_bytes:
                cut = True
                break
        if cut:
            break
    raw = b"".join(out)
    if not cut:
        raw += inflate.flush()
        lines = json.loads(raw)
        if not isinstance(lines, list):
            raise ValueError("a backtrace is a JSON list")
        return [str(line) for line in lines], False
    return _complete_lines(raw[:max_bytes].decode("utf-8", "replace")), True


def _complete_lines(text: str) -> list[str]:
    """The whole JSON strings at the start of a cut JSON list (``["a", "b", "c`` -> a, b)."""
    decoder = json.JSONDecoder()
    lines: list[str] = []
    at = text.find("[") + 1
    while at < len(text):
        while at < len(text) and text[at] in " ,\n\t\r":
            at += 1
        try:
            value, at = decoder.raw_decode(text, at)
        except ValueError:
            break
        lines.append(str(value))
    return lines or [text[text.find("[") + 1:]]


def add_dead(pipe: Any, keys: Keys, config: Config, data: bytes) -> None:
    """Queue on ``pipe`` the commands that add ``data`` to the dead set and trim it to
    ``dead_max_jobs`` entries and ``dead_timeout`` seconds."""
    now = time.time()
    pipe.zadd(keys.dead, {data: now})
    trim_dead(pipe, keys, config, now)


def trim_dead(pipe: Any, keys: Keys, config: Config, now: float) -> None:
    """Queue on ``pipe`` the commands that trim the dead set to its newest ``dead_max_jobs``
    entries and to ``dead_timeout`` seconds before ``now``."""
    pipe.zremrangebyscore(keys.dead, "-inf", now - config.dead_timeout)
    pipe.zremrangebyrank(keys.dead, 0, -(config.dead_max_jobs + 1))


MALFORMED_CLASS = "kiqpy.MalformedPayload"


def malformed_job(queue: str, payload: bytes, reason: str) -> Job:
    """A dead-set entry standing for bytes that are not a job: the reason, and the original
    bytes in base64 so nothing is lost."""
    now = now_ms()
    return {"class": MALFORMED_CLASS, "args": [], "queue": queue, "jid": new_jid(),
            "retry": False, "created_at": now, "failed_at": now,
            "error_class": "kiqpy.errors.PayloadError", "error_message": reason[:MAX_MESSAGE],
            "original_payload": base64.b64encode(payload).decode()}
