"""Batches, workflows and results (kiqpy/client/batch.py, workflow.py, results.py,
kiqpy/server/batches.py), with real worker processes running tests/app_batches.py."""

from __future__ import annotations

import json
import signal
import threading

import pytest
import redis

import kiqpy
from kiqpy.api import BatchSet, BatchStatus
from tests import app_batches as app
from tests.conftest import wait_for
from tests.workers import WorkerProcess

APP = "tests.app_batches"


def worker(redis_url: str, *args: str) -> WorkerProcess:
    return WorkerProcess(redis_url, *args, require=APP)


def callbacks(r: redis.Redis, bid: str | None = None) -> list[dict]:
    entries = [json.loads(x) for x in r.lrange("test:callbacks", 0, -1)]
    return [e for e in entries if bid is None or e["bid"] == bid]


def events(r: redis.Redis, bid: str) -> list[str]:
    return [e["event"] for e in callbacks(r, bid)]


def both(r: redis.Redis, bid: str) -> bool:
    """Both complete and success callbacks have run."""
    return {"complete", "success"} <= set(events(r, bid))


def new_batch(description: str = "test") -> kiqpy.Batch:
    batch = kiqpy.Batch(description=description)
    for event in ("complete", "success", "death"):
        batch.on(event, app.Callback, {"e": event})
    return batch


def stop(process: WorkerProcess) -> None:
    process.terminate()
    assert process.process.wait(30) == 0, process.log()[-3000:]


# -- batches --------------------------------------------------------------------------------
def test_1000_jobs_with_10_failing_once_complete_then_succeed_once(config, r, redis_url):
    # Given a batch of 1,000 rows, 10 of which fail their first run (and retry at once)
    r.sadd("test:fail-once", *range(0, 1000, 100))
    batch = new_batch("import")
    with batch.jobs():
        app.Row.perform_bulk([[n] for n in range(1000)])
    status = BatchStatus(batch.bid)
    assert (status.total, status.pending, status.complete) == (1000, 1000, False)
    # When a worker runs them
    with worker(redis_url, "-c", "10") as w:
        wait_for(lambda: both(r, batch.bid), 60,
                 message="success callback")
        stop(w)
    # Then complete fired once, after every job ran once, success once after the retries,
    # and death never
    assert sorted(events(r, batch.bid)) == ["complete", "success"]
    complete, success = sorted(callbacks(r, batch.bid), key=lambda e: e["event"])
    assert complete["ran"] + complete["failures"] >= 1000
    assert success["ran"] == 1000 and success["pending"] == 0
    assert complete["options"] == {"e": "complete"}
    status.reload()
    assert (status.pending, status.failures, status.complete, status.success) == (0, 0, True,
                                                                                  True)


def test_a_job_that_dies_fires_death_and_complete_once_and_never_success(config, r,
                                                                          redis_url):
    batch = new_batch()
    with batch.jobs():
        app.Row.perform_bulk([[n] for n in range(20)])
        dying = app.Dies.perform_async()
    with worker(redis_url, "-c", "5") as w:
        wait_for(lambda: {"complete", "death"} <= set(events(r, batch.bid)), 30,
                 message="complete and death")
        wait_for(lambda: r.llen("queue:default") == 0, 10)
        stop(w)
    assert sorted(events(r, batch.bid)) == ["complete", "death"]
    status = BatchStatus(batch.bid)
    assert (status.pending, status.failures, status.success) == (1, 1, False)
    [failure] = status.failure_info
    assert (failure.jid, failure.job_class, failure.error_class, failure.dead) == (
        dying, "Dies", "RuntimeError", True)
    assert failure.error_message == "this job dies"


def test_jobs_added_from_inside_a_job_and_a_nested_batch_hold_the_parent(config, r,
                                                                          redis_url):
    # Given a batch whose jobs add rows to it and create a child batch of slow rows
    batch = new_batch()
    with batch.jobs():
        app.Adder.perform_async(1000, 30)
        app.Nester.perform_async(2000, 20)
        app.Row.perform_bulk([[n] for n in range(10)])
    with worker(redis_url, "-c", "5") as w:
        wait_for(lambda: len(callbacks(r)) == 4, 60, message="parent and child callbacks")
        stop(w)
    child = r.get("test:child").decode()
    # Then the parent waited for every added job and for the child batch's jobs
    assert sorted(events(r, child)) == ["complete", "success"]
    assert sorted(events(r, batch.bid)) == ["complete", "success"]
    [success] = [e for e in callbacks(r, batch.bid) if e["event"] == "success"]
    assert success["ran"] == 10 + 30 + 1 + 20 + 1
    parent = BatchStatus(batch.bid)
    assert parent.total == 1 + 1 + 10 + 30 + 1  # Adder, Nester, rows, added rows, the child
    assert BatchStatus(child).parent_bid == batch.bid


