"""The systems, in the order they run: kiqpy first, then Sidekiq, then the Python queues."""

from __future__ import annotations

from . import arq, celery, dramatiq, huey, kiqpy, rq, sidekiq
from .base import System

SYSTEMS: list[System] = [module.SYSTEM for module in (kiqpy, sidekiq, dramatiq, celery, rq,
                                                        huey, arq)]
