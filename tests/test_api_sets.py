"""kiqpy.api: ScheduledSet, RetrySet and DeadSet, their entries, and the moves between sets
and queues (atomic: a member moved by someone else is not duplicated)."""

from __future__ import annotations

import base64
import datetime as _dt
import threading
import time

import pytest
import redis

import kiqpy
from kiqpy.api import DeadSet, Queue, RetrySet, ScheduledSet, SortedEntry
from kiqpy.config import Config
from kiqpy.errors import PayloadError
from kiqpy.failures import MALFORMED_CLASS
from kiqpy.keys import Keys
from kiqpy.payload import decode, encode, new_jid, now_ms
from kiqpy.server.outage import Outage
from kiqpy.server.retry import Retrier
from tests.recording import RecordingLog

SETS = [("schedule", ScheduledSet), ("retry", RetrySet), ("dead", DeadSet)]


def job(queue="default", serializer="msgpack", **extra):
    return encode({"class": "Record", "args": [queue], "queue": queue, "jid": new_jid(),
                   "retry": True, "created_at": now_ms(), **extra}, serializer)


def failed_job(retry_count=0, retry=2, **extra):
    return job(retry=retry, retry_count=retry_count, error_class="ValueError",
               error_message="boom", failed_at=now_ms(), **extra)


def queued(r, queue="default"):
    return [decode(p) for p in reversed(r.lrange(f"queue:{queue}", 0, -1))]


# -- reading -------------------------------------------------------------------------------------
@pytest.mark.parametrize("key, cls", SETS)
def test_a_set_iterates_newest_first_by_default_and_oldest_first_on_request(config, r, key,
                                                                           cls):
    members = {job(): 1000.0 + i for i in range(7)}
    r.zadd(key, members)
    by_score = sorted(members, key=members.get)
    jobset = cls()

    assert (jobset.size, len(jobset)) == (7, 7)
    assert [e.value for e in jobset] == by_score[::-1]
    assert [e.value for e in jobset.each(newest_first=False, chunk=3)] == by_score
    assert [e.score for e in jobset.each(chunk=2)] == sorted(members.values(), reverse=True)
    entry = next(iter(jobset))
    assert isinstance(entry, SortedEntry)
    assert entry.at == _dt.datetime.fromtimestamp(1006.0, _dt.timezone.utc)


def test_iteration_over_entries_sharing_a_score_yields_each_once(config, r):
    # perform_bulk with an `at` gives a whole batch the same score
    members = {job(): 1234.5 for _ in range(25)} | {job(): 1000.0, job(): 2000.0}
    r.zadd("schedule", members)
    for newest_first in (True, False):
        values = [e.value for e in ScheduledSet().each(newest_first=newest_first, chunk=4)]
        assert sorted(values) == sorted(members) and len(values) == 27


