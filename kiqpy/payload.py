"""Job payloads: the job map <-> bytes, and the argument check that runs before any I/O.

A job map holds ``class``, ``args``, ``queue``, ``jid`` (24 hex chars), ``created_at`` and
``enqueued_at`` (epoch milliseconds; float epoch seconds in JSON for Sidekiq 6/7), ``retry``
and, after a failure, the error fields. Unknown fields are kept untouched. Two encodings exist
side by side: msgpack (the default) and JSON (Sidekiq-compatible); :func:`decode` tells them
apart by the first byte: JSON text starts with an ASCII byte (< 0x80), while a msgpack value
starting with one is a lone small int, never a map.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from typing import Any

import msgpack

from kiqpy.errors import ArgumentError, PayloadError

Job = dict[str, Any]

SERIALIZERS = ("msgpack", "json")
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
# Deep nesting is not a real use of job args; bounding it keeps a hostile payload from
# exhausting the stack of the checker or of a decoder.
MAX_DEPTH = 100


def new_jid() -> str:
    """A fresh job id: 24 lowercase hex characters, like Sidekiq's."""
    return os.urandom(12).hex()


def now_ms() -> int:
    """The current time in epoch milliseconds (the unit of ``created_at``/``enqueued_at``)."""
    return time.time_ns() // 1_000_000


# The Sidekiq versions whose JSON wire format kiqpy can write (Config.sidekiq_version): 6.x and
# 7.x store created_at/enqueued_at/failed_at/retried_at as float epoch seconds, 8.x as int epoch
# milliseconds. Readers accept both (epoch_seconds()).
SIDEKIQ_VERSIONS = ("6", "7", "8")


def now_stamp(sidekiq_version: str = "8", serializer: str = "json") -> int | float:
    """The current time as a job timestamp field is written: float epoch seconds in a JSON
    payload for Sidekiq 6/7, else int epoch milliseconds (Sidekiq 8, and always in msgpack)."""
    if serializer == "json" and sidekiq_version in ("6", "7"):
        return time.time()
    return now_ms()


def check_args(args: Any, serializer: str = "msgpack") -> None:
    """Raise :class:`ArgumentError` naming the first value that cannot travel as a job arg.

    >>> check_args([1, {"when": "2026-01-01"}])
    >>> check_args([1, {"when": object()}])
    Traceback (most recent call last):
    ...
    kiqpy.errors.ArgumentError: args[1]["when"]: object is not serializable; ...
    """
    if type(args) is not list:
        raise ArgumentError(f"args must be a list, got {type(args).__name__}")
    check_value(args, "args", serializer)


def check_value(value: Any, path: str, serializer: str = "msgpack") -> None:
    """Like :func:`check_args` for any value (custom job fields, for one); the error starts
    with ``path`` followed by the bad value's place in ``value``:

    >>> check_value({"tenant": {"since": object()}}, "job")
    Traceback (most recent call last):
    ...
    kiqpy.errors.ArgumentError: job["tenant"]["since"]: object is not serializable; ...
    """
    problem = _find_problem(value, serializer == "json", 0)
    if problem is not None:
        parts, message = problem
        raise ArgumentError(f"{path}{''.join(reversed(parts))}: {message}")


def _find_problem(value: Any, json_mode: bool, depth: int) -> tuple[list[str], str] | None:
    """Walk ``value``; on the first bad value return (reversed path parts, message)."""
    kind = type(value)
    if kind is str:
        return None if _is_text(value) else ([], f"str {_NOT_TEXT}")
    if kind is bool or value is None:
        return None
    if kind is int:
        if _INT_MIN <= value <= _INT_MAX:
            return None
        return [], "int out of the 64-bit range; pass it as a str"
    if kind is float:
        if json_mode and not math.isfinite(value):
            return [], f"{value!r} is not valid JSON; use None or a str"
        return None
    if depth >= MAX_DEPTH:
        return [], f"nested deeper than {MAX_DEPTH} levels"
    if kind is list:
        for index, item in enumerate(value):
            problem = _find_problem(item, json_mode, depth + 1)
            if problem is not None:
                problem[0].append(f"[{index}]")
                return problem
        return None
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return [f"[{key!r}]"], f"dict key of type {type(key).__name__}; keys must be str"
            if not _is_text(key):
                return [f"[{key!r}]"], f"dict key {_NOT_TEXT}"
            problem = _find_problem(item, json_mode, depth + 1)
            if problem is not None:
                problem[0].append(f"[{json.dumps(key)}]")
                return problem
        return None
    return [], _hint(value)


