"""Logging setup: structlog, console renderer on a TTY, JSON lines otherwise.

Library modules log through ``structlog.get_logger("kiqpy")``; only :func:`setup` (called by the
CLI) configures output. Per-job lines are at info level, so ``--log-level warning`` silences them
at almost no cost (the filtering logger drops them before any formatting).

``--logfile`` writes to a file that :func:`reopen` (SIGUSR1, for logrotate) reopens in place.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import contextvars
import datetime
import functools
import io
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
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

    def write_bytes(self, data: memoryview) -> int:
        """Write encoded lines straight to the file (for :class:`LineWriter`): the text layer
        holds nothing between lines, since it flushes at each newline."""
        with self._lock:
            return os.write(self._file.fileno(), data)

    def reopen(self) -> None:
        with self._lock:
            old, self._file = self._file, open(self.path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
            old.close()


_logfile: list[LogFile] = []  # the open --logfile, if any, for reopen()
_writers: list[LineWriter] = []  # the LineWriter in use, if any, for flush()

_CONTEXT_PREFIX = "structlog_"  # structlog.contextvars' names for its ContextVars
_LEVELS = {"warn": "warning", "exception": "error"}  # as structlog's add_log_level
_UTC = datetime.timezone.utc
_stack_info = StackInfoRenderer()
# Info lines wait at most this long to be written together (LineWriter).
FLUSH_SECONDS = 0.05
MAX_WAITING = 10_000  # lines; past this many, the thread that adds one writes them all


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
    """structlog's logger for JSON lines on a stream with a file descriptor (stderr).

    Info and debug lines (a worker's two per job) are gathered in memory and written together
    by one ``os.write`` at most ``FLUSH_SECONDS`` after the first of them, by a thread of this
    writer (``kiqpy.log``) that sleeps while nothing is waiting. A processor thread thus never
    makes a system call for its log lines: each such call lets the GIL go to another thread
    and costs two thread switches, which with ten threads cost more than formatting the line.
    Warning and error lines go out at once, after whatever is waiting (order is kept).
    Everything waiting is written at exit, before a fork, and by :func:`flush`; a process
    killed with -9 loses at most the last ``FLUSH_SECONDS`` of info lines.
    """

    def __init__(self, stream: IO[str] | LogFile, interval: float = FLUSH_SECONDS) -> None:
        stream.flush()  # what the stream holds goes first
        # --logfile writes through its reopenable file; any other stream through its fd
        self._write: Callable[[memoryview], int] = (
            stream.write_bytes if isinstance(stream, LogFile)
            else functools.partial(os.write, stream.fileno()))
        self._lock = threading.Lock()  # one batch written at a time, in order
        self._waiting: collections.deque[bytes] = collections.deque()
        self._due = threading.Event()  # set: lines are waiting, the thread will write them
        self._thread: threading.Thread | None = None
        self._interval = interval
        if interval <= 0:  # --log-flush 0: every line at once, as a warning
            self.log = self.debug = self.info = self.msg = self.now  # type: ignore[method-assign]
        atexit.register(flush_quietly, self)
        os.register_at_fork(before=lambda: flush_quietly(self), after_in_child=self._forked)

    def msg(self, message: str) -> None:
        self._waiting.append((message + "\n").encode("utf-8", "backslashreplace"))
        if not self._due.is_set():
            if self._thread is None:
                self._start()
            self._due.set()
        elif len(self._waiting) >= MAX_WAITING:  # the thread is starved: write now
            self.flush()

    def now(self, message: str) -> None:
        """A line that must not wait (warning and above): written at once, after the rest."""
        self._waiting.append((message + "\n").encode("utf-8", "backslashreplace"))
        self.flush()

    def flush(self, timeout: float = -1) -> None:
        """Write every line waiting, in one call when they fit. ``timeout``: give up after
        that many seconds waiting for another flush to end (a signal handler may have
        interrupted it in this very thread)."""
        if not self._lock.acquire(timeout=timeout):
            return
        try:
            count = len(self._waiting)
            if not count:
                return
            pop = self._waiting.popleft
            view = memoryview(b"".join([pop() for _ in range(count)]))
            while view:
                view = view[self._write(view):]
        finally:
            self._lock.release()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kiqpy.log", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._due.wait()
            time.sleep(self._interval)  # gather the lines of this interval
            self._due.clear()  # a line appended after this sets it again: never stranded
            try:
                self.flush()
            except OSError:  # the stream went away (a closed pipe): nothing to write to
                self._waiting.clear()

    def _forked(self) -> None:
        """In a forked child: the parent's lines were flushed before the fork; no thread. The
        locks are new: the parent's writer thread may have held one at the fork."""
        self._lock = threading.Lock()
        self._waiting.clear()
        self._due = threading.Event()
        self._thread = None

    log = debug = info = msg
    warn = warning = error = critical = exception = fatal = failure = now


def flush_quietly(writer: LineWriter) -> None:
    """At exit: a stream closed meanwhile (a test's pipe) is no error worth a traceback."""
    with contextlib.suppress(OSError):
        writer.flush(1.0)


def _has_fd(stream: Any) -> bool:
    """Whether ``stream`` is backed by a file descriptor :class:`LineWriter` can write to."""
    if isinstance(stream, LogFile):  # reopened in place by logrotate: writes through it
        return True
    try:
        stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return False
    return True


def setup(fmt: str = "auto", level: str = "info", stream: IO[str] | None = None,
          logfile: str | None = None, flush_seconds: float = FLUSH_SECONDS) -> None:
    """Configure structlog for a worker process. ``fmt``: auto, console or json.
    ``flush_seconds``: how long JSON info lines may wait to be written together
    (:class:`LineWriter`; 0: each line at once)."""
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
            flush()  # a writer set up before (tests, embedding) goes first
            writer = LineWriter(stream, flush_seconds)
            _writers[:] = [writer]
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


def flush(timeout: float = 1.0) -> None:
    """Write the log lines still waiting (before ``os._exit``); never raises."""
    for writer in _writers:
        with contextlib.suppress(OSError):
            writer.flush(timeout)


def reopen() -> None:
    """Reopen the --logfile (on SIGUSR1, after logrotate moved it)."""
    for logfile in _logfile:
        logfile.reopen()


def get_logger() -> Any:
    """kiqpy's logger."""
    return structlog.get_logger("kiqpy")
