"""kiqpy.server.recovery: the in-flight jobs of a dead process go back to the front of their queues,
once, by one live process at a time; a job that keeps killing its workers goes to the dead set.

In-process tests lay out in Redis what a worker that died would leave (its in-flight lists and
its entry in the in-flight owners, no heartbeat hash) and run the real Recovery over it; the
last test kills a real worker with SIGKILL.
"""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest
import redis

from kiqpy.failures import MALFORMED_CLASS
from kiqpy.keys import Keys
from kiqpy.payload import decode, encode, new_jid, now_ms, serializer_of
from kiqpy.server.outage import Outage
from kiqpy.server.recovery import PoisonPill, Recovery
from kiqpy_middleware.unique import digest
from kiqpy_middleware.unique import install as install_unique
from tests import app_jobs
from tests import app_unique_death as unique_jobs
from tests.conftest import wait_for
from tests.recording import RecordingLog
from tests.workers import WorkerProcess

KEYS = Keys()
DEAD = "deadhost:4242:0badc0ffee00"
ME = "livehost:1:000000000001"
HOUR_MS = 3600 * 1000


@pytest.fixture
def log():
    return RecordingLog()


def make_recovery(config, client, log, identity=ME, outage=None, **changes):
    cfg = config.replace(**changes) if changes else config
    return Recovery(cfg, client, KEYS, identity, outage or Outage(cfg.redis_url, log), log)


def job(queue="default", serializer="msgpack", **extra):
    return encode({"class": "Record", "args": [], "queue": queue, "jid": new_jid(),
                   "retry": True, "created_at": now_ms(), **extra}, serializer)


def died_holding(r, identity, jobs_by_queue, listed_queues=None):
    """Leave in Redis what a worker killed while holding ``jobs_by_queue`` leaves: its in-flight
    lists as fetch.lua builds them (LPUSH in fetch order) and its in-flight owner entry; no
    heartbeat hash (it expired). Also a stale `processes` entry and work hash."""
    for queue, payloads in jobs_by_queue.items():
        for payload in payloads:
            r.lpush(KEYS.inflight(identity, queue), payload)
    queues = listed_queues if listed_queues is not None else sorted(jobs_by_queue)
    r.hset(KEYS.inflight_owners, identity, json.dumps(queues))
    r.sadd(KEYS.processes, identity)
    r.hset(KEYS.work(identity), "kiqpy.processor-1", "{}")


def jids(payloads):
    return [decode(p)["jid"] for p in payloads]


def taken_order(r, queue="default"):
    """The jids of ``queue`` in the order a worker takes them."""
    return jids(reversed(r.lrange(KEYS.queue(queue), 0, -1)))


def inflight_keys(r):
    return sorted(k.decode() for k in r.scan_iter(match="*:inflight:*"))


# -- recovering a dead process ------------------------------------------------------------------
def test_a_dead_process_jobs_go_back_to_the_front_of_their_queues_in_order(config, r, log):
    # Given a worker that took A, B, C from default and D from mail, then died; and jobs X, Y
    # pushed to default after that
    fetched = [job() for _ in range(3)]
    mail = [job("mail")]
    died_holding(r, DEAD, {"default": fetched, "mail": mail})
    later = [job() for _ in range(2)]
    for payload in later:
        r.lpush(KEYS.queue("default"), payload)

    moved = make_recovery(config, r, log).check()

    # Then A, B, C are taken first, in their original order, before X and Y
    assert moved == 4
    assert taken_order(r) == jids(fetched) + jids(later)
    assert taken_order(r, "mail") == jids(mail)
    # and the dead process is forgotten
    assert inflight_keys(r) == []
    assert not r.hexists(KEYS.inflight_owners, DEAD)
    assert not r.sismember(KEYS.processes, DEAD)
    assert not r.exists(KEYS.work(DEAD))
    assert not r.exists(KEYS.recovery_lock)
    assert "recovered jobs of a dead process" in log.events("warning")


def test_recovered_jobs_carry_when_they_were_recovered_and_keep_their_encoding(config, r, log):
    payloads = [job(serializer="json"), job(serializer="msgpack")]
    died_holding(r, DEAD, {"default": payloads})
    before = now_ms()
    make_recovery(config, r, log).check()
    queued = list(reversed(r.lrange(KEYS.queue("default"), 0, -1)))
    assert [serializer_of(p) for p in queued] == ["json", "msgpack"]
    for payload in queued:
        [stamp] = decode(payload)["recovered_at"]
        assert type(stamp) is int and before <= stamp <= now_ms()


