"""``Config.sidekiq_version``: in JSON mode, "6" and "7" write ``created_at``, ``enqueued_at``,
``failed_at`` and ``retried_at`` as float epoch seconds (Sidekiq 6.x/7.x), "8" as int epoch
ms; every writer follows it (push, the poller, retries, the data API) and msgpack stays in ms."""

from __future__ import annotations

import threading
import time

import pytest

import kiqpy
from kiqpy.api import RetrySet
from kiqpy.config import Config
from kiqpy.errors import ConfigurationError
from kiqpy.keys import Keys
from kiqpy.payload import decode, encode, new_jid
from kiqpy.server.outage import Outage
from kiqpy.server.retry import Retrier
from tests.recording import RecordingLog
from tests.test_enqueued_at import move_all


class Mailer(kiqpy.Worker, queue="mail"):
    def perform(self, *args):
        pass


class Fails(kiqpy.Worker, retry=3):
    def perform(self):
        raise ValueError("no")


def seconds(value):
    """Asserts a float epoch-seconds stamp of about now."""
    assert type(value) is float and abs(value - time.time()) < 60, value
    return value


def millis(value):
    assert type(value) is int and abs(value - time.time() * 1000) < 60_000, value
    return value


@pytest.fixture(params=["6", "7"])
def old(request, config):
    return kiqpy.configure(config.replace(serializer="json", sidekiq_version=request.param))


def test_the_setting_is_checked_and_read_from_the_environment():
    assert Config().sidekiq_version == "8"
    assert Config.from_env({"KIQPY_SIDEKIQ_VERSION": "6"}).sidekiq_version == "6"
    assert Config(sidekiq_version=7).sidekiq_version == "7"  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="sidekiq_version must be one of 6, 7, 8"):
        Config(sidekiq_version="5")


def test_pushes_write_float_seconds_for_sidekiq_6_and_7(old, r):
    Mailer.perform_async(1)
    Mailer.perform_bulk([[2], [3]])
    for payload in r.lrange("queue:mail", 0, -1):
        job = decode(payload)
        seconds(job["created_at"]), seconds(job["enqueued_at"])
    Mailer.perform_in(60, 4)
    [(member, _)] = r.zrange("schedule", 0, -1, withscores=True)
    seconds(decode(member)["created_at"])


def test_msgpack_and_sidekiq_8_write_int_ms(config, r):
    kiqpy.configure(config.replace(sidekiq_version="6"))  # msgpack: the setting does not apply
    Mailer.perform_async(1)
    kiqpy.configure(config.replace(serializer="json"))
    Mailer.perform_async(2)
    for payload in r.lrange("queue:mail", 0, -1):
        job = decode(payload)
        millis(job["created_at"]), millis(job["enqueued_at"])


def test_the_poller_stamps_the_configured_unit_in_lua_and_in_python(old, r):
    # Given a member schedule.lua stamps (no enqueued_at) and a Sidekiq retry member holding
    # its first run's enqueued_at in ms (another writer), which Python re-stamps
    fresh = encode({"class": "Mailer", "args": [2**62], "queue": "mail", "jid": new_jid()},
                   "json")
    stale = encode({"class": "Mailer", "args": [1], "queue": "mail", "jid": new_jid(),
                    "enqueued_at": 1_700_000_000_000, "retry_count": 0,
                    "failed_at": 1_700_000_000.5}, "json")
    r.zadd("schedule", {fresh: 1.0})
    r.zadd("retry", {stale: 1.0})

    assert move_all(old, r) == 2

    jobs = [decode(p) for p in r.lrange("queue:mail", 0, -1)]
    assert [j["args"] for j in jobs] == [[1], [2**62]]
    for job in jobs:
        seconds(job["enqueued_at"])
    assert jobs[0]["failed_at"] == 1_700_000_000.5  # other fields untouched


def test_retries_stamp_failed_and_retried_at_in_seconds(old, r):
    log = RecordingLog()
    retrier = Retrier(old, r, Keys(), Outage(old.redis_url, log), log, threading.Event())
    payload = encode({"class": Fails.kiqpy_job_name, "args": [], "queue": "default",
                      "jid": new_jid(), "retry": 3, "created_at": time.time()}, "json")
    assert retrier.failed("default", decode(payload), ValueError("no"), Fails, payload) == "retry"
    [member] = r.zrange("retry", 0, -1)
    job = decode(member)
    seconds(job["failed_at"])
    assert job["retry_count"] == 0
    assert retrier.failed("default", job, ValueError("no"), Fails, member) == "retry"
    retried = decode(max(r.zrange("retry", 0, -1), key=len))
    seconds(retried["retried_at"])
    # the API reads either unit as a datetime
    assert {e.failed_at.year for e in RetrySet()} == {time.gmtime().tm_year}


def test_the_data_api_moves_stamp_the_configured_unit(old, r):
    member = encode({"class": "Mailer", "args": [], "queue": "mail", "jid": new_jid(),
                     "retry_count": 1, "failed_at": 1_700_000_000_000}, "json")
    r.zadd("retry", {member: time.time() + 60})
    assert next(iter(RetrySet())).retry() is True
    [queued] = r.lrange("queue:mail", 0, -1)
    seconds(decode(queued)["enqueued_at"])
