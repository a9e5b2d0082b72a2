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
    """The inverse of :func:`compress_backtrace`."""
    return json.loads(zlib.decompress(base64.b64decode(data)))


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