def test_lists_of_queues_the_process_listed_but_nobody_pushed_to_are_recovered(config, r, log):
    # `private` is not in the `queues` set (no client pushed to it): the owner entry names it.
    died_holding(r, DEAD, {"private": [job("private")]})
    assert r.smembers(KEYS.queues) == set()
    assert make_recovery(config, r, log).check() == 1
    assert r.llen(KEYS.queue("private")) == 1
    # ...and the queue is known again, so workers listening by pattern (-q '*') find the job
    assert r.smembers(KEYS.queues) == {b"private"}


def test_lists_of_known_queues_are_recovered_even_if_the_owner_entry_misses_them(config, r, log):
    # The owner entry is written at each beat; a queue added since (`*` patterns) may be missing.
    r.sadd(KEYS.queues, "late")
    died_holding(r, DEAD, {"late": [job("late")]}, listed_queues=["default"])
    assert make_recovery(config, r, log).check() == 1
    assert r.llen(KEYS.queue("late")) == 1


def test_several_dead_processes_are_all_recovered(config, r, log):
    others = [f"deadhost:{n}:{n:012x}" for n in range(3)]
    for identity in others:
        died_holding(r, identity, {"default": [job(), job()]})
    assert make_recovery(config, r, log).check() == 6
    assert inflight_keys(r) == [] and r.hlen(KEYS.inflight_owners) == 0


# -- poison pills and malformed payloads --------------------------------------------------------
def test_a_job_recovered_twice_recently_is_a_poison_pill_on_the_third_time(config, r, log):
    now = now_ms()
    pill = job(serializer="json", recovered_at=[now - 2 * HOUR_MS, now - 1 * HOUR_MS])
    innocent = job()
    died_holding(r, DEAD, {"default": [pill, innocent]})

    assert make_recovery(config, r, log).check() == 1

    assert taken_order(r) == jids([innocent])
    [(dead, score)] = r.zrange("dead", 0, -1, withscores=True)
    assert serializer_of(dead) == "json"
    entry = decode(dead)
    assert entry["jid"] == decode(pill)["jid"]
    assert "poison pill" in entry["error_message"]
    assert entry["error_class"] == "kiqpy.PoisonPill"
    assert len(entry["recovered_at"]) == 3
    assert abs(score - time.time()) < 5
    assert inflight_keys(r) == []
    assert "poison pill sent to the dead set" in log.events("error")


def test_a_poison_pill_runs_the_death_handlers_once_it_is_in_the_dead_set(config, r, log):
    # Given death handlers, one of which raises, and a job recovered twice in the last hours
    seen = []

    def record(job, exc):
        seen.append((job, exc, r.zcard("dead")))

    def broken(job, exc):
        raise RuntimeError("handler bug")

    now = now_ms()
    pill = job(recovered_at=[now - 2 * HOUR_MS, now - 1 * HOUR_MS])
    died_holding(r, DEAD, {"default": [pill, job()]})
    recovery = make_recovery(config, r, log, death_handlers=[broken, record])

    # When its worker dies a third time and the process is recovered
    assert recovery.check() == 1

    # Then each handler ran once for it, after it was in the dead set, with a PoisonPill error
    [(dead_job, exc, dead_count)] = seen
    assert dead_job["jid"] == decode(pill)["jid"]
    assert dead_job["error_class"] == "kiqpy.PoisonPill"
    assert isinstance(exc, PoisonPill) and "poison pill" in str(exc)
    assert dead_count == 1
    # and the raising handler was logged without stopping the rest
    [fields] = [f for lvl, event, f in log.records if event == "death handler failed"]
    assert "handler bug" in fields["error"]


