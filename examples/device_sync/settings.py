"""The example's settings: ``settings.toml`` next to this file, and the data directory."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # kiqpy depends on tomli for Python 3.10
    import tomli as tomllib

HERE = Path(__file__).resolve().parent


@functools.cache
def settings() -> dict[str, Any]:
    with open(HERE / "settings.toml", "rb") as handle:
        return tomllib.load(handle)


def sources() -> list[str]:
    """The configured source names, in file order."""
    return list(settings()["sources"])


def queue_for(source: str) -> str:
    """The queue for ``source``'s jobs (``default`` for a source with no entry)."""
    return str(settings()["sources"].get(source, {}).get("queue", "default"))


def bulk_queue() -> str:
    return str(settings().get("bulk_data", {}).get("queue", "default"))


def data_dir() -> Path:
    """Where the jobs write: ``$DEVICE_SYNC_DIR``, else ``var/`` next to this file."""
    return Path(os.environ.get("DEVICE_SYNC_DIR") or HERE / "var")
