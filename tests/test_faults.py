"""Fault injection: at-least-once delivery while workers are killed, Redis crashes, freezes or
answers too slowly, and many processes poll the schedule at once. Every test runs real worker
processes (or an embedded worker) against a Redis of its own and waits on conditions.

Already proved elsewhere, and not repeated here: one kill -9 mid-job (test_shutdown,
test_recovery), one worker through a clean Redis restart, a pause and a late start
(test_redis_outage), pollers as threads of one process (test_scheduler), malformed payloads
in a queue (test_processing). Bad payloads everywhere are in test_bad_payloads.py.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import redis
import structlog

import kiqpy
from kiqpy.config import Config
from kiqpy.connection import connect
from kiqpy.keys import Keys
from kiqpy.payload import decode, encode, new_jid, now_ms
from tests import fault_jobs
from tests.conftest import wait_for
from tests.redis_server import RedisServer
from tests.stamping import unstamp
from tests.workers import ROOT, WorkerProcess, cpu_seconds, identity_of, log_events

pytestmark = pytest.mark.slow  # real worker processes and real outages: seconds each

KEYS = Keys()
JOBS = "tests.fault_jobs"


@pytest.fixture
def own(redis_server) -> Iterator[RedisServer]:
    """A private redis-server with an append-only file fsynced at every write, so a crash
    keeps everything it acknowledged (``redis_server`` makes sure the binary works)."""
    server = RedisServer(persistence=True).start()
    yield server
    server.cleanup()


@pytest.fixture
def own_client(own, config) -> Iterator[redis.Redis]:
    """A raw client on ``own``; pushes through kiqpy's default client go there too."""
    kiqpy.configure(Config(redis_url=own.url, socket_timeout=10))
    client = redis.Redis.from_url(own.url, socket_timeout=10)
    yield client
    client.close()


def worker(url: str, *args: str) -> WorkerProcess:
    return WorkerProcess(url, *args, require=JOBS)


def ok_counts(r: redis.Redis) -> dict[str, int]:
    """id -> successful runs (fault_jobs.FaultJob)."""
    return dict(fault_jobs.successes(r))


def inflight_jobs(r: redis.Redis, identity: str = "*") -> list[bytes]:
    return [p for key in r.scan_iter(match=f"{identity}:inflight:*")
            for p in r.lrange(key, 0, -1)]


def stop_all(workers: list[WorkerProcess]) -> None:
    for w in workers:
        w.terminate()
    for w in workers:
        assert w.wait(20) == 0, w.log()[-3000:]


def count_events(w: WorkerProcess, text: str) -> int:
    return sum(text in str(e.get("event")) for e in log_events(w))


# -- kill -9, repeatedly -------------------------------------------------------------------------
QUEUES = ("alpha", "beta", "gamma")
CONCURRENCY = 4
KILLS = 3


def push_mixed_jobs(total: int) -> list[str]:
    """``total`` FaultJobs over QUEUES, taking 10-60 ms each: every 5th fails on its first
    attempt (and retries at once), every 7th is scheduled 0.5 s ahead."""
    ids, now, later = [], [], []
    for n in range(total):
        ident = f"j{n}"
        ids.append(ident)
        args = (ident, 0.01 + (n % 6) * 0.01, n % 5 == 0)
        (later if n % 7 == 0 else now).append((QUEUES[n % 3], args))
    for queue in QUEUES:
        job = fault_jobs.FaultJob.set(queue=queue)
        job.perform_bulk([a for q, a in now if q == queue])
        for _, args in (x for x in later if x[0] == queue):
            job.perform_in(0.5, *args)
    return ids


