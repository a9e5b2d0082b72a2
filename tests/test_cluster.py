"""Redis Cluster: a real 3-master cluster on loopback ports, shared by this module, with real
worker processes. Every Lua script and MULTI must stay in one hash slot (Redis refuses the rest
with CROSSSLOT), so running the features here is the proof; the key layout itself is checked
against the slots Redis computes."""

from __future__ import annotations

import time

import pytest
import redis
from redis.crc import key_slot

import kiqpy
from kiqpy.api import Stats
from kiqpy.config import Config
from kiqpy.connection import parse_cluster_url
from kiqpy.errors import ConfigurationError
from kiqpy.keys import Keys
from kiqpy.payload import decode
from tests.conftest import wait_for
from tests.topologies import ClusterTopology
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow

KEYS = Keys(cluster=True)
APP = "tests.app_cluster"


@pytest.fixture(scope="module")
def topo():
    topology = ClusterTopology()
    try:
        topology.start()
    except (RuntimeError, OSError) as exc:
        topology.cleanup()
        pytest.fail(f"cannot start the Redis Cluster: {exc}")
    yield topology
    topology.cleanup()


@pytest.fixture
def rc(topo):
    """A raw cluster client on the flushed cluster."""
    topo.flushall()
    client = redis.cluster.RedisCluster.from_url(f"redis://127.0.0.1:{topo.ports[0]}")
    yield client
    client.close()


@pytest.fixture
def cconfig(topo, rc):
    cfg = kiqpy.configure(Config(redis_url=topo.url))
    yield cfg
    kiqpy.configure(Config())


def node_of(rc, key: str) -> str:
    return str(rc.get_node_from_key(key).name)


def queues_on_three_shards(rc, count: int = 3) -> list[str]:
    """Queue names whose keys live on ``count`` different masters."""
    found: dict[str, str] = {}
    n = 0
    while len(found) < count:
        name = f"q{n}"
        found.setdefault(node_of(rc, KEYS.queue(name)), name)
        n += 1
    return list(found.values())


def runs(rc) -> list[str]:
    return [v.decode() for v in rc.lrange("test:runs", 0, -1)]


# -- URLs and the key layout -------------------------------------------------------------------
def test_a_cluster_url_names_its_nodes_and_cluster_true_implies_one():
    target = parse_cluster_url("redis+cluster://app:pw@h1:7000,h2:7001,h3")
    assert target is not None
    assert target.hosts == (("h1", 7000), ("h2", 7001), ("h3", 6379))
    assert (target.username, target.password, target.ssl) == ("app", "pw", False)
    assert parse_cluster_url("rediss+cluster://h1:7000").ssl is True
    assert parse_cluster_url("redis://h1:7000") is None
    config = Config(redis_url="redis://h1:7000", cluster=True)
    assert config.redis_url == "redis+cluster://h1:7000" and config.on_cluster
    assert not Config(redis_url="redis://h1:7000").on_cluster


@pytest.mark.parametrize(("changes", "why"), [
    ({"redis_url": "redis+cluster://h1:x"}, "'h1:x' is not host:port"),
    ({"redis_url": "redis+cluster://h1:7000/3"}, "only database 0"),
    ({"redis_url": "unix:///tmp/r.sock", "cluster": True}, "needs a redis:// or"),
    ({"redis_url": "redis+cluster://h1:7000", "push_replicas": 1}, "push_replicas is not"),
    ({"redis_url": "redis+cluster://h1:7000", "namespace": "a{b}"}, "cannot contain braces"),
])
def test_what_cannot_work_on_cluster_is_refused_when_configured(changes, why):
    with pytest.raises(ConfigurationError, match=why):
        Config(**changes)


def test_keys_used_together_share_a_slot_and_the_single_node_layout_is_unchanged():
    for keys in (Keys(cluster=True), Keys("ns", cluster=True)):
        shared = {key_slot(k.encode()) for k in (
            keys.queues, keys.schedule, keys.retry, keys.dead, keys.outbox, keys.processes,
            keys.process("h:1:ab"), keys.work("h:1:ab"), keys.signals("h:1:ab"),
            keys.inflight_owners, keys.recovery_lock, keys.paused_queues, keys.stat("processed"),
            keys.periodic("p"), keys.periodic_entries, keys.metrics(1), keys.cancellations)}
        assert len(shared) == 1
        for queue in ("default", "mail", "a:b"):
            assert key_slot(keys.queue(queue).encode()) == key_slot(
                keys.inflight("h:1:ab", queue).encode())
            assert keys.queue_name(keys.queue(queue)) == queue
    slots = {key_slot(KEYS.queue(f"q{n}").encode()) for n in range(20)}
    assert len(slots) > 10  # queues spread over the slots
    plain = Keys()
    assert (plain.queue("a"), plain.inflight("h", "a"), plain.schedule, plain.process("h"),
            plain.stat("processed")) == ("queue:a", "h:inflight:a", "schedule", "h",
                                         "stat:processed")


