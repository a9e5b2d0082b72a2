"""Redis Cluster: a real 3-master cluster on loopback ports, shared by this module, with real
worker processes. Every Lua script and MULTI must stay in one hash slot (Redis refuses the rest
with CROSSSLOT), so running the features here is the proof; the key layout itself is checked
against the slots Redis computes."""

from __future__ import annotations

import re
import time

import pytest
import redis
from redis.crc import key_slot

import kiqpy
from kiqpy.api import (
    DeadSet,
    History,
    ProcessSet,
    Queue,
    RetrySet,
    ScheduledSet,
    Stats,
    cancel,
    cancellations,
)
from kiqpy.config import Config
from kiqpy.connection import connect, parse_cluster_url
from kiqpy.errors import ConfigurationError
from kiqpy.failures import MALFORMED_CLASS
from kiqpy.keys import Keys
from kiqpy.payload import decode, encode, new_jid, now_ms
from tests.conftest import wait_for
from tests.topologies import ClusterTopology
from tests.workers import WorkerProcess, run_cli

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
    from_env = Config.from_env({"REDIS_URL": "redis://h1:7000", "KIQPY_CLUSTER": "1"})
    assert from_env.redis_url == "redis+cluster://h1:7000"


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
    assert not [k for k in rc.scan_iter(match="*:inflight:*")]  # every job acked


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
        wait_for(lambda: len(ProcessSet(cconfig)) == 2, timeout=15, message="both registered")
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
    history = History(2, config=cconfig)  # today's counters, in the {kiqpy} slot too
    assert (max(history.processed.values()), max(history.failed.values())) == (16, 11)
    assert sorted(runs(rc)) == [f"flaky:{n}" for n in range(5)]
    assert rc.zcard(KEYS.retry) == 0
    assert sorted(decode(m)["args"][0] for m in rc.zrange(KEYS.dead, 0, -1)) == [0, 1, 2]


# -- failures of processes ---------------------------------------------------------------------
def test_jobs_of_a_process_killed_with_sigkill_run_again_on_another(topo, rc, cconfig):
    # Given a worker running three slow jobs on two shards
    names = queues_on_three_shards(rc, 2)
    client = kiqpy.Client(cconfig)
    for n in range(3):
        client.push({"class": "cluster.Sleepy", "args": [n, 60], "queue": names[n % 2]})
    with WorkerProcess(topo.url, "-q", ",".join(names), require=APP) as doomed:
        wait_for(lambda: all(rc.get(f"test:starts:{n}") for n in range(3)), timeout=20,
                 message="the three jobs to start")
        # When it is killed with SIGKILL
        doomed.kill9()
    assert sum(rc.llen(k) for k in rc.scan_iter(match="*:inflight:*")) == 3
    # Then another process recovers the jobs once the first one's heartbeat expired, and
    # runs them (a second start is short)
    with WorkerProcess(topo.url, "-q", ",".join(names), require=APP) as rescuer:
        wait_for(lambda: len(runs(rc)) == 3, timeout=30, message="the three jobs to run again")
        rescuer.terminate()
        assert rescuer.wait() == 0
        assert "recovered jobs of a dead process" in rescuer.log()
    assert sorted(runs(rc)) == [f"sleepy:{n}" for n in range(3)]
    assert [int(rc.get(f"test:starts:{n}")) for n in range(3)] == [2, 2, 2]
    assert not list(rc.scan_iter(match="*:inflight:*"))