def test_kill_9_of_busy_workers_again_and_again_loses_nothing(own, own_client):
    r = own_client
    # Given three workers (-c 4) on three queues with 900 jobs of 10-60 ms, some failing once
    # and some scheduled
    ids = push_mixed_jobs(900)
    queue_args = ["-c", str(CONCURRENCY), *(a for q in QUEUES for a in ("-q", f"{q}:1"))]
    workers = [worker(own.url, *queue_args) for _ in range(3)]
    started = list(workers)
    killed: list[dict] = []
    try:
        for n in range(KILLS):
            # When a busy worker is killed with SIGKILL, and a replacement started
            victim = workers.pop(0)
            identity = identity_of(victim)
            wait_for(lambda identity=identity: len(inflight_jobs(r, identity)) >= CONCURRENCY,
                     message="the victim to be busy")
            victim.kill9()
            # What it held is frozen now: its in-flight lists, and the counts it had flushed
            # (recovery needs its heartbeat hash to expire first, 2 s from now at the least)
            held = [decode(p)["args"][0] for p in inflight_jobs(r, identity)]
            flushed = r.hget(KEYS.process(identity), "flushed").split()
            killed.append({"pid": victim.pid, "held": held, "flushed": int(flushed[0])})
            workers.append(worker(own.url, *queue_args))
            started.append(workers[-1])
            if n < KILLS - 1:
                time.sleep(0.3)  # let the replacement take work too
        # Then every job succeeds, the killed workers' jobs after their recovery
        wait_for(lambda: len(ok_counts(r)) == len(ids), timeout=30,
                 message="every job to succeed")
        wait_for(lambda: not inflight_jobs(r), timeout=10, message="in-flight lists to empty")
        stop_all(workers)
    finally:
        for w in started:
            w.__exit__()

    ok = ok_counts(r)
    assert sorted(ok) == sorted(ids)
    assert inflight_jobs(r) == [] and r.hlen(KEYS.inflight_owners) == 0
    assert all(r.llen(KEYS.queue(q)) == 0 for q in QUEUES)
    assert r.zcard("schedule") == r.zcard("retry") == r.zcard("dead") == 0

    # Duplicates: only a job in a killed worker's in-flight list when it died can run twice
    # (it had finished, but its ack had not reached Redis), at most once more per such kill.
    # That list holds what the worker was running, what it had prefetched (none here: jobs
    # over 25 ms turn prefetch off) and finished jobs whose ack was still on its way.
    recoveries = collections.Counter(i for k in killed for i in k["held"])
    extra = {i: n - 1 for i, n in ok.items() if n > 1}
    assert all(extra[i] <= recoveries[i] for i in extra), (extra, recoveries)
    held_at_kills = [len(k["held"]) for k in killed]
    assert sum(extra.values()) <= sum(held_at_kills)
    assert all(h <= 3 * CONCURRENCY for h in held_at_kills), held_at_kills

    # Counters: each worker adds what it processed at each heartbeat. A killed one's counts
    # since its last heartbeat die with it; the `flushed` field of its process hash says
    # how many had been added. Survivors flush all at their clean stop. FaultJob records
    # every attempt that ends, by pid, just before the processor counts it.
    finished_by = fault_jobs.finished(r)
    victims = {k["pid"] for k in killed}
    expected = (sum(n for pid, n in finished_by.items() if pid not in victims)
                + sum(k["flushed"] for k in killed))
    assert int(r.get("stat:processed")) == expected
    assert int(r.get("stat:processed")) <= sum(finished_by.values())
    assert 0 < int(r.get("stat:failed")) <= fault_jobs.failures(r)


# -- Redis crashes and freezes under load ------------------------------------------------------
class Producer(threading.Thread):
    """Pushes FaultJobs until stopped, over two queues, every 4th scheduled 0.5 s ahead and
    every 5th failing once, retrying a push through an outage. ``pushed`` holds the ids
    whose push returned (a push that failed may still have landed; its job then runs with
    an id that is not counted)."""

    def __init__(self, url: str, interval: float = 0.01) -> None:
        super().__init__(name="test-producer", daemon=True)
        self.client = kiqpy.Client(Config(redis_url=url, socket_timeout=10))
        self.interval = interval
        self.pushed: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            ident = f"p{n}"
            item = {"class": fault_jobs.FaultJob, "queue": ("alpha", "beta")[n % 2],
                    "args": [ident, 0.005, n % 5 == 0]}
            if n % 4 == 0:
                item["at"] = time.time() + 0.5
            try:
                self.client.push(item)
            except kiqpy.RedisUnavailableError:
                self.halt.wait(0.05)
                continue
            self.pushed.append(ident)
            n += 1
            self.halt.wait(self.interval)

    def stop(self) -> list[str]:
        self.halt.set()
        self.join(15)
        self.client.close()
        return list(self.pushed)


