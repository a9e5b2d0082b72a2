"""kiqpy.server.retry: what happens to a failed job (retry set, dead set, hooks and handlers).

Most tests drive the real Retrier against the private Redis the way a processor does: push a
job, take its payload off the queue, run it, and hand the failure to ``Retrier.failed``. A few
run the whole thing through a real worker process.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import pytest

import kiqpy
from kiqpy.chain import Chain
from kiqpy.client.execution import execute
from kiqpy.errors import UnknownJobError
from kiqpy.failures import MALFORMED_CLASS, MAX_MESSAGE, decompress_backtrace, error_class
from kiqpy.keys import Keys
from kiqpy.payload import decode, encode, now_ms, serializer_of
from kiqpy.server.fetch import Fetcher
from kiqpy.server.outage import Outage
from kiqpy.server.processor import Processor
from kiqpy.server.retry import Retrier
from tests import app_jobs
from tests.conftest import wait_for
from tests.recording import RecordingLog
from tests.workers import WorkerProcess


# -- job classes used in this module ------------------------------------------------------------
class RetryError(Exception):
    pass


class Boom(kiqpy.Worker, retry=2):
    def perform(self, message="boom"):
        raise RetryError(message)


class Hooked(kiqpy.Worker, retry=1):
    """Records its hooks' calls on the class (reset by the test that uses it)."""

    calls: list = []
    retry_in: object = None

    def perform(self):
        raise ValueError("hooked")

    def kiqpy_retry_in(self, count, exc, job):
        Hooked.calls.append(("retry_in", count, type(exc).__name__, job["jid"]))
        if isinstance(Hooked.retry_in, Exception):
            raise Hooked.retry_in
        return Hooked.retry_in

    def kiqpy_retries_exhausted(self, job, exc):
        Hooked.calls.append(("exhausted", job["jid"], type(exc).__name__))


def level1():
    raise ValueError("at the bottom")


def level2():
    level1()


def level3():
    level2()


class Deep(kiqpy.Worker):
    def perform(self):
        level3()


# -- helpers ------------------------------------------------------------------------------------
@pytest.fixture
def log():
    return RecordingLog()


def make_retrier(config, r, log, **changes):
    cfg = config.replace(**changes) if changes else config
    return Retrier(cfg, r, Keys(), Outage(cfg.redis_url, log), log, threading.Event())


def push(r, cls, *args, **options):
    """Push a job the way a user does and take it off its queue, as a worker would: returns
    the payload exactly as stored."""
    jid = (cls.set(**options) if options else cls).perform_async(*args)
    queue = options.get("queue") or cls.kiqpy_options_resolved.get("queue", "default")
    payload = r.rpop(f"queue:{queue}")
    assert payload is not None and decode(payload)["jid"] == jid
    return payload


def run(retrier, cls, payload):
    """Run the job as a processor does and record its failure; returns (outcome, exception)."""
    job = decode(payload)
    try:
        execute(cls, job, Chain())
    except Exception as exc:
        return retrier.failed(job["queue"], job, exc, cls, payload), exc
    raise AssertionError("the job did not fail")


def retry_entries(r):
    return [(decode(m), s, m) for m, s in r.zrange("retry", 0, -1, withscores=True)]


def dead_entries(r):
    return [(decode(m), s) for m, s in r.zrange("dead", 0, -1, withscores=True)]


def take_retry(r):
    """Pop the only retry entry (as the scheduler would move it): its payload."""
    [(member, _)] = r.zpopmin("retry")
    return member


# -- the first failure --------------------------------------------------------------------------
def test_first_failure_lands_in_retry_with_error_fields_and_backoff_score(config, r, log):
    retrier = make_retrier(config, r, log)
    payload = push(r, Boom, "it broke")
    before = time.time()
    outcome, _ = run(retrier, Boom, payload)
    after = time.time()

    assert outcome == "retry"
    [(job, score, _)] = retry_entries(r)
    assert job["retry_count"] == 0
    assert type(job["failed_at"]) is int
    assert before * 1000 - 1 <= job["failed_at"] <= after * 1000 + 1
    assert "retried_at" not in job
    assert job["error_class"] == "tests.test_retry.RetryError"
    assert job["error_message"] == "it broke"
    assert job["args"] == ["it broke"] and job["queue"] == "default"
    # count**4 + 15 + rand(10 * (count + 1)) with count 0: 15 s plus up to 10 s.
    assert before + 15 <= score < after + 25
    assert r.zcard("dead") == 0


