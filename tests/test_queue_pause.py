"""Pausing queues: the API, ``kiqpy queue``, ``kiqpy stats``, and real workers that stop
taking a paused queue's jobs within 2 s, finish the running ones, and lose nothing."""

from __future__ import annotations

import json

from click.testing import CliRunner

import kiqpy
from kiqpy.api import Queue
from kiqpy.cli import main
from tests import app_limits
from tests.conftest import wait_for
from tests.workers import WorkerProcess, log_events

APP = "tests.app_limits"


def cli(*args: str, redis_url: str):
    return CliRunner().invoke(main, [*args, "--redis-url", redis_url], catch_exceptions=False)


def test_pause_unpause_and_paused(config, r):
    mail = Queue("mail")
    assert mail.paused is False
    assert mail.pause() is True and mail.pause() is False
    assert mail.paused is True and Queue.paused_names() == ["mail"]
    kiqpy.enqueue("Record", 1, queue="mail")
    kiqpy.enqueue("Record", 2)
    rows = {row.queue.name: row.paused for row in Queue.listing().rows}
    assert rows == {"mail": True, "default": False}
    assert mail.unpause() is True and mail.unpause() is False
    assert mail.paused is False and Queue.paused_names() == []


def test_the_queue_command_pauses_lists_and_unpauses(config, r, redis_url):
    kiqpy.enqueue("Record", 1, queue="mail")
    assert cli("queue", "pause", "mail", redis_url=redis_url).output == "paused mail\n"
    assert cli("queue", "pause", "later", redis_url=redis_url).exit_code == 0
    out = cli("queue", "list", redis_url=redis_url).output.splitlines()
    assert out[0].split() == ["NAME", "SIZE", "LATENCY", "PAUSED"]
    assert out[1].split()[0::3] == ["later", "paused"] and out[2].split()[::3] == ["mail", "paused"]
    listed = json.loads(cli("queue", "--json", redis_url=redis_url).output)
    assert [(q["name"], q["size"], q["paused"]) for q in listed] == [
        ("later", 0, True), ("mail", 1, True)]
    result = cli("queue", "unpause", "mail", redis_url=redis_url)
    assert result.output == "unpaused mail\n" and not Queue("mail").paused
    result = cli("queue", "pause", redis_url=redis_url)
    assert result.exit_code == 2 and "needs the queue's NAME" in result.output


def test_stats_shows_paused_queues(config, r, redis_url):
    kiqpy.enqueue("Record", 1, queue="mail")
    kiqpy.enqueue("Record", 1)
    assert "PAUSED" not in cli("stats", "queues", redis_url=redis_url).output
    Queue("mail").pause()
    lines = cli("stats", "queues", redis_url=redis_url).output.splitlines()
    start = lines.index("---- Queues (2) ----")
    assert lines[start + 1].split() == ["NAME", "SIZE", "LATENCY", "PAUSED"]
    rows = {line.split()[0]: line.split()[3:] for line in lines[start + 2:start + 4]}
    assert rows == {"default": [], "mail": ["paused"]}
    data = json.loads(cli("stats", "queues", "--json", redis_url=redis_url).output)
    assert {q["name"]: q["paused"] for q in data["queues"]} == {"default": False, "mail": True}


def starts(r, queue: str) -> list[dict]:
    return [json.loads(x) for x in r.lrange(f"test:paced:{queue}", 0, -1)]


def redis_now(r) -> float:
    seconds, micros = r.time()
    return seconds + micros / 1e6


def test_workers_stop_taking_a_paused_queue_within_2s_and_resume_on_unpause(
        config, r, redis_url):
    # Given 2 workers busy with two queues, one by weight and one by pattern, and plenty of
    # short jobs in each
    app_limits.Paced.set(queue="mail").perform_bulk([[n, 0.02] for n in range(400)])
    app_limits.Paced.set(queue="other").perform_bulk([[n, 0.02] for n in range(1000)])
    with WorkerProcess(redis_url, "-c", "5", "-q", "mail:2,other:1", require=APP) as one, \
            WorkerProcess(redis_url, "-c", "5", "-q", "*", require=APP) as two:
        wait_for(lambda: r.llen("test:paced:mail") >= 20, message="mail jobs to start")
        # When the mail queue is paused
        Queue("mail").pause()
        paused_at = redis_now(r)
        # Then no mail job starts more than 2 s later, while the other queue goes on
        wait_for(lambda: redis_now(r) > paused_at + 3, timeout=5, interval=0.05)
        late = [s for s in starts(r, "mail") if s["at"] > paused_at + 2]
        assert late == []
        assert any(s["at"] > paused_at + 1.5 for s in starts(r, "other"))
        before_unpause = r.llen("test:paced:mail")
        assert r.llen("queue:mail") > 0
        # When it is unpaused, its jobs run again, all of them, each once
        Queue("mail").unpause()
        wait_for(lambda: r.llen("test:paced:mail") > before_unpause, timeout=5,
                 message="mail jobs to start again")
        wait_for(lambda: r.llen("test:paced_done") >= 1400, timeout=60, interval=0.1,
                 message="every job to finish")
        done = [x.decode() for x in r.lrange("test:paced_done", 0, -1)]
        assert len(done) == len(set(done)) == 1400
        assert r.llen("queue:mail") == r.llen("queue:other") == 0
        for worker in (one, two):
            events = [e.get("event") for e in log_events(worker)]
            assert "queue paused" in events and "queue unpaused" in events
            assert "fail" not in events


def test_a_job_pushed_to_a_paused_queue_waits_and_an_idle_worker_takes_it_after_unpause(
        config, r, redis_url):
    # Given an idle worker and a paused queue
    Queue("mail").pause()
    with WorkerProcess(redis_url, "-q", "mail,default", require=APP) as worker:
        worker.wait_for_log('"queue paused"')
        # When jobs are pushed to it (and to another queue)
        app_limits.Paced.set(queue="mail").perform_async(1, 0)
        app_limits.Paced.perform_async(2, 0)
        wait_for(lambda: r.llen("test:paced:default") == 1, message="the default job")
        # Then they wait (the waiters blocked on the paused queue do not take them)
        wait_for(lambda: redis_now(r) > float(json.loads(
            r.lindex("test:paced:default", 0))["at"]) + 1.5, timeout=5, interval=0.05)
        assert r.llen("queue:mail") == 1 and r.llen("test:paced:mail") == 0
        # and run once it is unpaused
        Queue("mail").unpause()
        wait_for(lambda: r.llen("test:paced:mail") == 1, timeout=5, message="the mail job")
