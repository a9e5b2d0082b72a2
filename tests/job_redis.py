"""The Redis client the test job modules (tests/app_*.py) record into: one per process, on
the REDIS_URL the test gave the worker."""

from __future__ import annotations

import os

import redis

_client: redis.Redis | None = None


def r() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["REDIS_URL"])
    return _client