_NOT_TEXT = "is not valid UTF-8 text (lone surrogate); fix its decoding"


def _is_text(value: str) -> bool:
    """Whether ``value`` encodes as UTF-8 (both encoders need that); ASCII is the fast path."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_job(job: Any, serializer: str = "msgpack") -> None:
    """Raise :class:`ArgumentError` if ``job`` (as client middleware left it) cannot be pushed:
    the fields every job needs, and every value msgpack/JSON-native. No I/O."""
    if type(job) is not dict:
        raise ArgumentError(f"the job is {_a(type(job).__name__)}, not a dict")
    check_args(job.get("args"), serializer)
    for field in ("class", "queue", "jid"):
        value = job.get(field)
        if type(value) is not str or not value:
            raise ArgumentError(f'job["{field}"] must be a non-empty str, got {value!r}')
    rest = {key: value for key, value in job.items() if key != "args"}
    problem = _find_problem(rest, serializer == "json", 0)
    if problem is not None:
        path, message = problem
        raise ArgumentError(f"job{''.join(reversed(path))}: {message}")


def _a(name: str) -> str:
    return f"an {name}" if name[:1] in "aeiouAEIOU" else f"a {name}"


def _hint(value: Any) -> str:
    name = type(value).__name__
    hints = {
        "datetime": "pass an ISO string or epoch",
        "date": "pass an ISO string",
        "time": "pass an ISO string",
        "timedelta": "pass seconds as a number",
        "Decimal": "pass a str (exact) or a float",
        "UUID": "pass str(uuid)",
        "set": "pass a list",
        "frozenset": "pass a list",
        "tuple": "pass a list",
        "bytes": "pass a str (decode or base64 it)",
        "bytearray": "pass a str (decode or base64 it)",
    }
    hint = hints.get(name, "pass only str, int, float, bool, None, list and dict with str keys")
    return f"{name} is not serializable; {hint}"


def encode(job: Job, serializer: str = "msgpack") -> bytes:
    """Encode a job map. Args must already have passed :func:`check_args`."""
    if serializer == "msgpack":
        data: bytes = msgpack.packb(job, use_bin_type=True)
        return data
    return json.dumps(job, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def decode(data: bytes) -> Job:
    """Decode payload bytes of either encoding into a validated job map.

    Raises :class:`PayloadError` with a readable reason for anything that is not a job, and
    for what kiqpy could not write back in the same encoding when the job fails or is
    recovered: JSON ``NaN``/``Infinity``, lone surrogates (``"\\ud800"``), and nesting deeper
    than :data:`MAX_PAYLOAD_DEPTH`. Such a payload would otherwise crash the thread that
    re-encodes it (every worker that took or recovered it, in turn).
    """
    if not data:
        raise PayloadError("empty payload")
    is_json = data[0] < 0x80
    try:
        job = (_JSON.decode(data.decode()) if is_json
               else msgpack.unpackb(data, raw=False, strict_map_key=True))
    except (ValueError, TypeError, RecursionError, msgpack.UnpackException) as exc:
        kind = "JSON" if is_json else "msgpack"
        raise PayloadError(f"not a valid {kind} payload: {_reason(exc)}") from exc
    validate(job)
    strings = is_json and _MAYBE_SURROGATE.search(data) is not None
    # Each level takes at least a byte, so short payloads (most) skip the count.
    if strings or (len(data) > MAX_PAYLOAD_DEPTH
                   and _openers(data, is_json) > MAX_PAYLOAD_DEPTH):
        _check_shape(job, strings)
    return job


# Anything kiqpy pushes is at most MAX_DEPTH + 1 levels deep (the job map, then args checked
# to MAX_DEPTH); other producers get twice that. Far below it, Python's recursion limit (1,000
# frames, shared by json and the worker's own stack) would break re-encoding the job or
# writing it to the heartbeat's work hash.
MAX_PAYLOAD_DEPTH = 2 * MAX_DEPTH
# Bytes that open a msgpack container (fixmap, fixarray, array16/32, map16/32); everything
# else is deleted by translate() to count them in one C pass.
_MSGPACK_NOT_OPENER = bytes(b for b in range(256)
                            if not (0x80 <= b <= 0x9F or 0xDC <= b <= 0xDF))
# A \uD800-\uDFFF escape: json.loads turns a lone one into a str that cannot be encoded.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_UNPACK_REASONS = {"FormatError": "a byte that starts no msgpack value",
                   "StackError": "nested too deeply"}


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


# One decoder for every call (json.loads with a keyword builds a new one each time).
_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _reason(exc: BaseException) -> str:
    """The decoder's message; some msgpack errors have none."""
    return str(exc) or _UNPACK_REASONS.get(type(exc).__name__, type(exc).__name__)


