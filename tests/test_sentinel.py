"""Sentinel: ``redis+sentinel://`` URLs everywhere a Redis URL goes, and failover under a
running worker and a pushing client (SENTINEL FAILOVER, and kill -9 of the master), counting
jobs: none whose push returned is lost."""

from __future__ import annotations

import threading
import time

import pytest

import kiqpy
from kiqpy.connection import SentinelAuth, connect, parse_sentinel_url
from kiqpy.errors import ConfigurationError
from tests.conftest import wait_for
from tests.topologies import SentinelTopology
from tests.workers import WorkerProcess, log_events, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def topo():
    topology = SentinelTopology()
    try:
        topology.start()
    except RuntimeError as exc:
        topology.cleanup()
        pytest.fail(f"cannot start the Sentinel topology: {exc}")
    yield topology
    topology.cleanup()


@pytest.fixture
def master(topo):
    """The current master, flushed (and the flush replicated) for this test."""
    client = topo.master_client()
    client.flushall()
    client.wait(1, 5000)
    yield client
    client.close()


# -- URLs ------------------------------------------------------------------------------------
def test_a_sentinel_url_names_hosts_service_database_and_both_passwords():
    target = parse_sentinel_url("redis+sentinel://app:s3cret@h1:26379,h2:26380,h3/jobs/2"
                                "?sentinel_password=sp&sentinel_ssl=true")
    assert target is not None
    assert target.hosts == (("h1", 26379), ("h2", 26380), ("h3", 26379))
    assert (target.service, target.db, target.username, target.password) == (
        "jobs", 2, "app", "s3cret")
    assert target.sentinel == SentinelAuth(None, "sp", True) and target.ssl is False
    assert parse_sentinel_url("rediss+sentinel://h1/jobs").ssl is True
    assert parse_sentinel_url("redis://localhost:6379/0") is None


@pytest.mark.parametrize(("url", "why"), [
    ("redis+sentinel://h1:26379", "it needs the service name as its path"),
    ("redis+sentinel://h1:port/jobs", "'h1:port' is not host:port"),
    ("redis+sentinel://h1/jobs/x", "the database 'x' is not a number"),
])
def test_a_malformed_sentinel_url_is_refused_where_it_is_configured(url, why):
    with pytest.raises(ConfigurationError, match=why):
        kiqpy.Config(redis_url=url)


def test_sentinel_passwords_never_show_in_messages():
    url = "redis+sentinel://:master-pw@127.0.0.1:1/jobs?sentinel_password=sentinel-pw"
    client = connect(url, 1, socket_timeout=0.2)
    with pytest.raises(kiqpy.RedisUnavailableError) as info:
        kiqpy.Client(kiqpy.Config(redis_url=url), client).push({"class": "X", "args": []})
    assert "master-pw" not in str(info.value) and "sentinel-pw" not in str(info.value)


# -- everything through Sentinel ---------------------------------------------------------------
def test_push_work_stats_and_check_all_take_a_sentinel_url(topo, master):
    client = kiqpy.Client(kiqpy.Config(redis_url=topo.url))
    jids = [client.push({"class": "sentinel.Record", "args": [n]}) for n in range(5)]
    assert master.llen("queue:default") == 5 and all(jids)
    with WorkerProcess(topo.url, require="tests.app_sentinel") as worker:
        wait_for(lambda: master.llen("test:runs") == 5, timeout=20, message="the five jobs")
        [stats, check] = run_cli(["stats", "--json", "--redis-url", topo.url],
                                 ["check", "--redis-url", topo.url])
        assert stats.returncode == 0, stats.stderr
        assert '"processed"' in stats.stdout
        assert check.returncode == 0 and check.stdout.startswith("ok"), check.stdout
        worker.terminate()
        assert worker.wait() == 0
    # The data API and the dashboard read the same Redis through the Sentinels
    from kiqpy.api import Stats
    from tests.web_helpers import client_for

    assert Stats(kiqpy.Config(redis_url=topo.url)).processed >= 5
    for path in ("/", "/busy", "/queues", "/retries", "/keys"):
        assert client_for(kiqpy.Config(redis_url=topo.url)).get(path).status_code == 200