def test_kill_9_of_a_worker_in_the_middle_of_a_batch(config, r, redis_url):
    batch = new_batch()
    with batch.jobs():
        app.Row.perform_bulk([[n, 0.02] for n in range(200)])
    with worker(redis_url, "-c", "5") as victim, worker(redis_url, "-c", "5") as survivor:
        wait_for(lambda: int(r.get("test:ran") or 0) >= 40, 30, message="40 rows")
        victim.kill9()
        wait_for(lambda: both(r, batch.bid), 60, message="success")
        stop(survivor)
    assert sorted(events(r, batch.bid)) == ["complete", "success"]
    assert r.scard("test:rows") == 200


def test_three_processes_finishing_the_last_jobs_together_fire_each_callback_once(
        config, r, redis_url):
    rounds, size = 12, 6
    # No prefetch: a process holds no more jobs than it runs, so the gated jobs spread out
    three = ("-c", "3", "--prefetch", "0")
    with worker(redis_url, *three) as w1, worker(redis_url, *three) as w2, \
            worker(redis_url, *three) as w3:
        bids = []
        for index in range(rounds):
            # Every job of the batch waits at a gate; opening it lets them all finish at once
            gate = f"test:gate:{index}"
            batch = new_batch()
            with batch.jobs():
                app.Gated.perform_bulk([[gate] for _ in range(size)])
            wait_for(lambda g=gate: int(r.get(f"{g}:waiting") or 0) == size, 30,
                     message="all jobs at the gate")
            r.rpush(gate, *["go"] * size)
            wait_for(lambda b=batch.bid: both(r, b), 30, message="success")
            bids.append(batch.bid)
        for process in (w1, w2, w3):
            stop(process)
        pids = {int(p) for p in r.smembers("test:gated-pids")}
    assert len(pids) >= 2  # the last jobs really ran in several processes
    for bid in bids:
        assert sorted(events(r, bid)) == ["complete", "success"], bid


def test_a_batch_cannot_complete_while_its_jobs_block_is_open(config, r, redis_url):
    batch = new_batch()
    with worker(redis_url, "-c", "5") as w:
        with batch.jobs():
            app.Row.perform_async(1)
            wait_for(lambda: BatchStatus(batch.bid).pending == 0, 20, message="row 1 done")
            assert events(r, batch.bid) == []
            app.Row.perform_async(2)
        wait_for(lambda: both(r, batch.bid), 20, message="success")
        stop(w)
    assert sorted(events(r, batch.bid)) == ["complete", "success"]


def test_batch_api_errors_and_listing(config, r):
    with pytest.raises(kiqpy.WorkflowError, match="unknown event 'done'"):
        kiqpy.Batch().on("done", app.Callback)
    with pytest.raises(kiqpy.ArgumentError, match="callback must be"):
        kiqpy.Batch().on("success", 42)
    with pytest.raises(kiqpy.WorkflowError, match="does not exist"), \
            kiqpy.Batch("nope").jobs():
        pass
    batch = kiqpy.Batch(description="listed")
    with batch.jobs():
        jid = app.Row.perform_async(1)
    assert [b.bid for b in BatchSet()] == [batch.bid]
    status = BatchStatus(batch.bid)
    assert (status.description, status.total, status.pending) == ("listed", 1, 1)
    assert r.ttl(f"kiqpy:batch:{{b-{batch.bid}}}") > 29 * 86400
    job = json.loads(json.dumps(__import__("tests.conftest").conftest.queued_jobs(r)[0]))
    assert (job["jid"], job["bid"]) == (jid, batch.bid)


def test_pushes_outside_the_block_do_not_join(config, r):
    batch = kiqpy.Batch()
    with batch.jobs():
        pass
    app.Row.perform_async(1)
    from tests.conftest import queued_jobs

    assert "bid" not in queued_jobs(r)[0]


