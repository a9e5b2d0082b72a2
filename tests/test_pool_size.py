"""``Config.pool_size`` sets the size of the Redis connection pool, for a client (the app's
pushes) and for a worker process; 0 keeps the defaults the README gives."""

from __future__ import annotations

import threading

import kiqpy
from kiqpy.client.push import Client
from kiqpy.server.launcher import Launcher
from tests import app_jobs


def max_connections(client):
    return client.connection_pool.max_connections


def test_a_client_pool_holds_pool_size_connections(config):
    assert max_connections(Client(config).redis) == 10  # 0: the client default
    assert max_connections(Client(config.replace(pool_size=3)).redis) == 3
    kiqpy.configure(pool_size=4)  # the client perform_async uses
    assert max_connections(kiqpy.default_client().redis) == 4


def test_a_worker_pool_holds_pool_size_connections(config):
    # 0: enough for the processors, the queue waiters and the background threads
    default = Launcher(config.replace(concurrency=7))
    assert max_connections(default.redis) > 7
    sized = Launcher(config.replace(concurrency=7, pool_size=30))
    assert max_connections(sized.redis) == 30


def test_pushes_from_many_threads_share_the_pool_size_connections(config, r):
    # Given a default configuration whose pool holds 2 connections
    kiqpy.configure(pool_size=2)
    before = {c["id"] for c in r.client_list()}
    barrier = threading.Barrier(8)

    def push_many():
        barrier.wait()
        for n in range(50):
            app_jobs.Record.perform_async(n)

    # When 8 threads push at once
    threads = [threading.Thread(target=push_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # Then every job is pushed, and Redis saw at most 2 new connections
    assert r.llen("queue:default") == 400
    opened = {c["id"] for c in r.client_list()} - before
    assert 1 <= len(opened) <= 2, opened