def test_iteration_survives_entries_moved_out_meanwhile(config, r):
    members = {job(): 1000.0 + i // 3 for i in range(30)}  # groups of 3 sharing a score
    r.zadd("retry", members)
    seen = []
    for entry in RetrySet().each(newest_first=False, chunk=4):
        seen.append(entry.value)
        r.zpopmin("retry")  # the scheduler moves the earliest entry meanwhile
    assert sorted(seen) == sorted(members)  # each is seen once (the pops took seen ones)


def test_pages_come_with_the_total(config, r):
    members = {job(): float(i) for i in range(12)}
    r.zadd("dead", members)
    newest = sorted(members, key=members.get, reverse=True)
    dead = DeadSet()

    first, last = dead.page(1, 5), dead.page(3, 5)

    assert [e.value for e in first] == newest[:5]
    assert [e.value for e in last] == newest[10:]
    assert (first.total, first.pages, last.has_next, dead.page(4, 5).entries) == (12, 3, False,
                                                                                  [])
    assert [e.value for e in dead.page(1, 5, newest_first=False)] == newest[::-1][:5]
    with pytest.raises(ValueError, match="page numbers start at 1"):
        dead.page(0)


def test_find_job_scan_and_fetch(config, r):
    target = job(args=["needle*[x]?"])
    jid = decode(target)["jid"]
    r.zadd("retry", {target: 50.0, job(): 50.0, job(): 60.0})
    retries = RetrySet()

    assert retries.find_job(jid).value == target
    assert retries.find_job(new_jid()) is None
    # Glob specials in the text are matched literally.
    assert [e.jid for e in retries.scan("needle*[x]?")] == [jid]
    assert list(retries.scan("needle*[y]?")) == []
    assert len(list(retries.scan("Record"))) == 3
    assert {e.jid for e in retries.fetch(50.0)} >= {jid} and len(retries.fetch(50.0)) == 2
    assert [e.jid for e in retries.fetch(50.0, jid)] == [jid]
    assert retries.fetch(51.0) == []


# -- deleting ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key, cls", SETS)
def test_entries_are_deleted_one_by_one_or_all_at_once(config, r, key, cls):
    one, two, three = job(), job(), job()
    r.zadd(key, {one: 1.0, two: 2.0, three: 3.0})
    jobset = cls()

    entry = jobset.find_job(decode(one)["jid"])
    assert entry.delete() is True and entry.delete() is False
    assert jobset.delete_by_value(two) is True and jobset.delete_by_value(two) is False
    assert jobset.delete_by_jid(3.0, decode(three)["jid"]) is True
    assert jobset.size == 0
    r.zadd(key, {one: 1.0, two: 2.0})
    assert jobset.clear() == 2 and not r.exists(key)
    r.zadd(key, {one: 1.0})
    assert jobset.delete_all() == 1


# -- moving one entry ----------------------------------------------------------------------------
def test_add_to_queue_queues_a_scheduled_job_now(config, r):
    payload = job("mail", at=time.time() + 3600)
    r.zadd("schedule", {payload: time.time() + 3600})
    entry = next(iter(ScheduledSet()))

    assert entry.add_to_queue() is True
    assert entry.add_to_queue() is False  # already moved: not queued twice

    [moved] = queued(r, "mail")
    assert moved["jid"] == decode(payload)["jid"] and "at" not in moved
    assert abs(moved["enqueued_at"] - now_ms()) < 5000
    assert r.smembers("queues") == {b"mail"} and r.zcard("schedule") == 0
    assert 0 <= Queue("mail").latency < 5


@pytest.mark.parametrize("key, cls", [("retry", RetrySet), ("dead", DeadSet)])
def test_retry_queues_the_job_without_using_up_an_attempt(config, r, key, cls):
    r.zadd(key, {failed_job(retry_count=3, retry=5): time.time()})

    assert next(iter(cls())).retry() is True

    [moved] = queued(r)
    # The next failure bumps retry_count again, back to 3: the manual retry is not counted.
    assert moved["retry_count"] == 2
    assert moved["error_message"] == "boom"  # shown until the next failure replaces it
    assert r.zcard(key) == 0


def test_a_manually_retried_job_that_fails_again_keeps_its_remaining_retries(config, r):
    # Given a job with retry=1 that failed once and waits in the retry set: one retry left
    log = RecordingLog()
    retrier = Retrier(config, r, Keys(), Outage(config.redis_url, log), log, threading.Event())
    r.zadd("retry", {failed_job(retry_count=0, retry=1): time.time() + 60})
    # When someone clicks Retry now, and the job fails again
    next(iter(RetrySet())).retry()
    payload = r.rpop("queue:default")
    outcome = retrier.failed("default", decode(payload), ValueError("again"), None, payload)
    # Then it is back in the retry set with its last retry still ahead, not in the dead set
    assert outcome == "retry"
    [(member, _)] = r.zrange("retry", 0, -1, withscores=True)
    assert decode(member)["retry_count"] == 0 and r.zcard("dead") == 0


def test_retry_keeps_a_json_payload_json(config, r):
    r.zadd("retry", {failed_job(retry_count=1, serializer="json"): 1.0})
    next(iter(RetrySet())).retry()
    assert r.lindex("queue:default", 0).startswith(b"{")


def retry_at_once(entries: list[SortedEntry]) -> list[bool]:
    """Call retry() on every entry from its own thread, all released together."""
    barrier = threading.Barrier(len(entries))
    results: list[bool] = []

    def click(entry: SortedEntry) -> None:
        barrier.wait()
        results.append(entry.retry())

    threads = [threading.Thread(target=click, args=(e,)) for e in entries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_retry_from_two_threads_at_once_queues_the_job_once(config, redis_url, r):
    for _ in range(20):
        r.flushall()
        r.zadd("dead", {failed_job(): time.time()})
        clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
        # Two dashboards, each with its own connection, show the same dead job
        entries = [next(iter(DeadSet(config, c))) for c in clients]

        assert sorted(retry_at_once(entries)) == [False, True]
        assert r.llen("queue:default") == 1 and r.zcard("dead") == 0
        for client in clients:
            client.close()


@pytest.mark.parametrize("key, cls", [("schedule", ScheduledSet), ("retry", RetrySet)])
def test_kill_moves_the_entry_to_the_dead_set_once(config, r, key, cls):
    payload = failed_job()
    r.zadd(key, {payload: time.time() + 60})
    entry = next(iter(cls()))

    assert entry.kill() is True and entry.kill() is False

    [(member, score)] = r.zrange("dead", 0, -1, withscores=True)
    assert member == payload and abs(score - time.time()) < 5
    assert r.zcard(key) == 0


def test_kill_trims_the_dead_set_to_its_size_and_age_limits(config, r, redis_url):
    small = Config(redis_url=redis_url, dead_max_jobs=3, dead_timeout=3600.0)
    now = time.time()
    ancient, old, mid, recent = job(), job(), job(), job()
    r.zadd("dead", {ancient: now - 7200, old: now - 30, mid: now - 20, recent: now - 10})
    doomed = failed_job()
    r.zadd("retry", {doomed: now + 60})

    assert next(iter(RetrySet(small))).kill() is True

    # ancient: past dead_timeout; old: the oldest beyond dead_max_jobs
    assert r.zrange("dead", 0, -1) == [mid, recent, doomed]


def test_an_entry_of_the_dead_set_is_not_killed_again(config, r):
    r.zadd("dead", {job(): 5.0})
    assert next(iter(DeadSet())).kill() is False
    assert r.zscore("dead", r.zrange("dead", 0, 0)[0]) == 5.0


def test_reschedule_moves_the_score(config, r):
    r.zadd("schedule", {job(): 100.0})
    entry = next(iter(ScheduledSet()))

    assert entry.reschedule(200.5) is True
    assert entry.score == 200.5 and r.zscore("schedule", entry.value) == 200.5
    when = _dt.datetime(2030, 1, 2, tzinfo=_dt.timezone.utc)
    assert entry.reschedule(when) is True and entry.at == when
    assert entry.reschedule(_dt.timedelta(hours=1)) is True
    assert abs(entry.score - (time.time() + 3600)) < 5
    entry.delete()
    assert entry.reschedule(300.0) is False and r.zcard("schedule") == 0
    with pytest.raises(TypeError):
        entry.reschedule("tomorrow")  # type: ignore[arg-type]


# -- moving every entry --------------------------------------------------------------------------
def test_retry_all_queues_every_job_even_past_one_batch_and_with_shared_scores(config, r):
    members = {failed_job(retry_count=1): 500.0 for _ in range(250)}
    r.zadd("retry", members)
    r.zadd("retry", {b"\xc1 not a job": 400.0})

    assert RetrySet().retry_all() == 250

    assert r.llen("queue:default") == 250
    assert {j["retry_count"] for j in queued(r)} == {0}
    assert r.zrange("retry", 0, -1) == [b"\xc1 not a job"]  # left for someone to delete


def test_retry_all_of_the_scheduled_set_adds_them_to_their_queues_unchanged(config, r):
    r.zadd("schedule", {job("mail", retry_count=4): 1.0, job("default"): 2.0})
    assert ScheduledSet().retry_all() == 2
    assert queued(r, "mail")[0]["retry_count"] == 4 and r.llen("queue:default") == 1


def test_kill_all_moves_everything_to_the_dead_set_and_trims_it(config, r, redis_url):
    small = Config(redis_url=redis_url, dead_max_jobs=5)
    r.zadd("schedule", {job(): float(i) for i in range(8)})

    assert ScheduledSet(small).kill_all() == 8
    assert r.zcard("schedule") == 0 and r.zcard("dead") == 5
    assert DeadSet(small).kill_all() == 0 and r.zcard("dead") == 5


# -- malformed entries ---------------------------------------------------------------------------
@pytest.mark.parametrize("key, cls", SETS)
def test_a_malformed_member_is_listed_with_its_error_and_can_be_deleted(config, r, key, cls):
    r.zadd(key, {b"\xc1\xc1garbage": 10.0, b"[1,2,3]": 11.0, job(): 12.0})
    jobset = cls()

    entries = list(jobset)
    bad = [e for e in entries if e.error]

    assert len(entries) == 3 and len(bad) == 2
    assert all(e.malformed and e.display_class == "(malformed payload)" for e in bad)
    assert [e.error for e in jobset.page(1, 10).entries if e.error]
    for entry in bad:
        with pytest.raises(PayloadError, match="cannot be queued"):
            entry.retry()
        with pytest.raises(PayloadError):
            entry.add_to_queue()
        assert entry.delete() is True
    assert jobset.size == 1 and r.llen("queue:default") == 0


def test_killing_a_malformed_member_keeps_its_bytes_in_the_dead_set(config, r):
    r.zadd("retry", {b"\xc1garbage": 10.0})

    assert next(iter(RetrySet())).kill() is True

    [entry] = DeadSet()
    assert entry.klass == MALFORMED_CLASS and entry.malformed and entry.error is None
    assert base64.b64decode(entry.get("original_payload")) == b"\xc1garbage"
    assert "retry" in entry.error_message
    with pytest.raises(PayloadError, match="not a job"):
        entry.retry()  # it stands for bytes that are not a job: delete it instead


def test_kill_all_sends_malformed_members_to_the_dead_set_too(config, r):
    r.zadd("schedule", {b"\xc1": 1.0, job(): 2.0})
    assert ScheduledSet().kill_all() == 2
    assert sorted(e.klass for e in DeadSet()) == sorted([MALFORMED_CLASS, "Record"])


# -- configuration -------------------------------------------------------------------------------
def test_namespaced_sets_use_their_own_keys(config, r, redis_url):
    ns = Config(redis_url=redis_url, namespace="app")
    client = kiqpy.Client(ns)
    jid = client.enqueue("Record", ["later"], {}, at=time.time() + 60)
    kiqpy.enqueue("Record", "plain", delay=60)

    scheduled = ScheduledSet(ns)

    assert scheduled.size == 1 and scheduled.key == "app:schedule"
    assert scheduled.find_job(jid).add_to_queue() is True
    assert r.llen("app:queue:default") == 1 and r.smembers("app:queues") == {b"default"}
    assert ScheduledSet().size == 1 and not r.exists("queue:default")
    r.zadd("app:retry", {failed_job(): 1.0})
    assert RetrySet(ns).kill_all() == 1 and r.zcard("app:dead") == 1
    client.close()


# -- bounded reads (JobSet.search, JobSet.page_of) -----------------------------------------------
def test_search_stops_at_its_budget_and_continues_where_it_stopped(config, r):
    for n in range(30):
        r.zadd("retry", {job(tag=f"{'needle' if n % 3 == 0 else 'hay'}-{n}"): 1000 + n})
    retries = RetrySet()

    first = retries.search("needle", newest_first=False, max_entries=12)
    rest = retries.search("needle", first.next_start, newest_first=False)

    assert (first.scanned, first.next_start, len(first.entries)) == (12, 12, 4)
    assert rest.exhausted and len(rest.entries) == 6
    assert [e.score for e in first.entries + rest.entries] == [1000.0 + n for n in range(0, 30, 3)]


def test_search_at_a_score_reads_only_that_score_even_inf(config, r):
    r.zadd("retry", {job(): 5, job(): 7, job(): 7, job(): float("inf")})
    retries = RetrySet()

    at_seven = retries.search(lambda value: True, score=7, limit=10)
    at_inf = retries.search(lambda value: True, score=float("inf"), limit=10)

    assert [e.score for e in at_seven.entries] == [7.0, 7.0] and at_seven.exhausted
    assert [e.score for e in at_inf.entries] == [float("inf")]


def test_page_of_keeps_what_the_caller_keeps(config, r):
    for n in range(7):
        r.zadd("dead", {job(): n})

    page = DeadSet().page_of(lambda entry: entry.score, 2, 3)

    assert (page.entries, page.total, page.pages) == ([3.0, 2.0, 1.0], 7, 3)
