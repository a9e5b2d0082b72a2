"""A class's ``kiqpy_retry_in`` deciding a failed job's fate in a real worker: "kill" sends it
to the dead set, "discard" drops it, and neither leaves it in the retry set; and the order of
the lines of a stored ``error_backtrace``. (tests/test_retry.py drives the Retrier directly.)"""

from __future__ import annotations

from kiqpy.failures import decompress_backtrace
from kiqpy.payload import decode
from tests import app_retry_hooks as jobs
from tests.conftest import wait_for
from tests.workers import WorkerProcess

FAILING = [jobs.KillNow, jobs.DiscardNow, jobs.RetryLater]


def attempts(r, cls):
    return int(r.get(f"test:attempts:{cls.kiqpy_job_name}") or 0)


def members(r, key):
    return [decode(m) for m in r.zrange(key, 0, -1)]


def test_kill_goes_to_the_dead_set_and_discard_is_dropped(config, r, redis_url):
    # Given one job of each kind, each with retries left
    jids = {cls: cls.perform_async(1) for cls in FAILING}
    # When a worker runs them and each fails once
    with WorkerProcess(redis_url, require="tests.app_retry_hooks") as worker:
        wait_for(lambda: all(attempts(r, cls) == 1 for cls in FAILING)
                 and r.zcard("dead") == 1 and r.zcard("retry") == 1
                 and not r.keys("*:inflight:*"),
                 timeout=20, message="the jobs to fail and be acked")
        worker.terminate()
        assert worker.wait() == 0
    # Then the killed job is in the dead set, the discarded one is nowhere, and only the
    # control job (kiqpy_retry_in gave seconds) waits in the retry set
    [dead] = members(r, "dead")
    assert (dead["jid"], dead["class"]) == (jids[jobs.KillNow], "HookKill")
    assert dead["error_class"] == "RuntimeError" and dead["retry_count"] == 0
    assert [job["jid"] for job in members(r, "retry")] == [jids[jobs.RetryLater]]
    stored = b"".join(r.lrange("queue:default", 0, -1)) + b"".join(r.zrange("schedule", 0, -1))
    assert jids[jobs.DiscardNow].encode() not in stored
    assert all(attempts(r, cls) == 1 for cls in FAILING)  # none ran again


def test_error_backtrace_lists_the_outermost_frame_first(config, r, redis_url):
    # Given a job with backtrace=True that fails two calls below perform
    jobs.DeepFailure.perform_async()
    # When a worker runs it
    with WorkerProcess(redis_url, require="tests.app_retry_hooks"):
        wait_for(lambda: r.zcard("retry") == 1, timeout=20, message="the failure")
    [job] = members(r, "retry")
    lines = decompress_backtrace(job["error_backtrace"])
    # Then, in Python's order (not Ruby's), perform comes first and the frame that raised last
    def position(function):
        [n] = [n for n, line in enumerate(lines) if f", in {function}\n" in line]
        return n

    assert position("perform") < position("middle") < position("innermost") == len(lines) - 1