# -- the work ---------------------------------------------------------------------------------
def test_push_bulk_push_and_strict_fetch_from_queues_on_three_shards(topo, rc, cconfig):
    # Given three queues, each on its own master, filled by single and bulk pushes
    names = queues_on_three_shards(rc)
    assert len({node_of(rc, KEYS.queue(n)) for n in names}) == 3
    client = kiqpy.Client(cconfig)
    for name in names:
        assert client.push({"class": "cluster.Record", "args": [name, 0], "queue": name})
    jids = client.push_bulk({"class": "cluster.Record", "queue": names[1],
                             "args": [[names[1], n] for n in range(1, 31)]})
    assert len(jids) == 30 and all(jids)
    assert {q.decode() for q in rc.smembers(KEYS.queues)} == set(names)
    assert [rc.llen(KEYS.queue(n)) for n in names] == [1, 31, 1]
    # When one worker with one thread takes them in strict order
    with WorkerProcess(topo.url, "-c", "1", "-q", ",".join(names), require=APP) as worker:
        wait_for(lambda: len(runs(rc)) == 33, timeout=30, message="33 runs")
        worker.terminate()
        assert worker.wait() == 0
    # Then each ran once, queue by queue in the order given
    done = runs(rc)
    assert sorted(done) == sorted([f"{n}:0" for n in names] + [f"{names[1]}:{n}"
                                                              for n in range(1, 31)])
    assert [d.split(":")[0] for d in done] == [names[0]] + [names[1]] * 31 + [names[2]]
    assert all(rc.llen(KEYS.queue(n)) == 0 for n in names)
    assert not [k for k in rc.scan_iter(match="*inflight*")]  # every job acked


def test_weighted_fetch_serves_every_shard_and_scheduled_jobs_move_once(topo, rc, cconfig):
    # Given jobs on three shards and jobs scheduled a moment ahead, and two workers polling
    names = queues_on_three_shards(rc)
    client = kiqpy.Client(cconfig)
    for name in names:
        client.push_bulk({"class": "cluster.Record", "queue": name,
                          "args": [[name, n] for n in range(20)]})
    at = time.time() + 0.5
    for n in range(20):
        client.push({"class": "cluster.Record", "args": ["later", n], "queue": names[n % 3],
                     "at": at})
    assert rc.zcard(KEYS.schedule) == 20
    weighted = ",".join(f"{name}:{w}" for name, w in zip(names, (3, 2, 1), strict=True))
    with WorkerProcess(topo.url, "-q", weighted, require=APP) as one, \
            WorkerProcess(topo.url, "-q", weighted, require=APP) as two:
        wait_for(lambda: len(runs(rc)) == 80, timeout=30, message="80 runs")
        for worker in (one, two):
            worker.terminate()
        assert one.wait() == 0 and two.wait() == 0
    # Then every job ran exactly once, the scheduled ones included
    done = runs(rc)
    assert len(done) == len(set(done)) == 80
    assert rc.zcard(KEYS.schedule) == 0 and rc.zcard(KEYS.outbox) == 0


def test_retries_the_dead_set_and_stats(topo, rc, cconfig):
    client = kiqpy.Client(cconfig)
    for n in range(5):
        client.push({"class": "cluster.Flaky", "args": [n], "queue": "flaky"})
    for n in range(3):
        client.push({"class": "cluster.Doomed", "args": [n], "queue": "doomed", "retry": 1})
    with WorkerProcess(topo.url, "-q", "flaky,doomed", require=APP) as worker:
        wait_for(lambda: len(runs(rc)) == 5 and rc.zcard(KEYS.dead) == 3, timeout=30,
                 message="five flaky jobs to succeed on their retry, three in the dead set")
        worker.terminate()
        assert worker.wait() == 0
    stats = Stats(cconfig)  # flushed by the last heartbeat
    assert (stats.processed, stats.failed) == (16, 11)
    assert sorted(runs(rc)) == [f"flaky:{n}" for n in range(5)]
    assert rc.zcard(KEYS.retry) == 0
    assert sorted(decode(m)["args"][0] for m in rc.zrange(KEYS.dead, 0, -1)) == [0, 1, 2]