def test_a_poison_pill_goes_to_the_dead_set_and_the_rest_back_to_its_queue(rc, cconfig):
    from kiqpy.server.outage import Outage
    from kiqpy.server.recovery import Recovery
    from tests.recording import RecordingLog

    # Given what a process killed while holding two jobs leaves: one job already recovered
    # twice within the window (a poison pill)
    dead_identity, hour_ms = "deadhost:1:0badc0ffee00", 3600 * 1000
    pill = encode({"class": "cluster.Record", "args": ["x", 1], "queue": "pills",
                   "jid": new_jid(), "recovered_at": [now_ms() - 2 * hour_ms, now_ms() - hour_ms]})
    innocent = encode({"class": "cluster.Record", "args": ["x", 2], "queue": "pills",
                       "jid": new_jid()})
    rc.lpush(KEYS.inflight(dead_identity, "pills"), pill, innocent)
    rc.hset(KEYS.inflight_owners, dead_identity, '["pills"]')
    log = RecordingLog()
    client = connect(cconfig.redis_url, 2)
    # When a live process checks for dead ones
    recovery = Recovery(cconfig, client, KEYS, "livehost:1:000000000001",
                        Outage(cconfig.redis_url, log), log)
    assert recovery.check() == 1
    # Then the innocent job is queued again, the pill is dead, and the dead process forgotten
    assert [decode(p)["args"] for p in rc.lrange(KEYS.queue("pills"), 0, -1)] == [["x", 2]]
    [entry] = [decode(m) for m in rc.zrange(KEYS.dead, 0, -1)]
    assert entry["error_class"] == "kiqpy.PoisonPill" and len(entry["recovered_at"]) == 3
    assert not rc.exists(KEYS.inflight(dead_identity, "pills"))
    assert not rc.hexists(KEYS.inflight_owners, dead_identity)


# -- everything else a user sees -----------------------------------------------------------------
def test_registry_signals_data_api_cli_and_every_dashboard_page(topo, rc, cconfig):
    from tests.web_helpers import client_for, entry_ids

    client = kiqpy.Client(cconfig)
    with WorkerProcess(topo.url, "-q", "api,other", require=APP) as worker:
        # The process registry and its heartbeat
        wait_for(lambda: len(ProcessSet(cconfig)) == 1, timeout=15, message="the heartbeat")
        [process] = ProcessSet(cconfig)
        # The data API moves jobs from the sets to a queue on another shard
        client.push({"class": "cluster.Record", "args": ["api", "later"], "queue": "api",
                     "at": time.time() + 3600})
        client.push({"class": "cluster.Doomed", "args": [9], "queue": "api", "retry": False})
        [scheduled] = list(ScheduledSet(cconfig).each())
        assert scheduled.add_to_queue() is True if hasattr(scheduled, "add_to_queue") \
            else scheduled.retry()
        wait_for(lambda: "api:later" in runs(rc), timeout=15, message="the scheduled job")
        rc.zadd(KEYS.dead, {encode({"class": "cluster.Record", "args": ["api", "dead"],
                                    "queue": "api", "jid": new_jid()}): time.time()})
        [dead] = list(DeadSet(cconfig).each())
        assert dead.retry() is True and dead.retry() is False  # moved once
        wait_for(lambda: "api:dead" in runs(rc), timeout=15, message="the dead job")
        rc.zadd(KEYS.retry, {encode({"class": "cluster.Record", "args": ["api", "retry"],
                                     "queue": "other", "jid": new_jid(), "retry_count": 1,
                                     "failed_at": now_ms(),
                                     "error_message": "x", "error_class": "E"}):
                             time.time() + 3600})
        assert RetrySet(cconfig).retry_all() == 1
        wait_for(lambda: "api:retry" in runs(rc), timeout=15, message="the retried job")
        assert rc.zcard(KEYS.outbox) == 0
        # Queues: sizes, pausing, clearing
        Queue("api", cconfig).pause()
        wait_for(lambda: "queue paused" in worker.log(), timeout=10, message="the pause")
        client.push({"class": "cluster.Record", "args": ["api", "paused"], "queue": "api"})
        # (a waiter blocked in BLMOVE may take it, and gives it back to the paused queue)
        wait_for(lambda: Queue("api", cconfig).size == 1, timeout=10, message="it to wait")
        # Cancelling a waiting job finds it in its queue on its shard
        jid = client.push({"class": "cluster.Record", "args": ["api", "cancelled"],
                           "queue": "api"})
        assert cancel(jid, cconfig).where == "queue:api"
        assert [c.jid for c in cancellations(cconfig)] == [jid]
        Queue("api", cconfig).unpause()
        wait_for(lambda: "api:paused" in runs(rc), timeout=15, message="the unpaused job")
        # kiqpy stats and kiqpy check
        [stats, check] = run_cli(["stats", "--json", "--redis-url", topo.url],
                                 ["check", "--redis-url", topo.url])
        assert stats.returncode == 0 and '"processed"' in stats.stdout, stats.stderr
        assert check.returncode == 0 and check.stdout.startswith("ok"), check.stdout
        # Every page of the dashboard
        web = client_for(cconfig)
        rc.zadd(KEYS.retry, {encode({"class": "cluster.Record", "args": ["web", 1],
                                     "queue": "other", "jid": new_jid(), "retry_count": 0,
                                     "failed_at": now_ms(), "error_message": "x",
                                     "error_class": "E"}): time.time() + 3600})
        pages = ["/", "/stats", "/stats/queues", "/health", "/busy", "/queues", "/queues/api",
                 "/retries", "/scheduled", "/dead", "/metrics", "/metrics/cluster.Record",
                 "/limits", "/periodic", "/keys", "/keys?match=queue",
                 f"/keys/view?key={KEYS.queues}", f"/keys/view?key={KEYS.retry}"]
        for path in pages:
            response = web.get(path)
            assert response.status_code == 200, (path, response.get_data(as_text=True)[:500])
        listing = web.get("/retries").get_data(as_text=True)
        [entry_id] = entry_ids(listing, "retries")
        assert web.get(f"/retries/{entry_id}").status_code == 200
        # ...and its actions: "Retry now" crosses to the queue's shard through the outbox
        response = web.post(f"/retries/{entry_id}", {"op": "retry"})
        assert response.status_code == 303 and "done=retry&n=1" in response.headers["Location"]
        wait_for(lambda: "web:1" in runs(rc), timeout=15, message="the job retried from the web")
        response = web.post("/queues/api", {"op": "clear"})
        assert response.status_code == 303 and "done=clear" in response.headers["Location"]
        keys_page = web.get("/keys").get_data(as_text=True)
        shown = set(re.findall(r"<code>([^<]*)</code>", keys_page))
        assert {KEYS.processes, KEYS.cancellations, "test:runs"} <= shown, shown
        # A remote signal reaches the process through its signal list
        process.quiet()
        wait_for(lambda: "quiet: no new jobs will be fetched" in worker.log(), timeout=10,
                 message="the remote quiet")
        worker.terminate()
        assert worker.wait() == 0
    assert len(ProcessSet(cconfig)) == 0