def crash(server: RedisServer) -> None:
    """SIGKILL redis-server: no shutdown save; what it kept is what the AOF fsynced."""
    assert server.process is not None
    server.process.kill()
    server.process.wait(10)
    server.process = None


def test_redis_crash_and_freeze_under_load_lose_nothing_it_kept(own, own_client):
    r = own_client
    producer = Producer(own.url)
    workers = [worker(own.url, "-c", "4", "-q", "alpha", "-q", "beta") for _ in range(2)]
    try:
        for w in workers:
            identity_of(w)
        producer.start()
        wait_for(lambda: len(ok_counts(r)) >= 50, message="jobs to flow")
        # When Redis is killed (SIGKILL) and comes back 2 s later from its append-only file
        crash(own)
        down_logs = [len(w.log()) for w in workers]
        down_cpu = [cpu_seconds(w.pid) for w in workers]
        for w in workers:
            w.wait_for_log("redis unreachable")
        time.sleep(2.0)  # the outage itself
        down_cpu = [cpu_seconds(w.pid) - c for w, c in zip(workers, down_cpu, strict=True)]
        down_logs = [len(w.log()) - n for w, n in zip(workers, down_logs, strict=True)]
        own.start()
        for w in workers:
            w.wait_for_log("redis back", timeout=15)
        mark = len(ok_counts(r))
        wait_for(lambda: len(ok_counts(r)) >= mark + 50, timeout=15, message="jobs after")
        # and then freezes (SIGSTOP) for 3 s
        own.pause()
        try:
            time.sleep(3.0)
        finally:
            own.resume()
        mark = len(ok_counts(r))
        wait_for(lambda: len(ok_counts(r)) >= mark + 50, timeout=15, message="jobs after")
    finally:
        pushed = producer.stop()
    try:
        # Then every job whose push returned runs, before and after both outages
        wait_for(lambda: set(ok_counts(r)) >= set(pushed), timeout=30,
                 message=f"all {len(pushed)} jobs to succeed")
        assert all(w.process.poll() is None for w in workers)
        stop_all(workers)
    finally:
        for w in workers:
            w.__exit__()
    for w in workers:
        # and each worker logged each outage once, and its end once (the 3 s freeze is
        # shorter than the 5 s socket timeout: commands just wait, and may log nothing)
        unreachable = count_events(w, "redis unreachable")
        assert 1 <= unreachable <= 2 and count_events(w, "redis back") == unreachable
        assert count_events(w, "thread crashed") == 0
    # and did not spin while Redis was gone: little CPU, a few log lines (the outage, and the
    # jobs running then)
    assert max(down_cpu) < 1.0, down_cpu
    assert max(down_logs) < 5_000, down_logs
    assert inflight_jobs(r) == []


def test_jobs_that_finish_while_redis_is_down_do_not_run_again(own, own_client):
    r = own_client
    with worker(own.url, "-c", "2") as w:
        wait_for(lambda: r.scard(KEYS.processes) == 1, message="the worker to register")
        # Given two naps of 1 s running (they touch Redis only when they start)
        fault_jobs.Nap.perform_bulk([["a", 1.0], ["b", 1.0]])
        wait_for(lambda: r.scard("fault:napped") == 2, message="the naps to start")
        # When Redis dies meanwhile, and is back once they have ended
        crash(own)
        time.sleep(1.5)  # the outage: the naps end, and their acks cannot be sent
        own.start()
        w.wait_for_log("redis back")
        # Then neither runs again (a job pushed now runs after anything already taken) and
        # their acks go through
        fault_jobs.Nap.perform_async("after", 0)
        wait_for(lambda: r.hexists("fault:naps", "after"), message="the job pushed after")
        wait_for(lambda: not inflight_jobs(r), timeout=10, message="the acks")
        assert {k.decode(): int(v) for k, v in r.hgetall("fault:naps").items()} == {
            "a": 1, "b": 1, "after": 1}


# -- Redis slower than the client's timeout ----------------------------------------------------
# The worker waits SOCKET_TIMEOUT for a reply; Redis freezes STALL seconds. The timeout must
# stay above fetch.BLOCK_SECONDS (1 s), or an idle worker's blocking fetches time out too.
SOCKET_TIMEOUT = 1.2
STALL = 3.0


