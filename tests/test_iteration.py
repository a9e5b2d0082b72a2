"""Iterable jobs in real workers: TERM mid-way resumes from the cursor with no item twice;
kill -9 resumes from the last save; a failing iteration resumes after the last finished one;
the runtime limit hands the job back; cancel stops it; and the enumerator helpers."""

from __future__ import annotations

import signal

import pytest

import kiqpy
import kiqpy.api
from kiqpy.client.iteration import (
    batch_enumerator,
    keyset_enumerator,
    list_enumerator,
    range_enumerator,
)
from tests.conftest import wait_for
from tests.workers import WorkerProcess

SLOW = {"KIQPY_TEST_ITEM_SECONDS": "0.01"}


def items(r) -> list[int]:
    return [int(i) for i in r.lrange("test:items", 0, -1)]


def callbacks(r) -> list[str]:
    return [c.decode() for c in r.lrange("test:callbacks", 0, -1)]


def test_enumerators_resume_after_their_cursor():
    assert list(range_enumerator(0, 3)) == [(0, 0), (1, 1), (2, 2)]
    assert list(range_enumerator(0, 3, cursor=1)) == [(2, 2)]
    assert list(list_enumerator(["a", "b", "c"], cursor=0)) == [("b", 1), ("c", 2)]
    assert list(batch_enumerator(list(range(5)), 2, cursor=0)) == [([2, 3], 2), ([4], 4)]
    rows = list(range(1, 8))
    pages = lambda after: [n for n in rows if n > (after or 0)][:3]  # noqa: E731
    assert [c for _, c in keyset_enumerator(pages, key=lambda n: n, cursor=4)] == [5, 6, 7]


@pytest.mark.slow
def test_term_mid_way_resumes_from_the_cursor_with_no_item_twice(config, r, redis_url):
    jid = kiqpy.enqueue("iteration.Export", 1000)
    with WorkerProcess(redis_url, "--heartbeat-interval", "0.2", require="tests.app_iteration",
                       env=SLOW) as first:
        wait_for(lambda: len(items(r)) >= 100, timeout=30, message="100 items")
        # Busy (and kiqpy.api.iteration_progress) show how far it got
        from tests.web_helpers import client_for, text

        wait_for(lambda: "iterations, cursor" in text(client_for(config).get("/busy")),
                 message="the progress on Busy")
        done, cursor = kiqpy.api.iteration_progress([jid])[jid]
        assert done >= 100 and cursor == done - 1
        first.signal(signal.SIGTERM)
        assert first.wait(30) == 0
    stopped_at = len(items(r))
    assert stopped_at < 1000 and r.llen("queue:default") == 1  # requeued, not acked
    with WorkerProcess(redis_url, require="tests.app_iteration"):
        wait_for(lambda: "complete" in callbacks(r), timeout=60, message="the rest")
    assert items(r) == list(range(1000))  # each item once, in order
    assert callbacks(r) == ["start", "stop", "resume", "complete"]


@pytest.mark.slow
def test_kill_9_resumes_from_the_last_save_and_completes_once(config, r, redis_url):
    kiqpy.enqueue("iteration.Export", 1000)
    with WorkerProcess(redis_url, "--process-ttl", "1", "--heartbeat-interval", "0.2",
                       require="tests.app_iteration", env=SLOW) as victim:
        wait_for(lambda: len(items(r)) >= 100, timeout=30, message="100 items")
        victim.kill9()
    seen_before = len(items(r))
    with WorkerProcess(redis_url, "--heartbeat-interval", "0.2", "--process-ttl", "1",
                       require="tests.app_iteration"):
        wait_for(lambda: "complete" in callbacks(r), timeout=60,
                 message="recovery and the rest")
    done = items(r)
    assert set(done) == set(range(1000))  # every item at least once
    repeated = len(done) - 1000
    assert repeated < seen_before  # resumed from the cursor, not from 0
    assert callbacks(r).count("complete") == 1 and callbacks(r)[-2:] == ["resume", "complete"]


@pytest.mark.slow
def test_a_failing_iteration_retries_from_the_last_finished_one(config, r, redis_url):
    kiqpy.enqueue("iteration.Export", 50, 20)
    with WorkerProcess(redis_url, require="tests.app_iteration"):
        wait_for(lambda: r.zcard("retry") == 1, message="the failure")
        r.zadd("retry", {r.zrange("retry", 0, 0)[0]: 0})  # due now
        wait_for(lambda: "complete" in callbacks(r), timeout=30, message="the retry")
    assert items(r) == list(range(50))


@pytest.mark.slow
def test_the_runtime_limit_hands_the_job_back_and_cancel_stops_it(config, r, redis_url):
    jid = kiqpy.enqueue("iteration.ShortTurns", 100_000)
    with WorkerProcess(redis_url, "--heartbeat-interval", "0.2", require="tests.app_iteration",
                       env=SLOW):
        wait_for(lambda: callbacks(r).count("resume") >= 2, timeout=30,
                 message="two turns handed back")
        wait_for(lambda: any(w.job.jid == jid for _, _, w in kiqpy.api.WorkSet()),
                 message="the job running")
        result = kiqpy.api.cancel(jid)
        # Running: it stops at its next iteration; handed back meanwhile: removed from the queue
        assert result.where in ("running", "queue:default"), result
        if result.where == "running":
            wait_for(lambda: "cancel" in callbacks(r), timeout=30, message="the cancel")
        wait_for(lambda: r.llen("queue:default") == 0 and not any(
            r.llen(k) for k in r.keys("*:inflight:*")), message="the job gone")
    assert r.zcard("retry") == r.zcard("dead") == 0
    done = items(r)
    assert len(done) == len(set(done))  # no item twice across the turns
