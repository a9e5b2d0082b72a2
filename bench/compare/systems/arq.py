"""arq at its defaults with max_jobs=10 (apps/arq_app.py runs what the ``arq`` command runs)."""

from __future__ import annotations

from .base import System, compare_bin

SYSTEM = System(
    name="arq",
    defaults="arq, max_jobs=10, defaults otherwise (a poll every 0.5 s for <= 100 jobs); "
             "INCR through ctx['redis']; logs off = arq logger at WARNING",
    worker=lambda logs, url: [compare_bin("arq", "python"), "-m", "appcli", "arq_app", "worker"],
    app=[compare_bin("arq", "python"), "-m", "appcli", "arq_app"],
    has_bulk=False,
)