def test_error_class_is_short_for_builtins_and_module_qualified_otherwise():
    assert error_class(ValueError("x")) == "ValueError"
    assert error_class(KeyError("x")) == "KeyError"
    assert error_class(RetryError("x")) == "tests.test_retry.RetryError"
    assert error_class(UnknownJobError("x")) == "kiqpy.errors.UnknownJobError"


def test_error_message_is_truncated_at_ten_thousand_chars(config, r, log):
    retrier = make_retrier(config, r, log)
    run(retrier, Boom, push(r, Boom, "x" * 25_000))
    [(job, _, _)] = retry_entries(r)
    assert job["error_message"] == "x" * MAX_MESSAGE
    assert MAX_MESSAGE == 10_000


def test_second_failure_bumps_retry_count_and_sets_retried_at(config, r, log):
    retrier = make_retrier(config, r, log)
    run(retrier, Boom, push(r, Boom))
    [(first, _, _)] = retry_entries(r)

    before = time.time()
    outcome, _ = run(retrier, Boom, take_retry(r))
    after = time.time()

    assert outcome == "retry"
    [(job, score, _)] = retry_entries(r)
    assert job["retry_count"] == 1
    assert job["failed_at"] == first["failed_at"]
    assert type(job["retried_at"]) is int
    assert before * 1000 - 1 <= job["retried_at"] <= after * 1000 + 1
    assert job["jid"] == first["jid"]
    # count 1: 1 + 15 s plus up to 20 s.
    assert before + 16 <= score < after + 36


# -- running out of retries ---------------------------------------------------------------------
@pytest.fixture
def died(config):
    """Death handler calls, as (jid, exception type)."""
    calls = []
    config.death_handlers.append(lambda job, exc: calls.append((job["jid"], type(exc))))
    return calls


@pytest.fixture
def hooked():
    Hooked.calls, Hooked.retry_in = [], None
    yield Hooked
    Hooked.calls, Hooked.retry_in = [], None


def test_exhausted_job_goes_to_dead_and_the_hooks_and_death_handlers_run(config, r, log, died,
                                                                         hooked):
    # Given a job with retry=1: the first failure is retried, the second is the last.
    retrier = make_retrier(config, r, log)
    payload = push(r, Hooked)
    jid = decode(payload)["jid"]
    assert run(retrier, Hooked, payload)[0] == "retry"
    assert died == [] and [c[0] for c in Hooked.calls] == ["retry_in"]

    before = time.time()
    outcome, _ = run(retrier, Hooked, take_retry(r))

    assert outcome == "dead"
    assert r.zcard("retry") == 0
    [(job, score)] = dead_entries(r)
    assert job["jid"] == jid and job["retry_count"] == 1
    assert job["error_class"] == "ValueError" and job["error_message"] == "hooked"
    assert before <= score <= time.time()
    assert Hooked.calls[-1] == ("exhausted", jid, "ValueError")
    assert died == [(jid, ValueError)]


def test_retry_count_runs_up_to_the_retry_option(config, r, log, died):
    # Boom has retry=2: failures with retry_count 0 and 1 are retried, the third is dead.
    retrier = make_retrier(config, r, log)
    outcomes = [run(retrier, Boom, push(r, Boom))[0]]
    while r.zcard("retry"):
        outcomes.append(run(retrier, Boom, take_retry(r))[0])
    assert outcomes == ["retry", "retry", "dead"]
    assert [job["retry_count"] for job, _ in dead_entries(r)] == [2]


def test_retry_true_uses_max_retries_from_the_config(config, r, log):
    retrier = make_retrier(config, r, log, max_retries=3)
    outcomes = [run(retrier, Boom, push(r, Boom, retry=True))[0]]
    while r.zcard("retry"):
        outcomes.append(run(retrier, Boom, take_retry(r))[0])
    assert outcomes == ["retry"] * 3 + ["dead"]