# -- middleware, periodic jobs, limiters, metrics ------------------------------------------------
def test_unique_jobs_expiry_limiters_and_metrics(topo, rc, cconfig):
    import kiqpy_middleware.expiry
    import kiqpy_middleware.unique
    from kiqpy import limiter
    from kiqpy.api import Limiters
    from kiqpy.api.metrics import Metrics

    config = cconfig.replace(client_middleware=kiqpy.Chain(),
                             server_middleware=kiqpy.Chain())
    kiqpy_middleware.unique.install(config)
    kiqpy_middleware.expiry.install(config)
    client = kiqpy.Client(config)
    # Unique jobs: the second push of the same job is dropped while the first holds the lock
    job = {"class": "cluster.Record", "args": ["u", 1], "queue": "uniq", "unique_for": 60}
    assert client.push(dict(job)) and client.push(dict(job)) is None
    # Expiry: a job pushed with a deadline already past is skipped by the worker
    client.push({"class": "cluster.Record", "args": ["uniq", "expired"], "queue": "uniq",
                 "expires_in": 0.001, "at": time.time() - 10})
    # Limiters keep all their keys in the slot of {<name>}
    gate = limiter.concurrent("cluster-gate", 1, wait_timeout=0, config=config)
    with gate.within_limit(), pytest.raises(limiter.OverLimit), gate.within_limit():
        pass
    [info] = Limiters(config)
    assert info.name == "cluster-gate" and info.calls == 1
    with WorkerProcess(topo.url, "-q", "uniq", require=APP,
                       env={"KIQPY_TEST_MIDDLEWARE": "unique,expiry"}) as worker:
        wait_for(lambda: runs(rc) == ["u:1"], timeout=15, message="the unique job")
        worker.terminate()
        assert worker.wait() == 0
    assert "expired" not in " ".join(runs(rc))
    # The lock is gone once the job ran, so it can be pushed again
    assert client.push(dict(job))
    # Metrics: the worker counted its executions per class and minute
    assert any(row.job_class == "cluster.Record" and row.processed >= 1
               for row in Metrics(config).top(5))