def _openers(data: bytes, is_json: bool) -> int:
    """An upper bound on the payload's nesting depth, counted without decoding: brackets
    (some may be inside strings) or bytes that may open a msgpack container."""
    if is_json:
        return data.count(b"[") + data.count(b"{")
    return len(data.translate(None, _MSGPACK_NOT_OPENER))


def _check_shape(job: Job, strings: bool) -> None:
    """Walk the decoded payload without recursion: its depth, and (``strings``) that every
    str encodes as UTF-8."""
    stack: list[tuple[Any, int]] = [(job, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_PAYLOAD_DEPTH:
            raise PayloadError(f"payload nested deeper than {MAX_PAYLOAD_DEPTH} levels")
        if type(value) is dict:
            for key, item in value.items():
                if strings and type(key) is str and not _is_text(key):
                    raise PayloadError(f"payload key {key!r} {_NOT_TEXT}")
                stack.append((item, depth + 1))
        elif type(value) is list:
            stack.extend((item, depth + 1) for item in value)
        elif strings and type(value) is str and not _is_text(value):
            raise PayloadError(f"payload string {value[:40]!r} {_NOT_TEXT}")


def validate(job: Any) -> Job:
    """Check the fields every job needs; return the job map."""
    if type(job) is not dict:
        raise PayloadError(f"payload is {_a(type(job).__name__)}, not a map")
    for field, kind in (("class", str), ("args", list), ("jid", str), ("queue", str)):
        value = job.get(field)
        if value is None:
            raise PayloadError(f"payload has no {field!r}")
        if type(value) is not kind:
            raise PayloadError(
                f"payload {field!r} is {_a(type(value).__name__)}, not {_a(kind.__name__)}")
    if not job["queue"]:
        raise PayloadError("payload 'queue' is empty")
    return job


def serializer_of(payload: bytes) -> str:
    """The encoding of a stored payload, so a rewritten job keeps it (JSON stays JSON)."""
    return "json" if payload[:1] in (b"{", b" ", b"\n", b"\t", b"\r") else "msgpack"


# Fields a member of the schedule or retry set never holds, as in Sidekiq: its score is the run
# time, and the job is enqueued when it is moved to its queue, which stamps enqueued_at anew.
NOT_IN_SETS = ("at", "enqueued_at")


def set_member(job: Job) -> Job:
    """``job`` as the schedule and retry sets store it: without ``at`` and ``enqueued_at``."""
    return {key: value for key, value in job.items() if key not in NOT_IN_SETS}


def queued_copy(job: Job, member: bytes, sidekiq_version: str = "8") -> bytes:
    """The payload that takes ``job``'s place on its queue when it moves there from a sorted
    set (stored as ``member``): no ``at``, a fresh ``enqueued_at`` (in the unit the client
    writes, see :func:`now_stamp`), in the member's encoding. Python re-encodes exactly; the
    Lua poller cannot (kiqpy/lua/schedule.lua writes the field into the bytes instead)."""
    moved = set_member(job)
    serializer = serializer_of(member)
    moved["enqueued_at"] = now_stamp(sidekiq_version, serializer)
    return encode(moved, serializer)


def epoch_seconds(value: Any) -> float | None:
    """A timestamp field as epoch seconds, whether stored as ms ints (Sidekiq 8) or float s."""
    if type(value) is int:
        # Integers past 1e11 are milliseconds (1e11 s is the year 5138).
        return value / 1000.0 if value > 100_000_000_000 else float(value)
    if type(value) is float:
        return value
    return None


def round_trip(job: Job, serializer: str) -> Job:
    """The job as a worker would read it back from Redis (the testing modes' check)."""
    return decode(encode(job, serializer))