def test_retry_false_is_neither_retried_nor_dead_but_death_handlers_run(config, r, log, died):
    retrier = make_retrier(config, r, log)
    payload = push(r, Boom, retry=False)
    outcome, _ = run(retrier, Boom, payload)
    assert outcome == "discarded"
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0
    assert died == [(decode(payload)["jid"], RetryError)]


def test_a_retry_false_drop_carries_discarded_at_like_every_discard(config, r, log):
    seen = []
    config.death_handlers.append(lambda job, exc: seen.append(job.get("discarded_at")))
    retrier = make_retrier(config, r, log)
    before = time.time() * 1000
    assert run(retrier, Boom, push(r, Boom, retry=False))[0] == "discarded"
    [stamp] = seen
    assert stamp is not None and before <= stamp <= time.time() * 1000


def test_retry_zero_goes_straight_to_dead(config, r, log, died, hooked):
    retrier = make_retrier(config, r, log)
    payload = push(r, Hooked, retry=0)
    assert run(retrier, Hooked, payload)[0] == "dead"
    assert r.zcard("retry") == 0
    [(job, _)] = dead_entries(r)
    assert job["retry_count"] == 0 and "failed_at" in job
    assert [c[0] for c in Hooked.calls] == ["exhausted"]  # no delay was asked for
    assert len(died) == 1


def test_dead_false_discards_the_job_after_its_retries(config, r, log, died):
    retrier = make_retrier(config, r, log)
    assert run(retrier, Boom, push(r, Boom, retry=0, dead=False))[0] == "discarded"
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0
    assert len(died) == 1


def test_retry_queue_sends_the_retry_to_another_queue(config, r, log):
    retrier = make_retrier(config, r, log)
    run(retrier, Boom, push(r, Boom, queue="mail", retry_queue="slow"))
    [(job, _, _)] = retry_entries(r)
    assert job["queue"] == "slow" and job["retry_queue"] == "slow"


# -- retry_for ----------------------------------------------------------------------------------
def test_retry_for_retries_while_the_window_since_the_first_failure_is_open(config, r, log):
    retrier = make_retrier(config, r, log)
    run(retrier, Boom, push(r, Boom, retry=0, retry_for=3600))  # retry_for wins over the count
    [(job, _, _)] = retry_entries(r)
    assert job["retry_count"] == 0 and job["retry_for"] == 3600

    assert run(retrier, Boom, take_retry(r))[0] == "retry"


def test_retry_for_sends_the_job_to_dead_once_the_window_has_passed(config, r, log):
    retrier = make_retrier(config, r, log)
    job = decode(push(r, Boom, retry_for=60))
    # Given a job whose first failure was 61 s ago
    job.update(retry_count=0, failed_at=now_ms() - 61_000)
    assert run(retrier, Boom, encode(job))[0] == "dead"


def test_retry_for_reads_a_failed_at_in_float_seconds_as_older_sidekiqs_wrote_it(config, r, log):
    # Sidekiq before 8 (and so a shared Redis) stores failed_at as float epoch seconds.
    retrier = make_retrier(config, r, log)
    job = decode(push(r, Boom, retry_for=60))
    job.update(retry_count=0, failed_at=time.time() - 10.0)
    assert run(retrier, Boom, encode(job))[0] == "retry"
    job.update(failed_at=time.time() - 61.0)
    assert run(retrier, Boom, encode(job))[0] == "dead"


# -- kiqpy_retry_in -----------------------------------------------------------------------------
def test_retry_in_seconds_sets_the_delay_and_gets_count_exception_and_job(config, r, log, hooked):
    hooked.retry_in = 120
    retrier = make_retrier(config, r, log)
    payload = push(r, Hooked)
    before = time.time()
    assert run(retrier, Hooked, payload)[0] == "retry"
    [(_, score, _)] = retry_entries(r)
    assert before + 120 <= score <= time.time() + 120
    assert hooked.calls == [("retry_in", 0, "ValueError", decode(payload)["jid"])]


def test_retry_in_kill_sends_the_job_to_dead_now(config, r, log, died, hooked):
    hooked.retry_in = "kill"
    retrier = make_retrier(config, r, log)
    assert run(retrier, Hooked, push(r, Hooked, retry=10))[0] == "dead"
    assert r.zcard("retry") == 0 and r.zcard("dead") == 1
    assert [c[0] for c in hooked.calls] == ["retry_in", "exhausted"]
    assert len(died) == 1


