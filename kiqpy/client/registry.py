"""The registry of job classes: job name -> class.

A job's name is ``module.QualName`` unless its ``name`` option says otherwise (for example to
match a Ruby class). A worker only ever instantiates registered classes; it never imports a
name taken from a payload.
"""

from __future__ import annotations

import threading
from typing import Any

from kiqpy.errors import UnknownJobError

# A job class: a kiqpy.Worker subclass (typed loosely so this module stays below the mixin).
JobType = type[Any]

_registry: dict[str, JobType] = {}
_registry_lock = threading.Lock()


def register(name: str, cls: JobType) -> None:
    """Register ``cls`` under ``name`` (the last class defined under a name wins)."""
    with _registry_lock:
        _registry[name] = cls


def lookup(name: str) -> JobType:
    """The registered job class called ``name``, or :class:`UnknownJobError`."""
    cls = _registry.get(name)
    if cls is None:
        raise UnknownJobError(
            f"no job class registered as {name!r} in this process (is the module that defines "
            f"it imported with -r?)"
        )
    return cls


def registered() -> dict[str, JobType]:
    """A copy of the registry: job name -> class."""
    with _registry_lock:
        return dict(_registry)