def test_a_poison_pill_releases_its_unique_lock(config, r, log):
    # Given the unique-jobs middleware installed and a unique job pushed, holding its lock,
    # whose worker died under it twice before
    install_unique(config)
    jid = unique_jobs.Exhausted.perform_async(7)
    lock = KEYS.unique(digest("UniqueExhausted", "default", [7]))
    assert r.get(lock) == jid.encode()
    queued = decode(r.rpop(KEYS.queue("default")))
    now = now_ms()
    queued["recovered_at"] = [now - 2 * HOUR_MS, now - 1 * HOUR_MS]
    died_holding(r, DEAD, {"default": [encode(queued)]})

    # When its worker dies a third time and the process is recovered
    assert make_recovery(config, r, log).check() == 0

    # Then it is in the dead set, and a copy can be pushed at once
    assert [decode(m)["jid"] for m in r.zrange("dead", 0, -1)] == [jid]
    assert not r.exists(lock)
    assert unique_jobs.Exhausted.perform_async(7)


def test_recoveries_older_than_the_window_do_not_count(config, r, log):
    now = now_ms()
    old = job(recovered_at=[now - 80 * HOUR_MS, now - 73 * HOUR_MS])
    mixed = job(recovered_at=[now - 100 * HOUR_MS, now - 5 * HOUR_MS])
    died_holding(r, DEAD, {"default": [old, mixed]})

    assert make_recovery(config, r, log).check() == 2

    assert r.zcard("dead") == 0
    by_jid = {j["jid"]: j for j in map(decode, r.lrange(KEYS.queue("default"), 0, -1))}
    assert len(by_jid[decode(old)["jid"]]["recovered_at"]) == 1  # old entries are dropped
    assert len(by_jid[decode(mixed)["jid"]]["recovered_at"]) == 2


def test_the_poison_pill_count_is_configurable(config, r, log):
    died_holding(r, DEAD, {"default": [job()]})
    assert make_recovery(config, r, log, poison_pill_recoveries=1).check() == 0
    assert r.zcard("dead") == 1 and r.llen(KEYS.queue("default")) == 0


def test_a_recovered_at_that_is_not_a_list_is_ignored(config, r, log):
    odd = job(recovered_at=1712000000000)
    died_holding(r, DEAD, {"default": [odd]})
    assert make_recovery(config, r, log).check() == 1
    [payload] = r.lrange(KEYS.queue("default"), 0, -1)
    assert len(decode(payload)["recovered_at"]) == 1


def test_a_malformed_payload_in_flight_goes_to_dead_and_the_rest_is_recovered(config, r, log):
    good = [job(), job()]
    died_holding(r, DEAD, {"default": [good[0], b"\xc1 garbage", good[1]]})

    assert make_recovery(config, r, log).check() == 2

    assert taken_order(r) == jids(good)
    [dead] = [decode(m) for m in r.zrange("dead", 0, -1)]
    assert dead["class"] == MALFORMED_CLASS and dead["queue"] == "default"
    assert "msgpack" in dead["error_message"]
    assert inflight_keys(r) == []


# -- who recovers, and when ---------------------------------------------------------------------
def test_a_live_process_lists_are_never_touched(config, r, log):
    live = "otherhost:7:000000000007"
    held = [job(), job()]
    died_holding(r, live, {"default": held})
    r.hset(KEYS.process(live), "beat", time.time())  # its heartbeat hash is there

    assert make_recovery(config, r, log).check() == 0

    assert r.lrange(KEYS.inflight(live, "default"), 0, -1) == list(reversed(held))
    assert r.hexists(KEYS.inflight_owners, live)
    assert r.llen(KEYS.queue("default")) == 0


def test_recover_leaves_alone_a_process_whose_heartbeat_came_back(config, r, log):
    # Between noticing a process is dead and moving its jobs, it may beat again (it was only
    # stalled); then its jobs are its own again.
    held = [job(), job()]
    died_holding(r, DEAD, {"default": held})
    r.hset(KEYS.process(DEAD), "beat", time.time())

    assert make_recovery(config, r, log).recover(DEAD, ["default"]) == 0

    assert r.lrange(KEYS.inflight(DEAD, "default"), 0, -1) == list(reversed(held))
    assert r.hexists(KEYS.inflight_owners, DEAD)
    assert r.sismember(KEYS.processes, DEAD)


def test_a_process_never_recovers_itself(config, r, log):
    died_holding(r, ME, {"default": [job()]})  # its own hash has expired (a long pause)
    assert make_recovery(config, r, log).check() == 0
    assert r.llen(KEYS.inflight(ME, "default")) == 1


