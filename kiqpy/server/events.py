"""Lifecycle events of a worker process (``Config.on``): calling their handlers in order."""

from __future__ import annotations

from typing import Any

from kiqpy.config import Config


def fire(config: Config, log: Any, event: str, *, strict: bool = False) -> None:
    """Call every handler of ``event``. One that raises is logged and the rest still run;
    with ``strict`` (``startup``) the exception propagates, and the process does not start."""
    for handler in list(config.event_handlers.get(event, ())):
        try:
            handler()
        except Exception:
            if strict:
                raise
            log.exception("event handler failed", lifecycle_event=event, handler=repr(handler))
