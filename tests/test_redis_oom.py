"""Redis out of memory (``maxmemory`` reached, ``noeviction``): a push is refused whole with a
clear error, and a running worker neither crashes nor half-moves a job.

Redis checks memory before a script's first write that could grow the data set and, once a
script has written, lets it finish (a script is atomic). So every kiqpy script either does
nothing (the push is refused) or runs whole; these tests pin that down with a real server.
Each test runs its own redis-server, never the session one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import kiqpy
from kiqpy.config import Config
from kiqpy.payload import decode
from tests.conftest import wait_for
from tests.redis_server import RedisServer
from tests.workers import WorkerProcess


@pytest.fixture
def server(redis_server: RedisServer) -> Iterator[RedisServer]:
    own = RedisServer()
    own.start()
    yield own
    own.cleanup()


@pytest.fixture
def raw(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


def in_flight(client: redis.Redis) -> list[str]:
    """The class of every job in every in-flight list."""
    return [decode(p)["class"] for key in client.scan_iter("*:inflight:*")
            for p in client.lrange(key, 0, -1)]


def out_of_memory(client: redis.Redis) -> None:
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)  # below what an empty server uses: every check fails


def test_a_push_is_refused_whole_with_a_clear_error(server: RedisServer,
                                                   raw: redis.Redis) -> None:
    from tests.app_redis import WriteFile

    kiqpy.configure(Config(redis_url=server.url))
    try:
        WriteFile.perform_async("/dev/null", "before")
        out_of_memory(raw)
        # kiqpy's own error, which is still the redis-py ResponseError it chains
        with pytest.raises(kiqpy.RedisRefusedError, match="maxmemory") as refused:
            WriteFile.perform_async("/dev/null", "refused")
        assert isinstance(refused.value, redis.exceptions.ResponseError)
        assert isinstance(refused.value, kiqpy.KiqpyError)
        assert isinstance(refused.value.__cause__, redis.exceptions.ResponseError)
        assert str(refused.value).startswith(f"Redis at {server.url} refused the push: ")
        with pytest.raises(kiqpy.RedisRefusedError, match="maxmemory"):
            WriteFile.perform_bulk([["/dev/null", n] for n in range(10)])
        with pytest.raises(redis.exceptions.ResponseError, match="maxmemory"):
            WriteFile.perform_in(60, "/dev/null", "later")
        # Nothing half-written: only the job pushed before the limit exists
        assert raw.llen("queue:default") == 1
        assert raw.zcard("schedule") == 0
    finally:
        raw.config_set("maxmemory", 0)
        kiqpy.configure(Config())


def test_a_worker_out_of_memory_keeps_running_jobs_and_loses_none(
        server: RedisServer, raw: redis.Redis, tmp_path: Path) -> None:
    from tests.app_redis import Boom, WriteFile

    out = tmp_path / "ran.txt"
    kiqpy.configure(Config(redis_url=server.url))
    try:
        with WorkerProcess(server.url, "-c", "5", require="tests.app_redis") as worker:
            wait_for(lambda: raw.scard("processes") == 1, message="the worker to register")
            # Scheduled before the limit, due after it: the poller's move (ZREM, then LPUSH)
            # and the fetch (RPOP, then LPUSH) write before they need memory, so they run.
            WriteFile.perform_bulk([[str(out), n] for n in range(50)], at=time.time() + 3)
            Boom.perform_in(3)
            out_of_memory(raw)
            wait_for(lambda: out.exists() and len(out.read_text().split()) == 50, timeout=30,
                     message="the 50 jobs to run while Redis is out of memory")
            # Boom failed, and its move to the retry set (a ZADD first) is refused: the worker
            # logs that, keeps the job in flight and tries again
            worker.wait_for_log("redis refused a command", timeout=30)
            assert '"where": "retry"' in worker.log()
            assert raw.zcard("retry") == 0
            # (the last WriteFile jobs may have finished at the same moment, their acks
            # still on their way: wait for those, then only Boom is left)
            wait_for(lambda: in_flight(raw) == ["Boom"], message="only Boom left in flight")
            # The heartbeat's writes are refused too: logged, the worker stays up
            worker.wait_for_log("redis refused the heartbeat", timeout=30)
            assert worker.process.poll() is None
            # Memory back: the retry lands, the heartbeat resumes, nothing is left in flight
            raw.config_set("maxmemory", 0)
            wait_for(lambda: raw.zcard("retry") == 1, timeout=30, message="Boom's retry")
            worker.wait_for_log("redis accepted the command again", timeout=10)
            wait_for(lambda: not any(raw.llen(k) for k in raw.scan_iter("*:inflight:*")),
                     message="every job acked")
            worker.terminate()
            assert worker.wait(20) == 0
        assert sorted(map(int, out.read_text().split())) == list(range(50))
    finally:
        raw.config_set("maxmemory", 0)
        kiqpy.configure(Config())


def test_a_worker_started_out_of_memory_waits_and_then_runs(
        server: RedisServer, raw: redis.Redis, tmp_path: Path) -> None:
    from tests.app_redis import WriteFile

    out = tmp_path / "ran.txt"
    kiqpy.configure(Config(redis_url=server.url))
    try:
        WriteFile.perform_async(str(out), 1)
        out_of_memory(raw)
        with WorkerProcess(server.url, require="tests.app_redis") as worker:
            # It cannot register (SADD needs memory), so it must not fetch yet: a job it took
            # unregistered could not be recovered after a crash. It says so and waits.
            worker.wait_for_log("redis refused a command", timeout=30)
            assert '"where": "start"' in worker.log()
            assert worker.process.poll() is None
            assert raw.llen("queue:default") == 1
            raw.config_set("maxmemory", 0)
            wait_for(lambda: out.exists(), timeout=30, message="the job once memory is back")
            worker.terminate()
            assert worker.wait(20) == 0
    finally:
        raw.config_set("maxmemory", 0)
        kiqpy.configure(Config())