# -- workflows ------------------------------------------------------------------------------
def test_a_5_step_dag_with_a_failing_branch(config, r, redis_url):
    # extract -> clean -> report; extract -> archive (dies) -> notify (cancelled)
    wf = kiqpy.Workflow("nightly")
    wf.add("extract", app.Step, args=["extract"])
    wf.add("clean", app.Step, args=["clean"], deps=["extract"])
    wf.add("report", app.Step, args=["report"], deps=["clean"])
    wf.add("archive", app.Dies, deps=["extract"])
    wf.add("notify", app.Step, args=["notify"], deps=["archive"])
    wf.add("cleanup", app.Step, args=["cleanup"], deps=["archive", "clean"],
           ignore_failure=True)
    wf.on("complete", app.Callback).on("death", app.Callback).on("success", app.Callback)
    wf.run()
    with worker(redis_url, "-c", "4") as w:
        wait_for(lambda: "complete" in events(r, wf.bid), 30, message="complete")
        wait_for(lambda: r.llen("queue:default") == 0, 10)
        stop(w)
    steps = [s.decode() for s in r.lrange("test:steps", 0, -1)]
    assert sorted(steps) == ["clean", "cleanup", "extract", "report"]
    assert steps.index("extract") < steps.index("clean") < steps.index("report")
    status = BatchStatus(wf.bid)
    assert {n: s.state for n, s in status.steps.items()} == {
        "extract": "succeeded", "clean": "succeeded", "report": "succeeded",
        "archive": "dead", "notify": "cancelled", "cleanup": "succeeded"}
    assert sorted(events(r, wf.bid)) == ["complete", "death"]
    assert status.workflow == "nightly"
    # report read the result of clean, which read extract's
    assert kiqpy.result(wf.jid("clean"), timeout=0) == {
        "name": "clean", "deps": {"extract": {"name": "extract", "deps": {}}}}


def test_chain_runs_in_order_and_group_then_runs_after_all(config, r, redis_url):
    flow = kiqpy.chain(app.Step.s("a"), app.Step.s("b"), app.Step.s("c")).run()
    together = kiqpy.group(app.Answer.s(1), app.Answer.s(2), then=app.Step.s("after")).run()
    with worker(redis_url, "-c", "4") as w:
        wait_for(lambda: BatchStatus(flow.bid).success and BatchStatus(together.bid).success,
                 30, message="both workflows")
        stop(w)
    steps = [s.decode() for s in r.lrange("test:steps", 0, -1)]
    assert [s for s in steps if s in "abc"] == ["a", "b", "c"]
    assert steps.index("after") >= 0
    assert kiqpy.result(together.jid("1.Answer"), timeout=0) == 2


def test_workflow_graph_errors_are_clear(config):
    wf = kiqpy.Workflow("bad")
    wf.add("a", app.Step, args=["a"])
    with pytest.raises(kiqpy.WorkflowError, match="duplicate step name 'a'"):
        wf.add("a", app.Step)
    with pytest.raises(kiqpy.WorkflowError, match="depends on itself"):
        wf.add("b", app.Step, deps=["b"])
    wf.add("c", app.Step, deps=["ghost"])
    with pytest.raises(kiqpy.WorkflowError, match="'c' depends on unknown step 'ghost'"):
        wf.run()
    loop = kiqpy.Workflow("loop")
    loop.add("x", app.Step, deps=["z"]).add("y", app.Step, deps=["x"])
    loop.add("z", app.Step, deps=["y"])
    with pytest.raises(kiqpy.WorkflowError, match="cycle: x -> z -> y -> x"):
        loop.run()
    with pytest.raises(kiqpy.WorkflowError, match="job signatures"):
        kiqpy.chain(app.Step)
    with pytest.raises(kiqpy.ArgumentError):
        app.Step.s(object())


# -- results --------------------------------------------------------------------------------
def test_results_wait_time_out_and_report_failures(config, r, redis_url):
    with pytest.raises(TimeoutError, match=r"within 0\.2 s"):
        kiqpy.result("0" * 24, timeout=0.2)
    slow = app.Answer.perform_async(21, 0.3)
    dies = app.DiesWithResult.perform_async()
    bad = app.BadResult.perform_async()
    with worker(redis_url, "-c", "3") as w:
        assert kiqpy.result(slow, timeout=30) == 42
        with pytest.raises(kiqpy.JobFailed, match="ValueError: no answer") as failed:
            kiqpy.result(dies, timeout=30)
        assert failed.value.error_class == "ValueError"
        with pytest.raises(kiqpy.JobFailed, match="ResultError"):
            kiqpy.result(bad, timeout=30)
        stop(w)
    assert kiqpy.result(slow) == 42  # reading does not take it
    assert 0 < r.ttl(f"kiqpy:result:{{{slow}}}") <= 86400
    assert 0 < r.ttl(f"kiqpy:result:{{{dies}}}") <= 60


