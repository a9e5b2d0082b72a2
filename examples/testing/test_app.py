"""Testing the jobs of ``app.py`` with kiqpy's testing modes; no Redis and no worker needed:

    python -m pytest examples/testing -q

- fake mode (``kiqpy_fake`` fixture, or ``with kiqpy.testing.fake():``): pushes land in memory;
  assert on ``Job.jobs``, then run them with ``drain()``, ``perform_one()`` or ``drain_all()``;
- inline mode (``kiqpy_inline``, or ``with kiqpy.testing.inline():``): each push runs at once.

Both fixtures come with kiqpy (a pytest plugin it installs); nothing to add to conftest.py.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

import kiqpy
import kiqpy.testing
from examples.testing import app
from examples.testing.app import FollowUp, WelcomeMail, signup


@pytest.fixture(autouse=True)
def empty_database():
    app.USERS.clear()
    app.OUTBOX.clear()


# -- fake mode: what was enqueued, then run it when the test says so ---------------------------
def test_signup_enqueues_a_welcome_mail(kiqpy_fake):
    user_id = signup("ann@example.com")

    # The job is enqueued, not run: nothing was sent yet.
    assert [job["args"] for job in WelcomeMail.jobs] == [[user_id]]
    assert WelcomeMail.jobs[0]["queue"] == "mail"
    assert app.OUTBOX == []


def test_draining_runs_the_jobs(kiqpy_fake):
    signup("ann@example.com")

    assert WelcomeMail.drain() == 1  # runs the class's jobs; returns how many ran
    assert app.OUTBOX == [("ann@example.com", "Welcome!")]
    assert WelcomeMail.jobs == []


def test_the_welcome_mail_schedules_a_follow_up(kiqpy_fake):
    user_id = signup("ann@example.com")
    WelcomeMail.perform_one()  # the oldest job of the class

    [follow_up] = FollowUp.jobs
    assert follow_up["args"] == [user_id, 3]
    assert follow_up["at"] == pytest.approx(time.time() + 3 * 24 * 3600, abs=60)
    # drain_all runs every job, scheduled ones too (it does not wait for their time).
    assert kiqpy.testing.drain_all() == 1
    assert app.OUTBOX[-1] == ("ann@example.com", "How were your first 3 days?")


def test_jobs_by_queue_and_clearing(kiqpy_fake):
    signup("ann@example.com")
    signup("bob@example.com")

    assert len(kiqpy.testing.jobs_for("mail")) == 2
    WelcomeMail.clear()  # or kiqpy.testing.clear_all() for every class
    assert kiqpy.testing.jobs_for("mail") == []


def test_bad_arguments_fail_in_tests_as_they_would_in_production(kiqpy_fake):
    # Fake pushes go through the same checks and serialization as real ones.
    with pytest.raises(kiqpy.ArgumentError, match="datetime is not serializable"):
        WelcomeMail.perform_async(dt.datetime.now())


def test_no_jobs_to_perform(kiqpy_fake):
    with pytest.raises(kiqpy.NoJobsError):
        WelcomeMail.perform_one()


# -- inline mode: every push runs at once ------------------------------------------------------
def test_signup_sends_the_mails_at_once(kiqpy_inline):
    signup("ann@example.com")

    # The welcome mail ran during signup(), and so did the follow-up it scheduled.
    assert app.OUTBOX == [("ann@example.com", "Welcome!"),
                          ("ann@example.com", "How were your first 3 days?")]


def test_a_failing_job_raises_in_the_caller(kiqpy_inline):
    with pytest.raises(KeyError):
        WelcomeMail.perform_async(999)  # no such user


# -- the same modes as context managers, for a block inside a test -----------------------------
def test_modes_as_context_managers():
    with kiqpy.testing.fake():
        signup("ann@example.com")
        assert len(WelcomeMail.jobs) == 1
        assert app.OUTBOX == []
    with kiqpy.testing.inline():
        signup("bob@example.com")
    assert ("bob@example.com", "Welcome!") in app.OUTBOX
