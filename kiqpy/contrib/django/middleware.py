"""Server middleware the app installs: database connections in jobs are handled as Django's
request cycle handles them (``close_old_connections`` before and after), so a worker that runs
for days closes connections past ``CONN_MAX_AGE`` or broken by a failed job instead of keeping
dead ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import close_old_connections


class CloseOldConnections:
    """Around each job: ``close_old_connections()`` before and after, as Django does around
    each request (request_started / request_finished)."""

    def __call__(self, worker: Any, job: dict[str, Any], queue: str,
                 next: Callable[[], Any]) -> Any:
        close_old_connections()
        try:
            return next()
        finally:
            close_old_connections()