def test_retry_in_discard_drops_the_job(config, r, log, died, hooked):
    hooked.retry_in = "discard"
    retrier = make_retrier(config, r, log)
    assert run(retrier, Hooked, push(r, Hooked, retry=10))[0] == "discarded"
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0
    assert [c[0] for c in hooked.calls] == ["retry_in"]


@pytest.mark.parametrize("chosen", [None, "soon", True])
def test_retry_in_none_or_an_unknown_value_uses_the_default_backoff(config, r, log, hooked,
                                                                   chosen):
    hooked.retry_in = chosen
    retrier = make_retrier(config, r, log)
    before = time.time()
    assert run(retrier, Hooked, push(r, Hooked))[0] == "retry"
    [(_, score, _)] = retry_entries(r)
    assert before + 15 <= score < time.time() + 25
    if chosen is not None:
        assert any("unknown value" in e for e in log.events("error"))


def test_retry_in_that_raises_falls_back_to_the_default_backoff_and_logs(config, r, log, hooked):
    hooked.retry_in = RuntimeError("hook broke")
    retrier = make_retrier(config, r, log)
    before = time.time()
    assert run(retrier, Hooked, push(r, Hooked))[0] == "retry"
    [(_, score, _)] = retry_entries(r)
    assert before + 15 <= score < time.time() + 25
    [(_, event, fields)] = [rec for rec in log.records if rec[0] == "error"]
    assert "kiqpy_retry_in failed" in event and "hook broke" in fields["error"]


# -- error handlers -----------------------------------------------------------------------------
def test_error_handlers_get_the_exception_and_a_context_and_a_raising_one_is_contained(
        config, r, log):
    seen = []

    def broken(exc, context):
        raise RuntimeError("handler broke")

    config.error_handlers.append(broken)
    config.error_handlers.append(lambda exc, context: seen.append((exc, context)))
    retrier = make_retrier(config, r, log)
    payload = push(r, Boom, "bad", queue="mail")

    outcome, exc = run(retrier, Boom, payload)

    assert outcome == "retry" and r.zcard("retry") == 1
    [(got, context)] = seen
    assert got is exc
    assert set(context) == {"job", "queue"}
    assert context["queue"] == "mail" and context["job"]["jid"] == decode(payload)["jid"]
    assert any("error handler failed" in e for e in log.events("error"))


def test_a_raising_death_handler_is_contained_and_later_ones_still_run(config, r, log):
    seen = []

    def broken(job, exc):
        raise RuntimeError("death handler broke")

    config.death_handlers.extend([broken, lambda job, exc: seen.append(job["jid"])])
    retrier = make_retrier(config, r, log)
    payload = push(r, Boom, retry=0)
    assert run(retrier, Boom, payload)[0] == "dead"
    assert seen == [decode(payload)["jid"]]
    assert any("death handler failed" in e for e in log.events("error"))


# -- backtraces ---------------------------------------------------------------------------------
def test_backtrace_true_keeps_the_whole_traceback_compressed(config, r, log):
    retrier = make_retrier(config, r, log)
    run(retrier, Deep, push(r, Deep, backtrace=True))
    [(job, _, _)] = retry_entries(r)
    frames = decompress_backtrace(job["error_backtrace"])
    assert all(isinstance(f, str) for f in frames)
    names = [f.split(", in ")[1].split()[0] for f in frames[-4:]]
    assert names == ["perform", "level3", "level2", "level1"]
    assert "raise ValueError" in frames[-1]
    assert any("in execute" in f for f in frames)  # the whole traceback, kiqpy's frames too


def test_backtrace_lines_keeps_the_innermost_frames(config, r, log):
    retrier = make_retrier(config, r, log)
    run(retrier, Deep, push(r, Deep, backtrace=2))
    [(job, _, _)] = retry_entries(r)
    frames = decompress_backtrace(job["error_backtrace"])
    assert len(frames) == 2
    assert "in level2" in frames[0] and "in level1" in frames[1]


def test_no_backtrace_unless_asked(config, r, log):
    retrier = make_retrier(config, r, log)
    run(retrier, Deep, push(r, Deep))
    [(job, _, _)] = retry_entries(r)
    assert "error_backtrace" not in job


