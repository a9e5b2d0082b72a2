"""Logging setup: structlog, console renderer on a TTY, JSON lines otherwise.

Library modules log through ``structlog.get_logger("kiqpy")``; only :func:`setup` (called by the
CLI) configures output. Per-job lines are at info level, so ``--log-level warning`` silences them
at almost no cost (the filtering logger drops them before any formatting).

``--logfile`` writes to a file that :func:`reopen` (SIGUSR1, for logrotate) reopens in place.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import IO, Any, TextIO

import structlog

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


def setup(fmt: str = "auto", level: str = "info", stream: IO[str] | None = None,
          logfile: str | None = None) -> None:
    """Configure structlog for a worker process. ``fmt``: auto, console or json."""
    if logfile:
        _logfile[:] = [LogFile(logfile)]
        stream = _logfile[0]  # type: ignore[assignment]
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.WriteLoggerFactory(file=stream),  # type: ignore[arg-type]
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
