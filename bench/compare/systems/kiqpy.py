"""kiqpy at its defaults (JSON logs when not on a TTY, info level): ``kiqpy -c 10``."""

from __future__ import annotations

from .base import System, kiqpy_bin

SYSTEM = System(
    name="kiqpy",
    defaults="kiqpy -c 10, defaults otherwise; INCR through kiqpy.redis(); "
             "logs off = --log-level warning",
    worker=lambda logs, url: [kiqpy_bin("kiqpy"), "-c", "10", "-r", "kiqpy_app",
                         *([] if logs else ["--log-level", "warning"])],
    app=[kiqpy_bin("python"), "-m", "appcli", "kiqpy_app"],
    has_bulk=True,
)
