"""kiqpy_middleware.sentry: each failure reaches Sentry once, with the job's class, jid, queue
and retry count, through a worker's retry path; expected errors do not."""

from __future__ import annotations

import threading

import pytest
import sentry_sdk
from sentry_sdk.transport import Transport

import kiqpy
import kiqpy_middleware.sentry
from kiqpy.keys import Keys
from kiqpy.payload import encode
from kiqpy.server.outage import Outage
from kiqpy.server.retry import Retrier
from tests.recording import RecordingLog


class Recorded(Transport):
    """A Sentry transport that keeps the events in memory."""

    def __init__(self, options=None):
        super().__init__(options)
        self.events: list[dict] = []

    def capture_envelope(self, envelope):
        for item in envelope.items:
            if item.type == "event":
                self.events.append(item.payload.json)


class Flaky(kiqpy.Worker, name="sentry.Flaky"):
    kiqpy_expected_errors = (TimeoutError,)

    def perform(self, *args):
        pass


@pytest.fixture
def events(config):
    transport = Recorded()
    sentry_sdk.init(dsn="https://key@example.invalid/1", transport=transport,
                    default_integrations=False)
    kiqpy_middleware.sentry.install(config)
    kiqpy_middleware.sentry.install(config)  # twice: still one reporter
    yield transport.events
    sentry_sdk.init()  # no DSN: off again


def fail(config, r, job: dict, exc: BaseException) -> None:
    log = RecordingLog()
    retrier = Retrier(config, r, Keys(), Outage(config.redis_url, log), log, threading.Event())
    retrier.failed(job["queue"], job, exc, Flaky, encode(job, "msgpack"))


def job(**fields) -> dict:
    return {"class": "sentry.Flaky", "args": [42, "x" * 5000], "queue": "sync",
            "jid": "a" * 24, "retry": True, "created_at": 1, **fields}


def test_a_failure_is_reported_once_with_the_jobs_tags_and_context(config, r, events):
    try:
        raise ValueError("the feed is not XML")
    except ValueError as exc:
        fail(config, r, job(retry_count=2), exc)
    [event] = events
    assert event["exception"]["values"][0]["type"] == "ValueError"
    assert event["tags"] == {"kiqpy.job_class": "sentry.Flaky", "kiqpy.queue": "sync",
                             "kiqpy.jid": "a" * 24}
    context = event["contexts"]["kiqpy"]
    assert context["retry_count"] == 2 and len(context["args"]) == 1000
    assert r.zcard("retry") == 1  # the retry went on as usual


def test_an_error_the_class_expects_is_not_reported(config, r, events):
    fail(config, r, job(), TimeoutError("slow feed"))
    assert events == []