@pytest.fixture
def slow_worker(own, own_client) -> Iterator[kiqpy.server.launcher.Embedded]:
    """A worker embedded in this process (the CLI has no socket-timeout flag) with a short
    socket timeout, whose log events are captured."""
    config = kiqpy.default_config().replace(
        socket_timeout=SOCKET_TIMEOUT, concurrency=4, heartbeat_interval=0.5, process_ttl=10,
        poll_interval_average=0.2, queues=(("default", 0),))
    with structlog.testing.capture_logs() as events:
        embedded = kiqpy.embed(config)
        embedded.events = events  # type: ignore[attr-defined]
        assert embedded.wait_started(10)
        try:
            yield embedded
        finally:
            embedded.stop()


def stall(server: RedisServer, seconds: float = STALL) -> None:
    server.pause()
    try:
        time.sleep(seconds)
    finally:
        server.resume()


def test_redis_slower_than_the_timeout_the_worker_goes_on_and_no_ack_is_forgotten(
        own, own_client, slow_worker):
    r = own_client
    # Given a worker busy with 400 short jobs, some failing once
    ids = [f"s{n}" for n in range(400)]
    fault_jobs.FaultJob.perform_bulk([[i, 0.01, n % 10 == 0] for n, i in enumerate(ids)])
    wait_for(lambda: len(ok_counts(r)) >= 100, message="jobs to flow")
    # When Redis freezes for longer than the worker's socket timeout
    stall(own)
    # Then the worker carries on and runs every job
    wait_for(lambda: len(ok_counts(r)) == len(ids), timeout=15, message="every job to run")
    wait_for(lambda: not inflight_jobs(r), timeout=5, message="the last acks")
    assert slow_worker.stop() == 0
    events = slow_worker.events
    # and, stopped, it has requeued nothing: a job whose ack failed during the freeze was
    # acked later (else it would now be back in its queue although it ran)
    assert r.llen(KEYS.queue("default")) == 0 and inflight_jobs(r) == []
    # and the freeze was logged once, its end once
    assert [e["event"] for e in events].count("redis unreachable; retrying") == 1
    assert [e["event"] for e in events].count("redis back") == 1
    assert not [e for e in events if e["event"] == "thread crashed; stopping"]
    # and each job that ran is counted once, though some heartbeats timed out and ran late
    assert int(r.get("stat:processed")) == sum(fault_jobs.finished(r).values())


def test_jobs_taken_by_a_fetch_whose_reply_was_lost_still_run(own, own_client, slow_worker):
    r = own_client
    # Given a worker running 4 naps of 0.2 s (that touch Redis only when they start), with 12
    # more queued
    fault_jobs.Nap.perform_bulk([[f"n{n}", 0.2] for n in range(16)])
    wait_for(lambda: r.scard("fault:napped") >= 4, message="the first naps")
    # When Redis freezes: the naps end meanwhile, and the fetch carrying their acks and
    # taking the next jobs waits for a reply, times out, and runs when Redis is back
    stall(own, 2.0)
    # Then every job still runs while the worker is up, and nothing stays in-flight
    # (the jobs the lost reply carried are taken in by the fetch loop's next round after
    # Redis is back, which may come after the queue has drained and the worker looks idle)
    wait_for(lambda: r.llen(KEYS.queue("default")) == 0, timeout=15, message="queue drained")
    wait_for(lambda: r.scard("fault:napped") == 16, timeout=15, message="every nap to run")
    wait_for(lambda: not slow_worker.launcher.manager.snapshot(), timeout=10,
             message="the worker to be idle")
    wait_for(lambda: not inflight_jobs(r), timeout=10, message="the acks")


def test_a_command_that_timed_out_is_not_sent_again(own, own_client):
    r = own_client
    client = connect(own.url, 2, socket_timeout=1.0)
    client.ping()  # connected: the next command reaches Redis's socket buffer
    # When Redis freezes longer than the timeout, but less than two of them
    own.pause()
    threading.Timer(1.5, own.resume).start()
    # It times out: it may or may not have run, and the caller must allow for either
    with contextlib.suppress(redis.RedisError):
        client.incr("fault:counter")
    wait_for(lambda: r.get("fault:counter") is not None, timeout=5, message="the INCR")
    time.sleep(0.2)
    # Then it ran once
    assert int(r.get("fault:counter")) == 1
    client.close()