def test_result_options_are_checked_when_the_class_is_defined():
    with pytest.raises(kiqpy.OptionsError, match="result_ttl"):
        class Bad(kiqpy.Worker, result_ttl=-1):
            def perform(self): ...
    with pytest.raises(kiqpy.OptionsError, match="store_result"):
        class Bad2(kiqpy.Worker, store_result="yes"):
            def perform(self): ...


_ = signal  # kill -9 goes through WorkerProcess.kill9


def test_callbacks_claimed_by_a_process_that_died_are_delivered_by_the_sweep(config, r,
                                                                             redis_url):
    # Given a batch whose last report claimed its callbacks, and whose reporter then died
    # before pushing them (simulated: the claim is taken and never delivered)
    from kiqpy.client.push import default_client

    client = default_client()
    batch = new_batch()
    batch._open(client, True)
    reply = client.scripts.call(client.scripts.batch_report, client.keys.batch_parts(batch.bid),
                                ["close", "", 60_000])
    assert sorted(reply[8::2]) == [b"cb:complete", b"cb:success"]  # claimed, then "died"
    # A late reporter sees the held entries and marks the batch for the sweep
    again = client.scripts.call(client.scripts.batch_report,
                                client.keys.batch_parts(batch.bid), ["sweep", "", 1])
    assert again[7:] == [2]
    r.hset(f"kiqpy:batch:{{b-{batch.bid}}}:claims", mapping={"cb:complete": 0,
                                                             "cb:success": 0})
    r.zadd("kiqpy:batch-outbox", {batch.bid: 0})  # what deliver() does for held entries
    # When a worker's scheduler sweeps
    with worker(redis_url, "-c", "2") as w:
        wait_for(lambda: len(events(r, batch.bid)) == 2, 20, message="swept callbacks")
        wait_for(lambda: r.zcard("kiqpy:batch-outbox") == 0, 20, message="marker cleared")
        stop(w)
    # Then each callback ran once, and the outbox is empty
    assert sorted(events(r, batch.bid)) == ["complete", "success"]
    assert r.hlen(f"kiqpy:batch:{{b-{batch.bid}}}:outbox") == 0


def test_fake_mode_stamps_the_bid_without_redis():
    import kiqpy.testing

    with kiqpy.testing.fake():
        batch = kiqpy.Batch()
        with batch.jobs():
            app.Row.perform_async(1)
        assert app.Row.jobs[0]["bid"] == batch.bid