def test_nothing_is_recovered_while_another_process_holds_the_lock(config, r, log):
    died_holding(r, DEAD, {"default": [job()]})
    r.set(KEYS.recovery_lock, "someone else", px=30_000)
    assert make_recovery(config, r, log).check() == 0
    assert r.llen(KEYS.inflight(DEAD, "default")) == 1
    assert r.get(KEYS.recovery_lock) == b"someone else"  # not released by us


def test_a_lock_left_by_a_recoverer_that_died_expires(config, r, log):
    died_holding(r, DEAD, {"default": [job()]})
    r.set(KEYS.recovery_lock, "a recoverer that was killed", px=300)
    recovery = make_recovery(config, r, log)
    assert recovery.check() == 0
    wait_for(lambda: recovery.check() == 1, timeout=5, message="recovery after the lock expired")


def test_nothing_is_recovered_right_after_an_outage(config, r, log):
    # Right after Redis comes back, live processes have not re-written their expired hashes
    # yet; they must not be taken for dead ones.
    died_holding(r, DEAD, {"default": [job()]})
    outage = Outage(config.redis_url, log)
    outage.failed(redis.ConnectionError("gone"), "test")
    recovery = make_recovery(config, r, log, outage=outage, heartbeat_interval=0.2)

    assert recovery.check() == 0  # Redis still counted as down
    outage.ok()
    assert recovery.check() == 0  # back, but not for two heartbeats yet
    assert r.llen(KEYS.inflight(DEAD, "default")) == 1

    wait_for(lambda: recovery.check() == 1, timeout=5, message="recovery once settled")
    assert r.llen(KEYS.queue("default")) == 1


@pytest.mark.parametrize("entry", ["check", "recover"])
def test_two_concurrent_recoverers_push_each_job_exactly_once(config, r, log, redis_url, entry):
    # Given a dead process holding 600 jobs on three queues, and two live processes that both
    # notice at the same instant
    held = {q: [job(q) for _ in range(200)] for q in ("default", "mail", "low")}
    died_holding(r, DEAD, held)
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    recoveries = [make_recovery(config, c, RecordingLog(), identity=f"live:{n}:{n:012x}")
                  for n, c in enumerate(clients)]
    start = threading.Barrier(2)
    results, errors = [0, 0], []

    def recover(n):
        try:
            start.wait()
            if entry == "check":
                results[n] = recoveries[n].check()
            else:
                results[n] = recoveries[n].recover(DEAD, sorted(held))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=recover, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # Then every job is back in its queue once
    assert errors == []
    assert sum(results) == 600
    for queue, payloads in held.items():
        assert taken_order(r, queue) == jids(payloads)
    assert inflight_keys(r) == []
    for client in clients:
        client.close()


# -- end to end ---------------------------------------------------------------------------------
def test_a_job_of_a_killed_worker_runs_again_on_another_worker(config, r, redis_url):
    # Given a worker in the middle of a long job (fast heartbeat: its hash lives 2 s)
    app_jobs.SleepFirst.perform_async("k9", 60)
    app_jobs.Record.perform_async("after")
    with WorkerProcess(redis_url, "-c", "1") as first:
        wait_for(lambda: r.get("test:starts:k9") == b"1", message="the long job to start")
        identity = r.smembers(KEYS.processes).pop().decode()
        assert inflight_keys(r) == [KEYS.inflight(identity, "default")]
        # When it is killed with SIGKILL
        first.kill9()
    assert first.process.returncode == -signal.SIGKILL

    # Then another worker recovers the job and runs it to the end, and nothing stays in-flight
    started = time.monotonic()
    with WorkerProcess(redis_url) as second:
        wait_for(lambda: r.get("test:finished:k9"), timeout=20, message="the job to run again")
        assert time.monotonic() - started < 15
        wait_for(lambda: r.llen("test:ran") == 1, message="the job behind it")
        assert int(r.get("test:starts:k9")) == 2
        assert int(r.get("test:finished:k9")) == second.pid != first.pid
        wait_for(lambda: inflight_keys(r) == [], message="acks of the recovered job")
        assert not r.hexists(KEYS.inflight_owners, identity)
        assert "recovered jobs of a dead process" in second.log()
        second.terminate()
        assert second.wait() == 0
    assert inflight_keys(r) == []
    assert r.llen(KEYS.queue("default")) == 0
