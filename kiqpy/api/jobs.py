"""A job as stored in Redis (:class:`JobRecord`): the raw bytes, the decoded job map, and its
fields as attributes, read tolerantly (a payload that is not a job is a record with an error).
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from typing import Any, Protocol

from kiqpy.api.base import to_datetime
from kiqpy.errors import KiqpyError, PayloadError
from kiqpy.failures import MALFORMED_CLASS, read_backtrace
from kiqpy.payload import Job, decode, epoch_seconds

# The most of a compressed backtrace inflated when reading a job: far more than any real
# traceback, far less than a zip bomb.
BACKTRACE_LIMIT = 1024 * 1024
# ActiveJob-style wrappers (Sidekiq's JobWrapper) name the real class in `wrapped`.
_WRAPPED_KEY = "wrapped"


class _Store(Protocol):
    def delete_by_value(self, value: bytes) -> bool: ...


class JobRecord:
    """One stored job: ``value`` (the raw bytes), ``item`` (the decoded job map) and its fields
    as attributes. Bytes that are not a job give a record whose ``error`` says why (its
    ``item`` is then empty), never an exception, so listings can show and delete them."""

    def __init__(self, value: bytes, queue_name: str | None = None,
                 source: _Store | None = None) -> None:
        self.value = value
        self.error: str | None = None
        try:
            self.item: Job = decode(value)
        except PayloadError as exc:
            self.item, self.error = {}, str(exc)
        self._queue_name = queue_name
        self._source = source
        self._backtrace_read: tuple[list[str] | None, bool] | None = None

    def __repr__(self) -> str:
        if self.error is not None:
            return f"<{type(self).__name__} malformed: {self.error}>"
        return f"<{type(self).__name__} {self.display_class} jid={self.jid} queue={self.queue}>"

    def get(self, field: str, default: Any = None) -> Any:
        """A field of the job map by name (unknown fields are kept in payloads)."""
        return self.item.get(field, default)

    # -- identity ----------------------------------------------------------------------------
    @property
    def klass(self) -> str | None:
        """The job's registered class name (``class`` in the payload)."""
        return _str_or_none(self.item.get("class"))

    @property
    def display_class(self) -> str:
        """The class a person should see: the wrapped one for wrapper jobs."""
        if self.error is not None:
            return "(malformed payload)"
        return _str_or_none(self.item.get(_WRAPPED_KEY)) or self.klass or ""

    @property
    def args(self) -> list[Any]:
        args = self.item.get("args")
        return args if isinstance(args, list) else []

    @property
    def display_args(self) -> list[Any]:
        """The arguments a person should see (a wrapper's inner ``arguments``)."""
        args = self.args
        if self.item.get(_WRAPPED_KEY) and args and isinstance(args[0], dict):
            inner = args[0].get("arguments")
            if isinstance(inner, list):
                return inner
        return args

    @property
    def jid(self) -> str | None:
        return _str_or_none(self.item.get("jid"))

    @property
    def queue(self) -> str | None:
        return _str_or_none(self.item.get("queue")) or self._queue_name

    @property
    def tags(self) -> list[str]:
        tags = self.item.get("tags")
        return [str(t) for t in tags] if isinstance(tags, list) else []

    @property
    def malformed(self) -> bool:
        """Bytes that are not a job, or a dead-set entry standing for such bytes."""
        return self.error is not None or self.item.get("class") == MALFORMED_CLASS

    # -- times -------------------------------------------------------------------------------
    @property
    def enqueued_at(self) -> _dt.datetime | None:
        return to_datetime(epoch_seconds(self.item.get("enqueued_at")))

    @property
    def created_at(self) -> _dt.datetime | None:
        return to_datetime(epoch_seconds(self.item.get("created_at")))

    @property
    def failed_at(self) -> _dt.datetime | None:
        return to_datetime(epoch_seconds(self.item.get("failed_at")))

    @property
    def retried_at(self) -> _dt.datetime | None:
        return to_datetime(epoch_seconds(self.item.get("retried_at")))

    @property
    def latency(self) -> float:
        """Seconds since the job was queued (0.0 when the payload does not say)."""
        since = enqueued_seconds(self.item)
        return max(0.0, time.time() - since) if since is not None else 0.0

    # -- errors ------------------------------------------------------------------------------
    @property
    def error_class(self) -> str | None:
        return _str_or_none(self.item.get("error_class"))

    @property
    def error_message(self) -> str | None:
        return _str_or_none(self.item.get("error_message"))

    @property
    def error_backtrace(self) -> list[str] | None:
        """The stored backtrace lines (Sidekiq's compressed form or a plain list), if any; a
        compressed one is inflated to :data:`BACKTRACE_LIMIT` bytes at most
        (:attr:`backtrace_truncated` then says so)."""
        return self._backtrace()[0]

    @property
    def backtrace_truncated(self) -> bool:
        """True when :attr:`error_backtrace` was cut at :data:`BACKTRACE_LIMIT` bytes."""
        return self._backtrace()[1]

    def _backtrace(self) -> tuple[list[str] | None, bool]:
        if self._backtrace_read is not None:
            return self._backtrace_read
        stored = self.item.get("error_backtrace")
        read: tuple[list[str] | None, bool] = (None, False)
        if isinstance(stored, list):
            read = ([str(line) for line in stored], False)
        elif isinstance(stored, str) and stored:
            try:
                read = read_backtrace(stored, BACKTRACE_LIMIT)
            except Exception:  # anything stored by anyone: show nothing rather than fail
                read = (None, False)
        self._backtrace_read = read
        return read

    @property
    def retry_count(self) -> int | None:
        count = self.item.get("retry_count")
        return count if type(count) is int else None

    # -- changes -----------------------------------------------------------------------------
    def delete(self) -> bool:
        """Remove this job from where it is stored; False if it was already gone."""
        if self._source is None:
            raise KiqpyError("this job record is not stored in a queue or set")
        return self._source.delete_by_value(self.value)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def enqueued_seconds(item: Job) -> float | None:
    """When a job was queued, in epoch seconds: ``enqueued_at``, else ``at`` (a scheduled job
    moved to its queue keeps it), else ``created_at``."""
    for field in ("enqueued_at", "at", "created_at"):
        seconds = epoch_seconds(item.get(field))
        if seconds is not None and math.isfinite(seconds):  # -inf is no time: skip it
            return seconds
    return None