def test_periodic_ticks_enqueue_once_through_the_outbox(rc, cconfig):
    import threading

    from kiqpy.client import periodic as periodic_module
    from kiqpy.log import get_logger
    from kiqpy.server.outage import Outage
    from kiqpy.server.ticker import Ticker

    kiqpy.periodic("* * * * * *", "cluster.Record", name="cluster-tick", args=["tick", 1],
                   queue="ticks", catch_up="all")
    try:
        log = get_logger()
        client = connect(cconfig.redis_url, 2)
        start = 1_900_000_000.0
        tickers = [Ticker(cconfig, client, KEYS, f"host:{n}:x", Outage("redis", log), log,
                          threading.Event(), clock=lambda: start) for n in range(3)]
        [entry] = [e for e in periodic_module.entries() if e.name == "cluster-tick"]
        for ticker in tickers:
            ticker.tick(entry, start)
        for ticker in tickers:  # two seconds later: each tick is enqueued once
            ticker.tick(entry, start + 2)
        queued = [decode(p)["periodic_tick"] for p in rc.lrange(KEYS.queue("ticks"), 0, -1)]
        assert sorted(queued) == [start + 1, start + 2]
        assert rc.zcard(KEYS.outbox) == 0
    finally:
        periodic_module.unregister("cluster-tick")


def test_a_move_interrupted_after_its_claim_is_delivered_by_the_next_poll(rc, cconfig):
    import threading

    from kiqpy.log import get_logger
    from kiqpy.server.outage import Outage
    from kiqpy.server.scheduler import Scheduler

    # Given a due job that a poller claimed into the outbox two minutes ago and then died
    member = encode({"class": "cluster.Record", "args": ["late", 1], "queue": "late",
                     "jid": new_jid()})
    rc.zadd(KEYS.outbox, {member: time.time() - 120})
    fresh = encode({"class": "cluster.Record", "args": ["late", 2], "queue": "late",
                    "jid": new_jid()})
    rc.zadd(KEYS.outbox, {fresh: time.time()})  # a live mover's, not to be touched
    log = get_logger()
    scheduler = Scheduler(cconfig, connect(cconfig.redis_url, 2), KEYS,
                          Outage(cconfig.redis_url, log), log, threading.Event())
    # When any process polls, the stale entry is queued (with a fresh enqueued_at), once
    assert scheduler.enqueue_due() == 1
    assert scheduler.enqueue_due() == 0
    [queued] = [decode(p) for p in rc.lrange(KEYS.queue("late"), 0, -1)]
    assert queued["args"] == ["late", 1] and "enqueued_at" in queued
    assert rc.zrange(KEYS.outbox, 0, -1) == [fresh]
    # And a due member that is not a job goes to the dead set with the reason, not a queue
    rc.zadd(KEYS.schedule, {b"\xc1 not msgpack": time.time() - 1})
    assert scheduler.enqueue_due() == 0
    [record] = [decode(m) for m in rc.zrange(KEYS.dead, 0, -1)]
    assert record["class"] == MALFORMED_CLASS and "in {kiqpy}:schedule" in record["error_message"]
    assert rc.zcard(KEYS.schedule) == 0 and rc.zrange(KEYS.outbox, 0, -1) == [fresh]


def test_kiqpy_redis_sends_one_key_commands_to_their_node_and_follows_a_moved_slot(rc, cconfig):
    from kiqpy.connection import ThreadCluster

    with kiqpy.redis(cconfig) as conn:
        assert isinstance(conn, ThreadCluster)
        # One-key commands on keys of every shard, and commands with options (full path)
        for n in range(60):
            conn.set(f"test:k{n}", n)
        assert [int(conn.get(f"test:k{n}")) for n in range(60)] == list(range(60))
        assert len({node_of(rc, f"test:k{n}") for n in range(60)}) == 3
        conn.zadd("test:z", {"a": 1.5})
        assert conn.zrange("test:z", 0, -1, withscores=True) == [(b"a", 1.5)]
        # A stale slot map (as after a resharding): the node answers MOVED, and the command
        # is sent again where the slot now is, once
        slot = key_slot(b"test:moved")
        owner = conn.nodes_manager.get_node_from_slot(slot)
        other = next(n for n in conn.get_primaries() if n.name != owner.name)
        conn.nodes_manager.slots_cache[slot] = [other]
        assert conn.incr("test:moved") == 1
        assert conn.incr("test:moved") == 2
        assert conn.nodes_manager.get_node_from_slot(slot).name == owner.name
    assert int(rc.get("test:moved")) == 2


