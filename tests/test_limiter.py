"""kiqpy.limiter in one process against a real Redis: each kind's limit, waiting, releases,
key expiry, namespaces, and the validation at construction."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

import kiqpy
from kiqpy import limiter
from kiqpy.config import Config
from kiqpy.errors import ConfigurationError, KiqpyError
from tests.conftest import wait_for


def admitted(lim: limiter.Limiter, tries: int) -> int:
    n = 0
    for _ in range(tries):
        try:
            with lim.within_limit():
                n += 1
        except limiter.OverLimit:
            pass
    return n


def test_concurrent_holds_a_slot_for_the_block_and_frees_it_even_when_it_raises(config, r):
    lim = limiter.concurrent("erp", 2, wait_timeout=0)
    with lim.within_limit(), lim.within_limit():
        with pytest.raises(limiter.OverLimit) as info, lim.within_limit():
            pass  # pragma: no cover
        assert info.value.limiter == "erp" and info.value.kind == "concurrent"
    with pytest.raises(ValueError), lim.within_limit():
        raise ValueError("boom")
    assert r.zcard("kiqpy:limiter:{erp}:slots") == 0
    assert admitted(lim, 3) == 3  # one at a time, each released


def test_a_held_slot_can_be_renewed_until_its_lease_has_run_out(config, r):
    lim = limiter.concurrent("long", 1, wait_timeout=0, lock_timeout=0.2)
    with lim.within_limit() as slot:
        # Renewed from another client (the heartbeat's), the lease moves past its first end
        first = r.zscore(slot.key, slot.token)
        wait_for(lambda: slot.renew(r) and r.zscore(slot.key, slot.token) > first,
                 message="a renewal that moves the lease")
        # Once it has run out and another holder took the slot, renewing says so
        r.zadd(slot.key, {slot.token: 0})
        with lim.within_limit():
            assert slot.renew(r) is False
    assert r.zcard(slot.key) == 0


def test_concurrent_waits_up_to_wait_timeout_for_a_slot(config, r):
    lim = limiter.concurrent("wait", 1, wait_timeout=5)
    entered = threading.Event()
    release = threading.Event()

    def holder():
        with lim.within_limit():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    entered.wait(5)
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    with lim.within_limit():
        waited = time.monotonic() - started
    thread.join()
    assert 0.2 < waited < 4
    assert int(r.hget("kiqpy:limiter:{wait}:meta", "wait_ms")) >= 200


def test_a_shared_limiter_object_is_safe_across_threads(config, r):
    lim = limiter.concurrent("shared", 3, wait_timeout=10)
    inside, peak, lock = [0], [0], threading.Lock()

    def work():
        for _ in range(5):
            with lim.within_limit():
                with lock:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                time.sleep(0.005)
                with lock:
                    inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 3
    assert r.zcard("kiqpy:limiter:{shared}:slots") == 0


def test_bucket_lets_size_calls_in_per_calendar_interval(config, r):
    lim = limiter.bucket("stripe", 4, "second")
    # Start just after a second begins, so the burst below stays in one interval
    wait_for(lambda: r.time()[1] < 300_000, timeout=2, interval=0.001)
    assert admitted(lim, 10) == 4
    with pytest.raises(limiter.OverLimit) as info, lim.within_limit():
        pass  # pragma: no cover
    assert 0 < info.value.retry_after <= 1
    # Then a new second starts with a full bucket
    time.sleep(info.value.retry_after + 0.01)
    assert admitted(lim, 10) == 4
    meta = r.hgetall("kiqpy:limiter:{stripe}:meta")
    assert meta[b"kind"] == b"bucket" and meta[b"size"] == b"4" and meta[b"calls"] == b"8"
    assert int(meta[b"over"]) == 13


def test_window_lets_size_calls_in_any_sliding_window(config, r):
    lim = limiter.window("mail", 3, 0.5)
    assert admitted(lim, 10) == 3
    wait_for(lambda: admitted(lim, 1) == 1, timeout=2, message="the window to slide")
    assert admitted(lim, 10) == 2  # the other two of the first three left together


def test_leaky_drips_evenly(config, r):
    lim = limiter.leaky("push", 10, "second")  # one every 100 ms
    times = []
    deadline = time.monotonic() + 1.05
    while time.monotonic() < deadline:
        try:
            with lim.within_limit():
                times.append(time.monotonic())
        except limiter.OverLimit as exc:
            assert exc.retry_after <= 0.1
            time.sleep(0.005)
    assert 9 <= len(times) <= 12
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) > 0.08


def test_wait_timeout_on_a_rate_limiter_waits_for_room(config, r):
    lim = limiter.window("patient", 1, 0.3, wait_timeout=2)
    with lim.within_limit():
        pass
    started = time.monotonic()
    with lim.within_limit():
        pass
    assert 0.2 < time.monotonic() - started < 1.5


def test_keys_expire_when_unused_and_meta_keeps_the_counts(config, r):
    with limiter.concurrent("c", 1, lock_timeout=30).within_limit():
        assert 0 < r.pttl("kiqpy:limiter:{c}:slots") <= 30_000
    with limiter.bucket("b", 1, "second").within_limit():
        pass
    with limiter.window("w", 1, 2).within_limit():
        pass
    with limiter.leaky("l", 2, "second").within_limit():
        pass
    assert 0 < r.pttl("kiqpy:limiter:{b}:bucket") <= 2_000
    assert 0 < r.pttl("kiqpy:limiter:{w}:window") <= 2_000
    assert 0 < r.pttl("kiqpy:limiter:{l}:leaky") <= 502
    for name in "cbwl":
        assert 0 < r.pttl(f"kiqpy:limiter:{{{name}}}:meta") <= limiter.META_TTL_MS
    # Every key of one limiter names the same hash tag (one Redis Cluster slot)
    assert all(key.decode().split(":")[2].startswith("{") for key in r.keys("kiqpy:limiter:*"))


def test_dynamic_names_are_separate_limiters(config, r):
    for uid in range(3):
        assert admitted(limiter.window(f"user:{uid}", 2, 60), 5) == 2
    assert len(r.keys("kiqpy:limiter:{user:*}:window")) == 3


def test_a_namespace_prefixes_the_keys(r, redis_url):
    lim = limiter.window("ns", 1, 60, config=Config(redis_url=redis_url, namespace="app"))
    assert admitted(lim, 2) == 1
    assert r.exists("app:kiqpy:limiter:{ns}:window")


def test_over_limit_outside_a_job_reaches_the_caller(config, r):
    lim = limiter.bucket("web", 1, "minute")
    with lim.within_limit():
        pass
    with pytest.raises(kiqpy.KiqpyError), lim.within_limit():
        pass  # pragma: no cover
    assert issubclass(limiter.OverLimit, KiqpyError)


@pytest.mark.parametrize("build, bad", [
    (lambda: limiter.concurrent("", 1), "''"),
    (lambda: limiter.concurrent("a{b}", 1), "'a{b}'"),
    (lambda: limiter.concurrent("x" * 201, 1), "'xxxx"),
    (lambda: limiter.concurrent(7, 1), "7"),
    (lambda: limiter.concurrent("a", 0), "size 0"),
    (lambda: limiter.concurrent("a", 1.5), "size 1.5"),
    (lambda: limiter.concurrent("a", True), "size True"),
    (lambda: limiter.concurrent("a", 1, wait_timeout=-1), "wait_timeout -1"),
    (lambda: limiter.concurrent("a", 1, lock_timeout=0), "lock_timeout 0"),
    (lambda: limiter.bucket("a", 1, "week"), "'week'"),
    (lambda: limiter.leaky("a", 1, 60), "interval 60"),
    (lambda: limiter.window("a", 1, 0), "seconds 0"),
    (lambda: limiter.window("a", 1, float("nan")), "seconds nan"),
])
def test_bad_values_are_refused_at_construction_by_name(build, bad):
    with pytest.raises(ConfigurationError, match="not valid") as info:
        build()
    assert bad in str(info.value)


def test_the_readmes_limiter_example_runs(config, r, capsys):
    from tests.test_docs import block

    namespace: dict[str, object] = {"__name__": "readme_limiter"}
    exec(compile(block("limiter"), "README.md (limiter)", "exec"), namespace)
    namespace["ChargeJob"]().perform(7)  # type: ignore[operator]
    for n in range(5):
        namespace["send_mail"]("example.com", n)  # type: ignore[operator]
    with pytest.raises(limiter.OverLimit):
        namespace["send_mail"]("example.com", 5)  # type: ignore[operator]
    assert capsys.readouterr().out.splitlines()[:2] == ["charging 7", "sending 0"]
