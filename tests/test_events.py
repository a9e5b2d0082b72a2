"""Lifecycle events (``Config.on``) in a real worker: which fire, in which order and thread,
and what a failing handler does."""

from __future__ import annotations

import signal

import pytest

import kiqpy
from kiqpy.errors import ConfigurationError
from tests.conftest import wait_for
from tests.workers import WorkerProcess


def events(r) -> list[str]:
    return [e.decode() for e in r.lrange("test:events", 0, -1)]


def test_unknown_events_and_handlers_that_are_not_callable_are_refused():
    config = kiqpy.Config()
    with pytest.raises(ConfigurationError, match="unknown event 'boot'; events are startup"):
        config.on("boot", print)
    with pytest.raises(ConfigurationError, match="needs a callable"):
        config.on("startup", "print")
    assert config.on("exit", print) is print
    assert config.replace(concurrency=3).event_handlers["exit"] == [print]  # shared


@pytest.mark.slow
def test_a_worker_fires_each_event_in_order_in_the_documented_thread(r, redis_url):
    with WorkerProcess(redis_url, "--heartbeat-interval", "0.2",
                       require="tests.app_events") as worker:
        wait_for(lambda: "beat:kiqpy.heartbeat" in events(r), message="a beat")
        worker.signal(signal.SIGTSTP)
        wait_for(lambda: any(e.startswith("quiet:") for e in events(r)), message="quiet")
        worker.terminate()
        assert worker.wait() == 0
    seen = events(r)
    firsts = [e for e in seen if not e.startswith("beat:")]
    assert firsts == ["startup:MainThread", "heartbeat:MainThread", "quiet:MainThread",
                      "shutdown:MainThread", "exit:MainThread"]
    assert seen.index("heartbeat:MainThread") < seen.index("beat:kiqpy.heartbeat")


@pytest.mark.slow
def test_a_startup_handler_that_raises_stops_the_process_before_it_fetches(config, r,
                                                                          redis_url):
    kiqpy.enqueue("Record", "must not run")
    with WorkerProcess(redis_url, require="tests.app_events",
                       env={"KIQPY_TEST_FAIL_STARTUP": "1"}) as worker:
        assert worker.wait() == 1
        log = worker.log()
    assert "a startup event handler failed; not starting" in log
    assert "the cache could not be warmed" in log
    assert events(r) == ["startup:MainThread"]
    assert r.llen("queue:default") == 1 and not r.keys("*:inflight:*")