def test_a_worker_started_before_the_cluster_waits_for_it(topo):
    # Given a worker and a client pointed at a cluster that is not running yet
    later = ClusterTopology()
    try:
        client = kiqpy.Client(Config(redis_url=later.url))  # building needs no node
        with pytest.raises(kiqpy.RedisUnavailableError, match="cannot reach Redis"):
            client.push({"class": "cluster.Record", "args": ["late", 0], "queue": "late"})
        with WorkerProcess(later.url, "-q", "late", require=APP) as worker:
            worker.wait_for_log("redis unreachable; retrying")
            # When the cluster comes up
            later.start()
            # Then the same worker registers, and runs what is pushed
            assert client.push({"class": "cluster.Record", "args": ["late", 1],
                                "queue": "late"})
            check = redis.cluster.RedisCluster(host="127.0.0.1", port=later.ports[0])
            wait_for(lambda: runs(check) == ["late:1"], timeout=30, message="the job")
            worker.terminate()
            assert worker.wait() == 0
            check.close()
    finally:
        later.cleanup()


def test_batches_workflows_results_and_async_jobs(topo, rc, cconfig):
    import asyncio

    # Given a batch of 20 jobs on two shards with callbacks, a 3-step workflow, and async
    # jobs pushed by the async client
    names = queues_on_three_shards(rc, 2)
    batch = kiqpy.Batch(description="cluster")
    batch.on("complete", "cluster.Done", {})
    batch.on("success", "cluster.Done", {})
    with batch.jobs():
        for n in range(20):
            kiqpy.enqueue("cluster.Part", n, queue=names[n % 2])
    flow = kiqpy.Workflow("cluster-flow")
    flow.add("a", kiqpy.Signature("cluster.Part", [1000], {"queue": names[0]}))
    flow.add("b", kiqpy.Signature("cluster.Part", [1001], {"queue": names[1]}), deps=["a"])
    flow.add("c", kiqpy.Signature("cluster.Part", [1002], {"queue": names[0]}), deps=["b"])
    flow.run()

    from tests.app_cluster import AsyncPart  # its options (store_result) go in the job

    async def push_async() -> list[str]:
        return [await AsyncPart.set(queue=names[1]).aperform_async(n) for n in range(4)]

    ajids = asyncio.run(push_async())
    # When a worker runs them all (the callbacks go to the default queue)
    with WorkerProcess(topo.url, "-q", ",".join([*names, "default"]), require=APP) as worker:
        wait_for(lambda: rc.llen("test:callbacks") == 2, timeout=30,
                 message="the batch's complete and success callbacks")
        assert [kiqpy.result(jid, timeout=30) for jid in ajids] == [100, 101, 102, 103]
        wait_for(lambda: {"part:1000", "part:1001", "part:1002"} <= set(runs(rc)),
                 timeout=30, message="the workflow's three steps")
        worker.terminate()
        assert worker.wait() == 0
    # Then each job ran once, each callback fired once, and the workflow ran in order
    assert sorted(x.decode() for x in rc.lrange("test:callbacks", 0, -1)) == ["complete",
                                                                              "success"]
    done = runs(rc)
    assert sorted(r for r in done if r.startswith("part:") and int(r[5:]) < 20) == sorted(
        f"part:{n}" for n in range(20))
    order = [r for r in done if r in ("part:1000", "part:1001", "part:1002")]
    assert order == ["part:1000", "part:1001", "part:1002"]
    assert sorted(r for r in done if r.startswith("apart:")) == [f"apart:{n}" for n in range(4)]


def test_the_worker_flag_and_the_config_file_key_turn_cluster_on(topo, tmp_path):
    from click.testing import CliRunner

    from kiqpy.cli.commands import _settings, worker

    url = f"redis://127.0.0.1:{topo.ports[0]}/0"
    for args in (["--cluster"], ["-C", str(tmp_path / "k.toml")]):
        (tmp_path / "k.toml").write_text("[kiqpy]\ncluster = true\n")
        ctx = worker.make_context("worker", ["--redis-url", url, *args])
        settings = _settings(ctx, dict(ctx.params))
        config = Config().replace(**{k: v for k, v in settings.items() if k in (
            "cluster", "redis_url")})
        assert config.on_cluster and config.redis_url.startswith("redis+cluster://")
    result = CliRunner().invoke(worker, ["--cluster", "--redis-url", "unix:///tmp/x.sock"])
    assert result.exit_code == 2 and "cluster" in result.output
