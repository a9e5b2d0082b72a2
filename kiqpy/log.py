"""Logging setup: structlog, console renderer on a TTY, JSON lines otherwise.

Library modules log through ``structlog.get_logger("kiqpy")``; only :func:`setup` (called by the
CLI) configures output. Per-job lines are at info level, so ``--log-level warning`` silences them
at almost no cost (the filtering logger drops them before any formatting).
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog

LEVELS = ("debug", "info", "warning", "error")


def setup(fmt: str = "auto", level: str = "info", stream: IO[str] | None = None) -> None:
    """Configure structlog for a worker process. ``fmt``: auto, console or json."""
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
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    # Libraries that use the standard logging module (redis-py) follow the same level.
    logging.basicConfig(stream=stream, level=getattr(logging, level.upper()),
                        format="%(levelname)s %(name)s: %(message)s")


def get_logger() -> Any:
    """kiqpy's logger."""
    return structlog.get_logger("kiqpy")
