"""Equal queue weights in a real worker: each fetch tries the queues in a random order, so
every queue is served from the start (as Sidekiq's ``-q a,1 -q b,1``). The strict and 3:1
cases are in tests/test_processing.py."""

from __future__ import annotations

from tests import app_jobs
from tests.conftest import wait_for
from tests.test_processing import binomial_bounds, ran
from tests.workers import WorkerProcess


def test_equal_weights_serve_both_queues_from_the_start_in_random_order(config, r, redis_url):
    # Given two queues with equal weights, both with more jobs than are counted
    total = 200
    app_jobs.Record.set(queue="a").perform_bulk([["a"]] * total)
    app_jobs.Record.set(queue="b").perform_bulk([["b"]] * total)
    # When one thread takes them one per fetch (--prefetch 0: one fetch, one draw)
    with WorkerProcess(redis_url, "-q", "a:1,b:1", "-c", "1", "--prefetch", "0"):
        wait_for(lambda: r.llen("test:ran") >= total, timeout=30,
                 message=f"{total} jobs to run")
    first = ran(r)[:total]
    # Then both queues were served early: while both have jobs, each fetch is a fair coin, so
    # one queue missing from the first 40 jobs has probability 2 * 0.5**40 < 2e-12 ...
    assert {repr(("a",)), repr(("b",))} <= set(first[:40]), first[:40]
    # ... and `a`'s share of the first 200 is Binomial(200, 0.5), outside these bounds (a share
    # of about 0.32..0.68) with probability < 5e-7; so a correct worker fails this test less
    # than once in a million runs. Strict order would give 200, the 3:1 weights about 150.
    lo, hi = binomial_bounds(total, 0.5, alpha=5e-7)
    assert lo <= first.count(repr(("a",))) <= hi, (first.count(repr(("a",))), lo, hi)
