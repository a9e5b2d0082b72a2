"""``kiqpy.redis()``: a connection of the calling thread's own, for job code (Sidekiq.redis)."""

from __future__ import annotations

import os
import threading

import pytest
import redis

import kiqpy
from kiqpy.config import Config
from tests.conftest import wait_for
from tests.workers import WorkerProcess


def test_it_gives_a_working_client_on_the_default_configuration(config: Config,
                                                                 r: redis.Redis) -> None:
    with kiqpy.redis() as conn:
        conn.set("mine", "yes")
        assert conn.incr("n") == 1
    assert r.get("mine") == b"yes"


def test_a_thread_keeps_one_connection_and_threads_do_not_share(config: Config) -> None:
    with kiqpy.redis() as first, kiqpy.redis() as again:
        assert first is again
        mine = first.client_id()
    theirs: list[int] = []

    def other() -> None:
        with kiqpy.redis() as conn:
            theirs.append(conn.client_id())

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(10)
    assert theirs and theirs[0] != mine


def test_an_explicit_configuration_picks_the_redis(config: Config, r: redis.Redis,
                                                   redis_url: str) -> None:
    other_db = redis_url.rsplit("/", 1)[0] + "/3"
    with kiqpy.redis(Config(redis_url=other_db)) as conn:
        conn.set("where", "db3")
    assert r.get("where") is None
    assert redis.Redis.from_url(other_db).get("where") == b"db3"


def test_a_dropped_connection_is_made_again(config: Config, r: redis.Redis) -> None:
    with kiqpy.redis() as conn:
        victim = conn.client_id()
    r.client_kill_filter(_id=victim)
    with kiqpy.redis() as conn:
        assert conn.incr("after-kill") == 1
        assert conn.client_id() != victim


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_makes_its_own_connection(config: Config, r: redis.Redis) -> None:
    with kiqpy.redis() as conn:
        parent_id = conn.client_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its connection's id, never run pytest's teardown
        try:
            with kiqpy.redis() as conn:
                os.write(write, str(conn.client_id()).encode())
        finally:
            os._exit(0)
    os.close(write)
    child_id = int(os.read(read, 64) or b"0")
    os.waitpid(pid, 0)
    assert child_id and child_id != parent_id
    with kiqpy.redis() as conn:  # the parent's connection still works after the fork
        assert conn.client_id() == parent_id


def test_each_processor_thread_uses_its_own_connection(config: Config, r: redis.Redis,
                                                        redis_url: str) -> None:
    from tests.app_redis import ConnCount

    ConnCount.perform_bulk([[n] for n in range(300)])
    with WorkerProcess(redis_url, "-c", "4", require="tests.app_redis"):
        wait_for(lambda: int(r.get("test:conn-count") or 0) == 300, timeout=30,
                 message="all 300 jobs to run")
    assert 1 <= r.scard("test:conn-ids") <= 4


def test_pipelines_and_transactions_work_on_it(config: Config, r: redis.Redis) -> None:
    with kiqpy.redis() as conn:
        pipe = conn.pipeline()
        pipe.incr("a").incr("a")
        assert pipe.execute() == [1, 2]
        with conn.pipeline(transaction=False) as outer, conn.pipeline() as inner:
            outer.set("b", 1)
            inner.set("c", 1)
            assert outer.execute() == [True] and inner.execute() == [True]
    assert r.mget("a", "b", "c") == [b"2", b"1", b"1"]


# -- the pooled client kiqpy's own code uses (kiqpy.connection.PooledRedis) ----------------------
def test_the_pooled_client_takes_its_short_path_back_after_a_dropped_connection(
        redis_url: str, r: redis.Redis) -> None:
    from kiqpy.connection import PooledRedis, connect

    # Given the pooled client a push uses, connected (its one pooled connection is reused)
    client = connect(redis_url, pool_size=2)
    assert isinstance(client, PooledRedis)
    assert client.incr("n") == 1
    first = client.client_id()
    assert client.client_id() == first

    # When Redis drops that connection
    r.client_kill_filter(_id=first)

    # Then the next command is sent again on a new connection (redis-py's path, as
    # configured), and the one after takes the short path on it
    assert client.incr("n") == 2
    second = client.client_id()
    assert second != first and client.client_id() == second
    # A refusal is the caller's error, and leaves the connection usable
    r.set("text", "x")
    with pytest.raises(redis.exceptions.ResponseError):
        client.incr("text")
    assert client.incr("n") == 3 and client.client_id() == second


def test_the_pooled_client_gives_a_timed_out_connection_up(redis_url: str,
                                                           r: redis.Redis) -> None:
    from kiqpy.connection import connect

    # A command that outlives the socket timeout is not sent again, and its late reply never
    # reaches the next command: the connection that timed out is closed
    client = connect(redis_url, pool_size=1, socket_timeout=0.2)
    first = client.client_id()
    with pytest.raises(redis.exceptions.TimeoutError):
        client.execute_command("BLPOP", "nothing", "0.5")  # answers nil after 0.5 s
    assert client.client_id() != first
    assert client.incr("after") == 1
    wait_for(lambda: not any(c["id"] == str(first) for c in r.client_list()),
             message="the timed-out connection to be closed")