def test_reports_racing_on_the_last_jobs_fire_each_callback_once(config, r, redis_url):
    # Given many batches of 6 jobs, and 6 threads (each with its own connection) reporting
    # the 6 successes of one batch at the same instant, 150 times over
    import threading

    from kiqpy.client.batch import report
    from kiqpy.client.push import Client
    from tests.conftest import queued_jobs

    clients = [Client(kiqpy.Config(redis_url=redis_url)) for _ in range(6)]
    for _ in range(150):
        batch = new_batch()
        with batch.jobs():
            jids = app.Row.perform_bulk([[n] for n in range(6)])
        r.delete("queue:default")
        barrier = threading.Barrier(6)

        def finish(client: Client, jid: str, b: str = batch.bid,
                   gate: threading.Barrier = barrier) -> None:
            gate.wait()
            report(client, b, "success", jid)

        threads = [threading.Thread(target=finish, args=(c, j))
                   for c, j in zip(clients, jids, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Then complete and success were each pushed exactly once, and nothing is left over
        pushed = sorted(job["args"][0]["event"] for job in queued_jobs(r))
        assert pushed == ["complete", "success"]
        assert r.hlen(f"kiqpy:batch:{{b-{batch.bid}}}:outbox") == 0


def test_a_job_retried_after_creating_a_child_batch_creates_a_new_one(config, r, redis_url):
    batch = new_batch()
    with batch.jobs():
        app.FlakyNester.perform_async(5000)
    with worker(redis_url, "-c", "3") as w:
        wait_for(lambda: len(callbacks(r)) == 4, 30, message="4 callbacks")
        stop(w)
    first, second = (b.decode() for b in r.lrange("test:flaky-children", 0, -1))
    assert first != second
    assert events(r, first) == ["success"] and events(r, second) == ["success"]
    assert sorted(events(r, batch.bid)) == ["complete", "success"]


def test_a_graceful_stop_mid_batch_reports_and_acks_every_finished_job(config, r, redis_url):
    # Given a worker stopped (TERM) in the middle of a batch
    batch = new_batch()
    with batch.jobs():
        app.Row.perform_bulk([[n, 0.005] for n in range(300)])
    with worker(redis_url, "-c", "10") as first:
        wait_for(lambda: int(r.get("test:ran") or 0) >= 60, 30, message="60 rows")
        stop(first)
    assert '"clean": true' in first.log()
    # When another worker finishes the batch
    with worker(redis_url, "-c", "10") as second:
        wait_for(lambda: both(r, batch.bid), 60, message="complete and success")
        stop(second)
    # Then no finished job ran twice (each was acked after its report), and each callback once
    assert int(r.get("test:ran")) == 300
    assert sorted(events(r, batch.bid)) == ["complete", "success"]


def test_async_jobs_keep_results_and_report_to_their_batch(config, r, redis_url):
    # Given async jobs: one whose result is kept, and 50 in a batch
    answer = app.AsyncAnswer.perform_async(21)
    batch = new_batch("async")
    with batch.jobs():
        app.AsyncRow.perform_bulk([[n] for n in range(50)])
    # When a worker runs them on its event loop
    with worker(redis_url, "-c", "2") as w:
        assert kiqpy.result(answer, timeout=30) == 42
        wait_for(lambda: both(r, batch.bid), timeout=30, message="complete and success")
        stop(w)
    # Then the batch saw every job succeed, each callback once
    assert int(r.get("test:ran")) == 50
    assert sorted(events(r, batch.bid)) == ["complete", "success"]
    assert BatchStatus(batch.bid).pending == 0


def test_a_poison_pill_of_a_batch_is_a_death_of_the_batch(config, r, redis_url):
    from kiqpy.payload import decode, encode, now_ms
    from tests.test_recovery import DEAD, died_holding

    # Given a batch of two jobs, one of which killed its worker twice in the last hour and
    # was held by a third worker that died too
    batch = new_batch("pills")
    with batch.jobs():
        app.Row.perform_async(1)
        app.Row.perform_async(2)
    raw = r.rpop("queue:default")
    pill = decode(raw)
    now = now_ms()
    pill["recovered_at"] = [now - 60_000, now - 30_000]
    died_holding(r, DEAD, {"default": [encode(pill)]})
    # When a worker recovers it (a poison pill: to the dead set) and runs the other job
    with worker(redis_url) as w:
        wait_for(lambda: {"death", "complete"} <= set(events(r, batch.bid)), timeout=30,
                 message="the batch's death and complete callbacks")
        stop(w)
    # Then the batch counted the pill's death, never succeeded, and ran the other job
    assert sorted(events(r, batch.bid)) == ["complete", "death"]
    assert r.zcard("dead") == 1
    assert BatchStatus(batch.bid).failures == 1


def test_a_client_middleware_raising_on_a_callback_leaves_it_for_the_sweep(config, r):
    from kiqpy.keys import Keys
    from kiqpy.log import get_logger
    from kiqpy.server.batches import Outcomes
    from kiqpy.server.outage import Outage

    # Given a worker's outcomes whose client middleware raises on callback pushes
    def refuse(worker, job, queue, redis, next):
        if job.get("batch_callback"):
            raise ValueError("no callbacks today")
        return next()

    cfg = config.replace()
    cfg.client_middleware.add(refuse)
    outcomes = Outcomes(cfg, r, Keys(), Outage(cfg.redis_url, get_logger()), threading.Event(),
                        get_logger())
    batch = new_batch("refused callbacks")
    with batch.jobs():
        jid = app.Row.perform_async(1)
    # When the job's success is reported, Then nothing raises, and the callbacks wait in the
    # batch's outbox for the sweep
    assert outcomes.succeeded({"jid": jid, "bid": batch.bid, "class": "Row"}, None) == "done"
    assert events(r, batch.bid) == []
    assert r.hlen(f"kiqpy:batch:{{b-{batch.bid}}}:outbox") >= 1
    assert r.zscore("kiqpy:batch-outbox", batch.bid) is not None
