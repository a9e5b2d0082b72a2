"""Celery with the Redis broker at its defaults: ``celery worker --pool threads -c 10``."""

from __future__ import annotations

from .base import System, compare_bin

SYSTEM = System(
    name="celery",
    defaults="celery worker --pool threads -c 10, defaults otherwise; INCR through an app "
             "redis.Redis; its default level is warning, so logs on = -l info",
    worker=lambda logs, url: [compare_bin("celery", "celery"), "-A", "celery_app", "worker",
                         "--pool", "threads", "-c", "10", "-l", "info" if logs else "warning"],
    app=[compare_bin("celery", "python"), "-m", "appcli", "celery_app"],
    has_bulk=False,
)