# -- the dead set -------------------------------------------------------------------------------
def test_dead_set_keeps_only_the_newest_dead_max_jobs(config, r, log):
    retrier = make_retrier(config, r, log, dead_max_jobs=5)
    jids = []
    for n in range(8):
        payload = push(r, Boom, n, retry=0)
        jids.append(decode(payload)["jid"])
        run(retrier, Boom, payload)
    assert [job["jid"] for job, _ in dead_entries(r)] == jids[3:]


def test_dead_set_drops_entries_older_than_dead_timeout(config, r, log):
    retrier = make_retrier(config, r, log, dead_timeout=3600)
    old = decode(push(r, Boom, "old"))
    recent = decode(push(r, Boom, "recent"))
    r.zadd("dead", {encode(old): time.time() - 3601, encode(recent): time.time() - 3500})

    run(retrier, Boom, push(r, Boom, "new", retry=0))

    assert [job["args"] for job, _ in dead_entries(r)] == [["recent"], ["new"]]


# -- encodings and awkward failures -------------------------------------------------------------
def test_a_json_job_stays_json_when_rewritten(config, r, log, redis_url):
    kiqpy.configure(config.replace(serializer="json"))
    retrier = make_retrier(config, r, log)
    payload = push(r, Boom, "json please")
    assert serializer_of(payload) == "json"

    run(retrier, Boom, payload)
    [(_, _, member)] = retry_entries(r)
    assert serializer_of(member) == "json"
    assert json.loads(member)["error_message"] == "json please"

    run(retrier, Boom, take_retry(r))
    run(retrier, Boom, take_retry(r))
    [(dead_member, _)] = r.zrange("dead", 0, -1, withscores=True)
    assert json.loads(dead_member)["retry_count"] == 2


def test_a_msgpack_job_stays_msgpack(config, r, log):
    retrier = make_retrier(config, r, log)
    payload = push(r, Boom)
    assert serializer_of(payload) == "msgpack"
    run(retrier, Boom, payload)
    [(_, _, member)] = retry_entries(r)
    assert serializer_of(member) == "msgpack"


def test_an_error_message_with_lone_surrogates_is_still_recorded(config, r, log):
    # os.fsdecode of an undecodable file name gives such strings; neither msgpack nor JSON can
    # encode them, and a failure to record the failure would crash the processor thread.
    retrier = make_retrier(config, r, log)
    for serializer in ("msgpack", "json"):
        kiqpy.configure(config.replace(serializer=serializer))
        payload = push(r, Boom, "ok")
        job = decode(payload)
        exc = ValueError("cannot read /tmp/caf\udce9")
        assert retrier.failed("default", job, exc, Boom, payload) == "retry"
    messages = [job["error_message"] for job, _, _ in retry_entries(r)]
    assert len(messages) == 2
    assert all(m.startswith("cannot read /tmp/caf") for m in messages)


def test_an_exception_whose_str_raises_is_still_recorded(config, r, log):
    retrier = make_retrier(config, r, log)
    payload = push(r, Boom)
    assert retrier.failed("default", decode(payload), Unprintable(), Boom, payload) == "retry"
    [(job, _, _)] = retry_entries(r)
    assert job["error_class"].endswith("Unprintable")
    assert isinstance(job["error_message"], str)


@pytest.mark.parametrize("value", [None, "yes"])
def test_a_foreign_retry_value_counts_as_the_default_instead_of_crashing(config, r, log, value):
    # A job pushed by another tool may carry "retry": null (Sidekiq reads it as "use the
    # default") or some other non-int value.
    retrier = make_retrier(config, r, log, max_retries=1)
    job = decode(push(r, Boom))
    job["retry"] = value
    outcomes = [run(retrier, Boom, encode(job))[0]]
    outcomes.append(run(retrier, Boom, take_retry(r))[0])
    assert outcomes == ["retry", "dead"]


# -- through a processor: unknown classes and malformed payloads --------------------------------
def processor(config, r, log):
    keys = Keys()
    outage = Outage(config.redis_url, log)
    fetcher = Fetcher(config, r, keys, "test:1:abc", outage, log)
    retrier = Retrier(config, r, keys, outage, log, threading.Event())
    return Processor("kiqpy.processor-1", fetcher, retrier, Chain(), {}, threading.Event(), log)


