"""A real worker process while Redis goes away: restarted, paused (SIGSTOP), or not there at
start. Each test runs its own redis-server (with an append-only file, so data survives a
restart), never the session one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

import kiqpy
from tests import app_jobs
from tests.conftest import wait_for
from tests.redis_server import RedisServer
from tests.workers import WorkerProcess, cpu_seconds, exit_within, log_events


@pytest.fixture
def server(redis_server) -> Iterator[RedisServer]:
    """A private redis-server with persistence, started (``redis_server`` makes sure the
    binary works, or skips)."""
    own = RedisServer(persistence=True)
    own.start()
    yield own
    own.cleanup()


@pytest.fixture
def client(server) -> Iterator[redis.Redis]:
    raw = redis.Redis.from_url(server.url, socket_timeout=10)
    yield raw
    raw.close()


class Pusher(threading.Thread):
    """Pushes ``Resilient(n)`` for n = 0, 1, 2 ... every ``interval`` seconds until stopped,
    retrying a push through an outage. ``pushed`` holds each n whose push returned (a push
    that failed might still have landed; the job then runs with an n that is not counted)."""

    def __init__(self, url: str, interval: float = 0.02) -> None:
        super().__init__(name="test-pusher", daemon=True)
        self.client = kiqpy.Client(kiqpy.Config(redis_url=url, socket_timeout=10))
        self.interval = interval
        self.pushed: list[int] = []
        self.failures = 0
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            try:
                self.client.push({"class": app_jobs.Resilient, "args": [n]})
            except kiqpy.RedisUnavailableError:
                self.failures += 1
                self.halt.wait(0.05)
                continue
            self.pushed.append(n)
            n += 1
            self.halt.wait(self.interval)

    def stop(self) -> list[int]:
        self.halt.set()
        self.join(15)
        self.client.close()
        return list(self.pushed)


def seen(client: redis.Redis) -> set[int]:
    return {int(n) for n in client.smembers("test:seen")}


def count_events(worker: WorkerProcess, text: str) -> int:
    return sum(text in e["event"] for e in log_events(worker))


def test_redis_restarted_under_a_busy_worker(server, client):
    # Given a worker processing a stream of jobs
    pusher = Pusher(server.url)
    with WorkerProcess(server.url, "-c", "5") as worker:
        pusher.start()
        try:
            wait_for(lambda: len(seen(client)) >= 20, message="jobs to flow")
            # When Redis stops for 3 s and comes back with its data
            server.stop()
            down_at, cpu_at = time.monotonic(), cpu_seconds(worker.pid)
            log_at = len(worker.log())
            worker.wait_for_log("redis unreachable")
            time.sleep(max(0.0, 3.0 - (time.monotonic() - down_at)))  # the outage itself
            cpu_used = cpu_seconds(worker.pid) - cpu_at
            log_growth = len(worker.log()) - log_at
            server.start()
            worker.wait_for_log("redis back", timeout=15)
            after = len(pusher.pushed)
            wait_for(lambda: len(pusher.pushed) >= after + 20, message="pushes after")
        finally:
            pushed = pusher.stop()
        # Then every job pushed, before and after the restart, runs
        wait_for(lambda: seen(client) >= set(pushed), timeout=20,
                 message=f"all {len(pushed)} jobs to run")
        # and their acks get through: nothing stays in-flight
        wait_for(lambda: not client.keys("*:inflight:*"), message="the acks")
        assert worker.process.poll() is None, worker.log()[-3000:]
    # and the outage was logged once, its end once
    assert count_events(worker, "redis unreachable") == 1, worker.log()[-3000:]
    assert count_events(worker, "redis back") == 1
    # and the worker did not spin while Redis was gone (a few lines: the outage, and the
    # jobs that were running then)
    assert cpu_used < 1.0, cpu_used
    assert log_growth < 5_000, worker.log()[-5000:]


def test_redis_paused_under_a_busy_worker(server, client):
    # Given a worker processing a stream of jobs
    pusher = Pusher(server.url)
    with WorkerProcess(server.url, "-c", "5") as worker:
        pusher.start()
        try:
            wait_for(lambda: len(seen(client)) >= 20, message="jobs to flow")
            # When Redis freezes (SIGSTOP) for 3 s: connections hang rather than fail
            server.pause()
            try:
                time.sleep(3.0)  # the outage itself
            finally:
                server.resume()
            after = len(pusher.pushed)
            wait_for(lambda: len(pusher.pushed) >= after + 20, timeout=15,
                     message="pushes after")
        finally:
            pushed = pusher.stop()
        # Then every job runs and the worker is still there
        wait_for(lambda: seen(client) >= set(pushed), timeout=20,
                 message=f"all {len(pushed)} jobs to run")
        # and their acks get through: nothing stays in-flight
        wait_for(lambda: not client.keys("*:inflight:*"), message="the acks")
        assert worker.process.poll() is None, worker.log()[-3000:]
    # A 3 s freeze is shorter than the 5 s socket timeout: commands just wait. If anything
    # did time out, the outage is logged once and so is its end.
    unreachable = count_events(worker, "redis unreachable")
    assert unreachable <= 1, worker.log()[-3000:]
    assert count_events(worker, "redis back") == unreachable
    assert count_events(worker, "thread crashed") == 0


def test_a_worker_started_before_redis_waits_for_it(server, client):
    # Given no Redis yet
    server.stop()
    with WorkerProcess(server.url) as worker:
        # When the worker starts, it says so once and waits
        worker.wait_for_log("redis unreachable")
        waiting_since, cpu_at = time.monotonic(), cpu_seconds(worker.pid)
        time.sleep(2.0)  # Redis stays down a while
        assert worker.process.poll() is None
        assert count_events(worker, "redis unreachable") == 1
        cpu_used = cpu_seconds(worker.pid) - cpu_at
        # Then, once Redis is up, it starts taking jobs
        server.start()
        kiqpy.Client(kiqpy.Config(redis_url=server.url)).push(
            {"class": app_jobs.Resilient, "args": [7]})
        wait_for(lambda: seen(client) == {7}, timeout=15, message="the job to run")
        worker.wait_for_log("redis back")
        assert client.scard("processes") == 1
    assert count_events(worker, "redis unreachable") == 1
    assert cpu_used < 0.5, (cpu_used, time.monotonic() - waiting_since)


def test_term_stops_a_worker_that_is_still_waiting_for_redis(server):
    server.stop()
    with WorkerProcess(server.url) as worker:
        worker.wait_for_log("redis unreachable")
        worker.terminate()
        code, _ = exit_within(worker, 3)
        assert code == 0


def test_a_refused_command_is_logged_and_retried_not_fatal(config, r, redis_url):
    # Given a queue key of the wrong type, so Redis refuses every fetch (WRONGTYPE)
    r.set("queue:broken", "not a list")
    app_jobs.Record.perform_async("waiting")
    with WorkerProcess(redis_url, "-q", "broken,default") as worker:
        worker.wait_for_log("redis refused the fetch", timeout=15)
        # Then the worker stays up, and once the key is fixed it carries on
        assert worker.process.poll() is None
        r.delete("queue:broken")
        wait_for(lambda: r.llen("test:ran") == 1, timeout=40, message="the job after the fix")
        worker.terminate()
        assert worker.wait(20) == 0
