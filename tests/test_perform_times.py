"""perform_in / perform_at follow Sidekiq's rule for numbers (below 1e9: seconds from now; from
1e9 on: an epoch time), and perform_bulk / push_bulk take one run time per job."""

from __future__ import annotations

import datetime as dt
import time

import pytest

import kiqpy
from kiqpy.errors import ArgumentError
from tests.conftest import queued_jobs, scheduled_jobs


class Later(kiqpy.Worker, queue="later"):
    def perform(self, *args):
        pass


@pytest.mark.parametrize("method", ["perform_in", "perform_at"])
def test_an_epoch_time_is_absolute_in_both_methods(config, r, method):
    when = time.time() + 3600
    getattr(Later, method)(when, "x")
    [(_, score)] = scheduled_jobs(r)
    assert score == pytest.approx(when, abs=1e-3)  # in an hour, not in 57 years


@pytest.mark.parametrize("method", ["perform_in", "perform_at"])
@pytest.mark.parametrize("interval", [300, 300.5, 999_999_999, dt.timedelta(seconds=300)])
def test_a_small_number_or_a_timedelta_is_from_now_in_both_methods(config, r, method,
                                                                    interval):
    before = time.time()
    getattr(Later, method)(interval, "x")
    [(_, score)] = scheduled_jobs(r)
    seconds = interval.total_seconds() if isinstance(interval, dt.timedelta) else interval
    assert before + seconds <= score <= time.time() + seconds


@pytest.mark.parametrize("method", ["perform_in", "perform_at"])
def test_a_datetime_is_absolute_in_both_methods(config, r, method):
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
    getattr(Later, method)(when, "x")
    [(_, score)] = scheduled_jobs(r)
    assert score == pytest.approx(when.timestamp(), abs=1e-3)


@pytest.mark.parametrize("method", ["perform_in", "perform_at"])
@pytest.mark.parametrize("when", [1_000_000_000, time.time() - 60, -5, 0,
                                  dt.timedelta(seconds=-1), dt.datetime(2001, 1, 1)])
def test_a_time_in_the_past_enqueues_now(config, r, method, when):
    jid = getattr(Later, method)(when, "x")
    assert r.zcard("schedule") == 0
    assert [job["jid"] for job in queued_jobs(r, "later")] == [jid]


def test_perform_bulk_takes_one_time_per_job(config, r):
    now = time.time()
    times = [now + 60, dt.datetime.fromtimestamp(now + 120, dt.timezone.utc), now - 60]
    jids = Later.perform_bulk([["a"], ["b"], ["c"]], at=times)
    scheduled = {job["jid"]: score for job, score in scheduled_jobs(r)}
    assert scheduled == {jids[0]: pytest.approx(now + 60, abs=1e-3),
                         jids[1]: pytest.approx(now + 120, abs=1e-3)}
    assert [job["jid"] for job in queued_jobs(r, "later")] == [jids[2]]  # past: now


def test_push_bulk_takes_an_at_array_as_sidekiq_does(config, r):
    now = time.time()
    jids = kiqpy.default_client().push_bulk(
        {"class": "OtherApp::Job", "args": [[1], [2]], "at": [now + 30, now + 90]})
    scores = {job["jid"]: score for job, score in scheduled_jobs(r)}
    assert scores == {jids[0]: pytest.approx(now + 30, abs=1e-3),
                      jids[1]: pytest.approx(now + 90, abs=1e-3)}


@pytest.mark.parametrize("times", [[], [time.time() + 60], [time.time() + 60] * 3])
def test_a_time_list_of_another_length_is_refused_before_any_push(config, r, times):
    with pytest.raises(ArgumentError, match=rf"^'at' has {len(times)} times for 2 arg lists; "
                                            r"give one time per job"):
        Later.perform_bulk([["a"], ["b"]], at=times)
    with pytest.raises(ArgumentError, match=r"'at' has"):
        kiqpy.default_client().push_bulk({"class": Later, "args": [["a"], ["b"]], "at": times})
    assert r.keys("*") == []


def test_push_of_one_job_refuses_a_time_list(config, r):
    with pytest.raises(ArgumentError, match="a list of times is for push_bulk"):
        kiqpy.default_client().push({"class": Later, "args": [], "at": [time.time() + 60]})
    assert r.keys("*") == []
