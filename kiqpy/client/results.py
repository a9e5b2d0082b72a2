"""Job results (opt-in): what ``perform`` returned, kept in Redis for ``kiqpy.result(jid)``.

A class declared with ``store_result=True`` (kept a day) or ``result_ttl=seconds`` has its
return value stored by the worker (kiqpy/server/batches.py) under ``Keys.result(jid)``: a list
holding one msgpack map, ``{"ok": value}`` or, once the job failed for good (dead set,
discarded, cancelled), ``{"failed": {"error_class", "error_message"}}``. A reader waits with
``BLMOVE key key`` (the list rotated onto itself: the value is read, not taken), so waiting
costs one blocked command, not a polling loop.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack

from kiqpy.client.push import Client, default_client
from kiqpy.config import Config
from kiqpy.errors import ArgumentError, JobFailed, ResultError
from kiqpy.payload import check_value

#: How long results are kept with ``store_result=True`` and no ``result_ttl``: one day.
DEFAULT_RESULT_TTL = 86_400


def wants_result(job: dict[str, Any]) -> bool:
    """Whether the worker stores this job's result."""
    return bool(job.get("store_result")) or "result_ttl" in job


def result_ttl(job: dict[str, Any]) -> int:
    """Seconds to keep the job's result (at least one)."""
    ttl = job.get("result_ttl")
    if isinstance(ttl, (int, float)) and ttl > 0:
        return max(1, int(ttl))
    return DEFAULT_RESULT_TTL


def encode_result(value: Any) -> bytes:
    """The stored form of a return value; :class:`ResultError` for a value that is not
    msgpack/JSON-native (the job then counts as failed, and is retried)."""
    try:
        check_value(value, "result", "msgpack")
    except ArgumentError as exc:
        raise ResultError(f"the job returned a value kiqpy cannot store (store_result): "
                          f"{exc}") from None
    data: bytes = msgpack.packb({"ok": value}, use_bin_type=True)
    return data


def encode_failure(error_class: str, error_message: str) -> bytes:
    """The stored form of a job that failed for good."""
    data: bytes = msgpack.packb({"failed": {"error_class": error_class,
                                            "error_message": error_message}},
                                use_bin_type=True)
    return data


def decode_result(jid: str, data: Any) -> Any:
    """The value in ``data``, or :class:`JobFailed`."""
    stored = msgpack.unpackb(data, raw=False)
    if "failed" in stored:
        failure = stored["failed"]
        raise JobFailed(jid, str(failure.get("error_class", "")),
                        str(failure.get("error_message", "")))
    return stored["ok"]


def peek_result(jid: str, config: Config | None = None) -> Any:
    """The stored result of ``jid`` without waiting: the value, the :class:`JobFailed` (not
    raised), or None if there is none."""
    client = default_client() if config is None else Client(config)
    try:
        data = client.redis.lindex(client.keys.result(jid), 0)
    finally:
        if config is not None:
            client.close()
    if data is None:
        return None
    try:
        return decode_result(jid, data)
    except JobFailed as exc:
        return exc


def result(jid: str, timeout: float | None = None, config: Config | None = None) -> Any:
    """The return value of job ``jid`` (a class with ``store_result=True`` or
    ``result_ttl=...``), waiting for it up to ``timeout`` seconds (None: forever)::

        jid = Report.perform_async(day)
        rows = kiqpy.result(jid, timeout=30)

    Raises :class:`kiqpy.JobFailed` if the job died (or was discarded) and ``TimeoutError``
    when ``timeout`` passes first. The wait is a blocking Redis command (BLMOVE), in slices
    shorter than the connection's socket timeout, not a polling loop."""
    if timeout is not None and (type(timeout) not in (int, float) or timeout < 0):
        raise ArgumentError(f"result(): timeout must be None or seconds >= 0, got {timeout!r}")
    client = default_client() if config is None else Client(config)
    try:
        return _wait(client, jid, timeout)
    finally:
        if config is not None:
            client.close()


def _wait(client: Client, jid: str, timeout: float | None) -> Any:
    key = client.keys.result(jid)
    redis_client = client.redis
    data = redis_client.lindex(key, 0)
    deadline = None if timeout is None else time.monotonic() + timeout
    socket_timeout = client.config.socket_timeout
    longest = max(0.1, socket_timeout - 1.0) if socket_timeout else 60.0
    while data is None:
        left = longest if deadline is None else deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no result for job {jid} within {timeout} s")
        data = redis_client.blmove(key, key, min(left, longest),  # type: ignore[arg-type]
                                  "RIGHT", "LEFT")
    return decode_result(jid, data)

