"""Shared fixtures: one private redis-server for the session, a clean database per test.

If redis-server cannot be started the suite fails under CI=true and is skipped otherwise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest
import redis

import kiqpy
from kiqpy.config import Config
from tests.redis_server import RedisServer

# The workers tests start are killed with -9 when a test ends, and many tests then read their
# log: they write each line at once (--log-flush 0) so that nothing logged is lost to the kill.
# tests/test_log_writer.py runs workers with the default (lines written together every 50 ms).
os.environ["KIQPY_LOG_FLUSH"] = "0"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        server.start()
    except RuntimeError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot start redis-server: {exc}")
        pytest.skip(f"cannot start redis-server: {exc}")
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A raw redis-py client on a freshly flushed private database."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def config(r: redis.Redis, redis_url: str) -> Iterator[Config]:
    """The default kiqpy configuration, pointed at the private Redis for this test."""
    cfg = kiqpy.configure(Config(redis_url=redis_url))
    yield cfg
    kiqpy.configure(Config(redis_url=redis_url))


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01,
             message: str = "condition") -> object:
    """Poll ``predicate`` until truthy or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@pytest.fixture
def closed_url() -> str:
    """A Redis URL on a local port where nothing listens (connections are refused)."""
    from tests.redis_server import free_port

    return f"redis://127.0.0.1:{free_port()}/0"


def queued_jobs(client: redis.Redis, queue: str = "default", namespace: str = "") -> list[dict]:
    """The decoded jobs of ``queue`` in the order a worker takes them (oldest first)."""
    from kiqpy.payload import decode

    key = f"{namespace}:queue:{queue}" if namespace else f"queue:{queue}"
    return [decode(p) for p in reversed(client.lrange(key, 0, -1))]


def scheduled_jobs(client: redis.Redis, key: str = "schedule") -> list[tuple[dict, float]]:
    """(decoded job, score) pairs of a sorted set such as ``schedule``, earliest first."""
    from kiqpy.payload import decode

    return [(decode(m), s) for m, s in client.zrange(key, 0, -1, withscores=True)]
