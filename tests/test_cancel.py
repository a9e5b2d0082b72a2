"""Cancelling jobs (kiqpy.api.cancel, kiqpy cancel): waiting jobs are removed from their
queue, the schedule or the retry set; a running job is told and, when it stops, is neither
retried nor sent to the dead set; unknown jids say so."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

import kiqpy
import kiqpy.api
from kiqpy.api import cancel, cancellations
from kiqpy.cli import main
from tests.conftest import wait_for
from tests.workers import WorkerProcess


def test_waiting_jobs_are_removed_from_their_queue_the_schedule_and_retries(config, r):
    queued = kiqpy.enqueue("cancel.LongExport", 10, queue="exports")
    kept = kiqpy.enqueue("cancel.LongExport", 20, queue="exports")
    scheduled = kiqpy.enqueue("cancel.LongExport", 10, delay=3600)
    assert cancel(queued).where == "queue:exports"
    assert cancel(scheduled).where == "schedule"
    assert r.llen("queue:exports") == 1 and r.zcard("schedule") == 0
    assert kiqpy.api.Queue("exports").find_job(kept) is not None
    # A retrying job too (put there as a worker would)
    from tests.web_helpers import add, failed

    add(r, "retry", {**failed("cancel.LongExport", [1]), "jid": "f" * 24}, time.time() + 60)
    assert cancel("f" * 24).where == "retry" and r.zcard("retry") == 0
    # The last day's cancellations are kept, newest first
    assert [c.jid for c in cancellations()] == ["f" * 24, scheduled, queued]


def test_cancelling_an_unknown_or_finished_jid_says_so(config, r, redis_url):
    result = cancel("0" * 24)
    assert not result.found and "no job 000000000000000000000000 is waiting or running" in (
        str(result))
    out = CliRunner().invoke(main, ["cancel", "0" * 24, "--redis-url", redis_url])
    assert out.exit_code == 1 and "no job" in out.output


@pytest.mark.slow
def test_a_running_job_is_told_and_neither_retried_nor_dead(config, r, redis_url):
    with WorkerProcess(redis_url, "--heartbeat-interval", "0.2",
                       require="tests.app_cancel") as worker:
        jid = kiqpy.enqueue("cancel.LongExport", 400)
        wait_for(lambda: r.llen("test:started") == 1, message="the job to start")
        # (the Busy data lists it once a heartbeat wrote it)
        wait_for(lambda: any(w.job.jid == jid for _, _, w in kiqpy.api.WorkSet()),
                 message="the job on Busy")
        out = CliRunner().invoke(main, ["cancel", jid, "--redis-url", redis_url])
        assert out.exit_code == 0 and "is running: told to stop" in out.output
        wait_for(lambda: r.llen("test:stopped") == 1, message="the job to stop")
        wait_for(lambda: "cancelled job stopped" in worker.log(), message="the worker's word")
        worker.terminate()
        assert worker.wait() == 0
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0 and r.llen("test:finished") == 0
    assert [c.where for c in cancellations()] == ["running"]


def test_the_dashboard_cancels_from_an_entry_page_and_says_when_there_is_nothing(config, r):
    from tests.web_helpers import client_for, text

    scheduled = kiqpy.enqueue("cancel.LongExport", 10, delay=3600)
    web = client_for(config)
    done = web.post("/cancel", {"jid": scheduled, "back": "/scheduled"})
    assert done.status_code == 303 and "/scheduled?done=cancel-waiting" in done.location
    assert r.zcard("schedule") == 0
    assert "Cancelled 1 job: removed before it ran." in text(web.get(done.location))
    missing = web.post("/cancel", {"jid": scheduled, "back": "//evil.example/"})
    assert missing.status_code == 404 and "is waiting or running" in text(missing)
    assert web.post("/cancel", {"jid": scheduled}, token=None).status_code == 403


@pytest.mark.slow
def test_busy_shows_a_cancel_button_for_running_jobs(config, r, redis_url):
    from tests.web_helpers import client_for, text

    with WorkerProcess(redis_url, "--heartbeat-interval", "0.2", require="tests.app_cancel"):
        jid = kiqpy.enqueue("cancel.LongExport", 400)
        wait_for(lambda: any(w.job.jid == jid for _, _, w in kiqpy.api.WorkSet()),
                 message="the job on Busy")
        web = client_for(config)
        assert f'name="jid" value="{jid}"' in text(web.get("/busy"))
        done = web.post("/cancel", {"jid": jid, "back": "/busy"})
        assert "done=cancel-running" in done.location
        wait_for(lambda: r.llen("test:stopped") == 1, message="the job to stop")


def test_queue_and_retry_rows_have_a_cancel_button(config, r):
    from tests.web_helpers import add, client_for, failed, text

    queued = kiqpy.enqueue("cancel.LongExport", 10, queue="exports")
    add(r, "retry", {**failed("cancel.LongExport", [1]), "jid": "e" * 24}, time.time() + 60)
    web = client_for(config)
    assert f'name="jid" value="{queued}"' in text(web.get("/queues/exports"))
    assert f'name="jid" value="{"e" * 24}"' in text(web.get("/retries"))
    done = web.post("/cancel", {"jid": "e" * 24, "back": "/retries"})
    assert "/retries?done=cancel-waiting" in done.location and r.zcard("retry") == 0
