"""Logging setup: structlog, console renderer on a TTY, JSON lines otherwise.

Library modules log through ``structlog.get_logger("kiqpy")``; only :func:`setup` (called by the
CLI) configures output. Per-job lines are at info level, so ``--log-level warning`` silences them
at almost no cost (the filtering logger drops them before any formatting).

``--logfile`` writes to a file that :func:`reopen` (SIGUSR1, for logrotate) reopens in place.
"""

from __future__ import annotations

import contextvars
import datetime
import io
import json
import logging
import os
import select
import sys
import threading
from collections.abc import MutableMapping
from typing import IO, Any, TextIO

import structlog
from structlog.processors import StackInfoRenderer, format_exc_info

LEVELS = ("debug", "info", "warning", "error")


class LogFile:
    """A text stream over a file that can be reopened (after logrotate moved it away)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: TextIO = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def write(self, text: str) -> int:
        with self._lock:
            return self._file.write(text)

    def flush(self) -> None:
        with self._lock:
            self._file.flush()

    def isatty(self) -> bool:
        return False

    def reopen(self) -> None:
        with self._lock:
            old, self._file = self._file, open(self.path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
            old.close()


_logfile: list[LogFile] = []  # the open --logfile, if any, for reopen()

_CONTEXT_PREFIX = "structlog_"  # structlog.contextvars' names for its ContextVars
_LEVELS = {"warn": "warning", "exception": "error"}  # as structlog's add_log_level
_UTC = datetime.timezone.utc
_stack_info = StackInfoRenderer()
# Writes of at most this many bytes to a pipe are never interleaved with other writes (POSIX).
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)


def _fallback(obj: Any) -> Any:
    """What structlog's JSONRenderer writes for a value json cannot: ``__structlog__()``,
    else ``repr``."""
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)


_encode = json.JSONEncoder(default=_fallback).encode


def json_line(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
    """structlog's ``merge_contextvars``, ``add_log_level``, ``TimeStamper(fmt="iso",
    utc=True)``, ``StackInfoRenderer``, ``format_exc_info`` and ``JSONRenderer`` in one
    processor: the same line (same keys, in the same order) for about half the CPU, since a
    worker writes two of them per job."""
    for var, value in contextvars.copy_context().items():
        name = var.name
        if name.startswith(_CONTEXT_PREFIX) and value is not Ellipsis:
            event_dict.setdefault(name[len(_CONTEXT_PREFIX):], value)
    event_dict["level"] = _LEVELS.get(method_name, method_name)
    event_dict["timestamp"] = (datetime.datetime.now(tz=_UTC).isoformat()
                               .replace("+00:00", "Z"))
    if "stack_info" in event_dict or "exc_info" in event_dict:
        event_dict = format_exc_info(logger, method_name,
                                     _stack_info(logger, method_name, event_dict))
    return _encode(event_dict)


class LineWriter:
    """structlog's logger for JSON lines on a stream with a file descriptor (stderr): each
    line is one ``os.write`` of its bytes, with no lock and no flush.

    JSON lines are ASCII. A line of at most ``PIPE_BUF`` bytes (nearly all) is written whole
    by one call even when threads write at once, so only longer ones (a traceback) take the
    lock, and a write cut short by a signal is finished under it. Compared with structlog's
    WriteLogger (lock, write, flush per line) this saves the lock and the buffer layers, and,
    with ten processor threads, the thread switches of waiting for that lock.
    """

    def __init__(self, stream: IO[str]) -> None:
        stream.flush()  # what the stream holds goes first
        self._fd = stream.fileno()
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        data = (message + "\n").encode("utf-8", "backslashreplace")
        if len(data) <= _PIPE_BUF:
            written = os.write(self._fd, data)
            if written == len(data):
                return
            data = data[written:]
        with self._lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = msg


def _has_fd(stream: Any) -> bool:
    """Whether ``stream`` is backed by a file descriptor :class:`LineWriter` can write to."""
    if isinstance(stream, LogFile):  # reopened in place by logrotate: keeps its own lock
        return False
    try:
        stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return False
    return True


def setup(fmt: str = "auto", level: str = "info", stream: IO[str] | None = None,
          logfile: str | None = None) -> None:
    """Configure structlog for a worker process. ``fmt``: auto, console or json."""
    if logfile:
        _logfile[:] = [LogFile(logfile)]
        stream = _logfile[0]  # type: ignore[assignment]
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    processors: list[Any]
    factory: Any = structlog.WriteLoggerFactory(file=stream)  # type: ignore[arg-type]
    if fmt == "console":
        processors = [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=stream.isatty()),
        ]
    else:
        processors = [json_line]
        if _has_fd(stream):
            writer = LineWriter(stream)
            factory = lambda *args: writer  # noqa: E731
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries that use the standard logging module (redis-py) follow the same level.
    logging.basicConfig(stream=stream, level=getattr(logging, level.upper()),
                        format="%(levelname)s %(name)s: %(message)s", force=True)


def reopen() -> None:
    """Reopen the --logfile (on SIGUSR1, after logrotate moved it)."""
    for logfile in _logfile:
        logfile.reopen()


def get_logger() -> Any:
    """kiqpy's logger."""
    return structlog.get_logger("kiqpy")