def test_an_unknown_job_class_is_retried_and_its_module_never_imported(config, r, log, tmp_path,
                                                                       monkeypatch):
    # Given a module that would leave a mark if anything imported it
    (tmp_path / "kiqpy_trap_module.py").write_text(
        f"open({str(tmp_path / 'imported')!r}, 'w').close()\n"
        "class Trap:\n    def perform(self):\n        pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    payload = encode(decode(push(r, Boom)) | {"class": "kiqpy_trap_module.Trap"})

    processor(config, r, log).process("default", payload)

    [(job, _, _)] = retry_entries(r)
    assert job["class"] == "kiqpy_trap_module.Trap"
    assert job["error_class"] == "kiqpy.errors.UnknownJobError"
    assert "kiqpy_trap_module.Trap" in job["error_message"]
    assert "kiqpy_trap_module" not in sys.modules
    assert not (tmp_path / "imported").exists()


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")


class RaisesUnprintable(kiqpy.Worker):
    def perform(self):
        raise Unprintable()


def test_an_exception_whose_str_raises_is_retried_by_the_processor(config, r, log):
    payload = push(r, RaisesUnprintable)
    processor(config, r, log).process("default", payload)
    [(job, _, _)] = retry_entries(r)
    assert job["error_class"].endswith("Unprintable")


def test_a_malformed_payload_goes_to_dead_with_its_reason_and_bytes(config, r, log):
    import base64

    processor(config, r, log).process("default", b"\xc1 not a job")

    [(job, _)] = dead_entries(r)
    assert job["class"] == MALFORMED_CLASS and job["queue"] == "default"
    assert "msgpack" in job["error_message"]
    assert base64.b64decode(job["original_payload"]) == b"\xc1 not a job"
    assert r.zcard("retry") == 0


# -- end to end ---------------------------------------------------------------------------------
def make_due(r):
    """Make every retry due now, so the worker's scheduler moves it at its next poll."""
    for member in r.zrange("retry", 0, -1):
        r.zadd("retry", {member: 0}, xx=True)


def test_a_failing_job_goes_through_retry_to_dead_in_a_real_worker(config, r, redis_url):
    jid = app_jobs.Fail.perform_async("kaput")
    with WorkerProcess(redis_url) as worker:
        # The first failure lands in retry with Sidekiq's fields and score range.
        wait_for(lambda: r.zcard("retry") == 1, message="the first retry")
        [(member, score)] = r.zrange("retry", 0, -1, withscores=True)
        job = decode(member)
        assert job["jid"] == jid and job["retry_count"] == 0
        assert job["error_class"] == "ValueError" and job["error_message"] == "kaput"
        assert job["failed_at"] / 1000 + 15 <= score < time.time() + 25

        # Fail has retry=2: two more failures (made due at once) and it is dead.
        for count in (1, 2):
            make_due(r)
            if count == 1:
                # One read: between a ZCARD and a ZRANGE the scheduler may move the entry
                # made due above out of the set.
                wait_for(lambda: [decode(m)["retry_count"] for m in r.zrange("retry", 0, -1)]
                         == [1], message="the second retry")
        wait_for(lambda: r.zcard("dead") == 1, message="the job to die")
        [dead] = r.zrange("dead", 0, -1)
        assert decode(dead)["retry_count"] == 2 and decode(dead)["jid"] == jid
        assert int(r.get("test:fail_attempts")) == 3
        assert r.zcard("retry") == 0
        worker.terminate()
        assert worker.wait() == 0


def test_retry_in_zero_and_exhaustion_hook_in_a_real_worker(config, r, redis_url):
    jid = app_jobs.FailFast.perform_async()
    with WorkerProcess(redis_url) as worker:
        wait_for(lambda: r.zcard("dead") == 1, message="the job to die")
        assert int(r.get("test:failfast_attempts")) == 3
        assert r.lrange("test:exhausted", 0, -1) == [jid.encode()]
        assert r.zcard("retry") == 0 and r.llen("queue:default") == 0
        worker.terminate()
        assert worker.wait() == 0
