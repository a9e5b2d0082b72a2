"""The registry of job classes: job name -> class.

A job's name is ``module.QualName`` unless its ``name`` option says otherwise (for example to
match a Ruby class). A worker only ever instantiates registered classes; it never imports a
name taken from a payload.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from kiqpy.errors import UnknownJobError

if TYPE_CHECKING:
    from kiqpy.client.worker import Worker

_registry: dict[str, type[Worker]] = {}
_registry_lock = threading.Lock()


def register(name: str, cls: type[Worker]) -> None:
    """Register ``cls`` under ``name`` (the last class defined under a name wins)."""
    with _registry_lock:
        _registry[name] = cls


def lookup(name: str) -> type[Worker]:
    """The registered job class called ``name``, or :class:`UnknownJobError`."""
    cls = _registry.get(name)
    if cls is None:
        raise UnknownJobError(
            f"no job class registered as {name!r} in this process (is the module that defines "
            f"it imported with -r?)"
        )
    return cls


def registered() -> dict[str, type[Worker]]:
    """A copy of the registry: job name -> class."""
    with _registry_lock:
        return dict(_registry)