def test_push_replicas_waits_for_a_replica_and_says_when_none_acknowledged(topo, master):
    # Given pushes that must reach one replica
    config = kiqpy.Config(redis_url=topo.url, push_replicas=1, push_replicas_timeout=0.3)
    client = kiqpy.Client(config)
    assert client.push({"class": "X", "args": [1]})
    # When the replica stops answering
    replica = topo.servers[next(p for p in topo.servers if p != topo.master_port())]
    replica.pause()
    try:
        started = time.monotonic()
        with pytest.raises(kiqpy.NotReplicatedError, match=r"only 0 of 1 replica"):
            client.push({"class": "X", "args": [2]})
        assert time.monotonic() - started < 3  # bounded by push_replicas_timeout
    finally:
        replica.resume()
    # Then the master still has the job: pushing again may duplicate it, never lose it
    assert master.llen("queue:default") == 2


# -- failover under load -----------------------------------------------------------------------
def _push_through(config: kiqpy.Config, count: int, acked: list[int], stop: threading.Event,
                  seen: dict[str, float]) -> None:
    """Push jobs 0..count-1, retrying each until its push returns (as an app would); notes
    the errors seen and the longest push call in ``seen``."""
    client = kiqpy.Client(config)
    for n in range(count):
        while not stop.is_set():
            started = time.monotonic()
            try:
                client.push({"class": "sentinel.Record", "args": [n]})
                acked.append(n)
                break
            except Exception as exc:  # noted: only RedisUnavailableError may come out
                seen[type(exc).__name__] = seen.get(type(exc).__name__, 0) + 1
                time.sleep(0.05)
            finally:
                seen["longest"] = max(seen.get("longest", 0.0), time.monotonic() - started)
        time.sleep(0.005)


@pytest.mark.parametrize("kill", [False, True], ids=["sentinel-failover", "kill-9-master"])
def test_a_failover_under_load_loses_no_acknowledged_job(topo, master, kill):
    # Given a worker and a client pushing with push_replicas=1, both through the Sentinels
    config = kiqpy.Config(redis_url=topo.url, push_replicas=1, push_replicas_timeout=1.0,
                          socket_timeout=2.0)
    acked: list[int] = []
    seen: dict[str, float] = {}
    stop = threading.Event()
    with WorkerProcess(topo.url, "-c", "5", "--heartbeat-interval", "0.5",
                       require="tests.app_sentinel") as worker:
        pusher = threading.Thread(target=_push_through, args=(config, 300, acked, stop, seen))
        pusher.start()
        try:
            wait_for(lambda: len(acked) >= 100 and master.llen("test:runs") >= 20, timeout=30,
                     message="100 pushes and 20 runs")
            # When the master fails over in the middle of it
            if kill:
                old = topo.master_port()
                topo.failover(kill=True)
                topo.restart_as_replica(old)
            else:
                topo.failover()
            pusher.join(120)
            assert not pusher.is_alive()
            # Then every job whose push returned runs, on the new master
            new = topo.master_client()

            def runs() -> list[int]:
                return [int(n) for n in new.lrange("test:runs", 0, -1)]

            wait_for(lambda: set(acked) <= set(runs()), timeout=90,
                     message="every acknowledged job to run")
            # And the worker noticed and said so once
            try:
                wait_for(lambda: [e for e in log_events(worker)
                                  if e.get("event") == "redis failover: a new master"],
                         timeout=15, message="the failover in the worker's log")
            except AssertionError:
                print("\n".join(line for line in worker.log().splitlines()
                                if '"start"' not in line and '"done"' not in line))
                raise
        finally:
            stop.set()
            pusher.join(10)
        worker.terminate()
        assert worker.wait(60) == 0
    done = runs()
    duplicates = len(done) - len(set(done))
    print(f"{len(acked)} pushed, {len(set(done))} ran, {duplicates} ran twice "
          f"(at-least-once); push errors and longest push: {seen}")
    assert len(acked) == 300
    # During the switch a push succeeded or raised RedisUnavailableError (NotReplicatedError
    # is one), within a few socket timeouts (redis-py retries a dropped connection twice)
    assert set(seen) <= {"RedisUnavailableError", "NotReplicatedError", "longest"}, seen
    assert seen["longest"] < 3 * config.socket_timeout + 2, seen


def test_the_async_client_and_aredis_take_a_sentinel_url(topo, master):
    import asyncio

    # Given the default configuration on the Sentinels' URL
    kiqpy.configure(kiqpy.Config(redis_url=topo.url))
    try:
        async def main() -> tuple[str | None, int]:
            jid = await kiqpy.aenqueue("sentinel.Record", 7)
            count = await kiqpy.aredis().incr("test:async-incr")
            return jid, count

        # When an event loop pushes and runs a command through them
        jid, count = asyncio.run(main())
    finally:
        kiqpy.configure(kiqpy.Config())
    # Then both reached the master
    assert jid and master.llen("queue:default") == 1 and count == 1
    assert int(master.get("test:async-incr")) == 1