# -- many pollers at the same instant ----------------------------------------------------------
def due_job(queue: str, ident: str) -> bytes:
    return encode({"class": "FaultJob", "args": [ident, 0, False], "queue": queue,
                   "jid": new_jid(), "retry": 5, "created_at": now_ms()})


def test_pollers_in_separate_processes_move_each_due_member_exactly_once(r, redis_url):
    # Given 2,000 due jobs over four queues in `schedule` and `retry`, 5 jobs only Python's
    # decoder reads (msgpack bin: Lua gives up, Python reroutes them) and 7 members that are
    # not jobs
    now = time.time()
    payloads = [due_job(f"q{n % 4}", f"d{n}") for n in range(2000)]
    odd = [encode({"class": "FaultJob", "args": [f"odd{n}"], "queue": "q0", "jid": new_jid(),
                   "blob": b"\x00bin"}) for n in range(5)]
    bad = [b"\xc1 not a job %d" % n for n in range(7)]
    r.zadd("schedule", {p: now - 1 for p in payloads[:1000] + odd})
    r.zadd("retry", {p: now - 1 for p in payloads[1000:] + bad})
    # and four processes waiting at a barrier
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    pollers = [subprocess.Popen([sys.executable, "-m", "tests.fault_poller", redis_url],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
               for _ in range(4)]
    try:
        wait_for(lambda: int(r.get("fault:ready") or 0) == len(pollers), timeout=20,
                 message="the pollers at the barrier")
        # When they are all released at once
        r.rpush("fault:go", *["go"] * len(pollers))
        reports = [json.loads(p.communicate(timeout=30)[0]) for p in pollers]
    finally:
        for p in pollers:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in pollers)
    # Then every job is in its queue exactly once, and every bad member is dead once
    queued = [p for n in range(4) for p in r.lrange(f"queue:q{n}", 0, -1)]
    jids = collections.Counter(decode(p)["jid"] for p in queued)
    # (each stamped with a fresh enqueued_at on the way, every other byte kept)
    assert len(queued) == 2005 and {unstamp(p)[0] for p in queued} == set(payloads + odd)
    assert set(jids.values()) == {1}
    assert sum(rep["moved"] for rep in reports) == 2005
    assert r.zcard("schedule") == r.zcard("retry") == 0
    dead = sorted(base64.b64decode(decode(m)["original_payload"]) for m in r.zrange("dead", 0, -1))
    assert dead == sorted(bad)
    # and they did run together: all woke within a few ms, and more than one moved jobs
    woke = [rep["woke"] for rep in reports]
    assert max(woke) - min(woke) < 0.1, woke
    assert sum(rep["moved"] > 0 for rep in reports) >= 2, reports


def test_workers_polling_every_50_ms_run_each_due_job_once(own, own_client):
    r = own_client
    # Given three workers polling the schedule about every 50 ms
    workers = [worker(own.url, "-c", "4", "-q", "q0", "-q", "q1", "--poll-interval", "0.05")
               for _ in range(3)]
    try:
        wait_for(lambda: r.scard(KEYS.processes) == 3, message="the workers to register")
        # When 1,000 jobs come due at once in each of `schedule` and `retry`
        now = time.time()
        payloads = [due_job(f"q{n % 2}", f"w{n}") for n in range(2000)]
        pipe = r.pipeline(transaction=True)
        pipe.zadd("schedule", {p: now for p in payloads[:1000]})
        pipe.zadd("retry", {p: now for p in payloads[1000:]})
        pipe.execute()
        # Then each runs exactly once
        wait_for(lambda: r.hlen("fault:ok") == 2000, timeout=30, message="every job")
        stop_all(workers)
    finally:
        for w in workers:
            w.__exit__()
    assert set(ok_counts(r).values()) == {1}
    assert fault_jobs.starts(r) == fault_jobs.successes(r)
    assert all(count_events(w, "thread crashed") == 0 for w in workers)
