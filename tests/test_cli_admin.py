"""The admin commands against a real Redis: ``kiqpy enqueue``, ``retry``, ``kill``, ``delete``,
``clear`` and ``process`` (click's CliRunner, and real subprocesses for a worker, a terminal's
confirmation and a pipe's refusal)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import kiqpy
from kiqpy.api import DeadSet, ProcessSet, Queue, RetrySet, ScheduledSet
from kiqpy.cli import main
from kiqpy.failures import malformed_job
from kiqpy.payload import encode, new_jid, now_ms
from tests.conftest import queued_jobs, scheduled_jobs, wait_for
from tests.workers import ROOT, WorkerProcess, identity_of, in_a_terminal

APP = "tests.app_admin"


def cli(redis_url: str, *args: str):
    return CliRunner().invoke(main, [*args, "--redis-url", redis_url])


def entry(r, key: str, jid: str | None = None, score: float | None = None, **extra) -> str:
    """A job in the sorted set ``key`` (retry, dead, schedule), as the worker stores one."""
    jid = jid or new_jid()
    job = {"class": "Record", "args": [jid], "queue": "default", "jid": jid, "retry": True,
           "created_at": now_ms(), **extra}
    r.zadd(key, {encode(job): time.time() + 3600 if score is None else score})
    return jid


# -- enqueue -------------------------------------------------------------------------------------
def test_enqueue_pushes_a_class_by_name_without_importing_it(config, r, redis_url):
    result = cli(redis_url, "enqueue", "Billing::Invoice", '["acme", 5, {"vat": true}]')
    assert result.exit_code == 0, result.output
    [job] = queued_jobs(r)
    assert result.output == f"enqueued Billing::Invoice on default: jid {job['jid']}\n"
    assert (job["class"], job["args"], job["queue"]) == ("Billing::Invoice",
                                                         ["acme", 5, {"vat": True}], "default")

    result = cli(redis_url, "enqueue", "Billing::Invoice", "--queue", "mail", "--json")
    data = json.loads(result.output)
    [job] = queued_jobs(r, "mail")
    assert data == {"jid": job["jid"], "class": "Billing::Invoice", "queue": "mail", "at": None}
    assert job["args"] == []


def test_enqueue_in_and_at_schedule_the_job_and_a_past_time_pushes_it_now(config, r,
                                                                         redis_url):
    before = time.time()
    data = json.loads(cli(redis_url, "enqueue", "Nightly", "[1]", "--in", "60", "--json").output)
    [(job, score)] = scheduled_jobs(r)
    assert job["jid"] == data["jid"] and score == data["at"] and score >= before + 60
    result = cli(redis_url, "enqueue", "Nightly", "[2]", "--at", "2099-01-02T03:04:05+00:00")
    assert "scheduled Nightly on default for 2099-01-0" in result.output
    assert max(score for _, score in scheduled_jobs(r)) == 4071006245.0
    cli(redis_url, "enqueue", "Nightly", "[3]", "--at", str(before - 10))
    assert [job["args"] for job in queued_jobs(r)] == [[3]]


@pytest.mark.parametrize("args, message", [
    (["X", "[1, 2"], "is not JSON"),
    (["X", '{"a": 1}'], "is a JSON dict, not an array"),
    (["X", "5"], "is a JSON int, not an array"),
    (["X", "[]", "--in", "5", "--at", "2099-01-01"], "give --in or --at, not both"),
    (["X", "[]", "--at", "tomorrow"], "neither an ISO 8601 time"),
    (["X", "[]", "--in", "-1"], "-1.0 is not in the range x>=0"),
])
def test_enqueue_refuses_bad_input_with_a_usage_error(config, r, redis_url, args, message):
    result = cli(redis_url, "enqueue", *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert r.dbsize() == 0


def test_enqueue_with_require_resolves_a_registered_class_and_its_options(config, r,
                                                                        redis_url):
    result = cli(redis_url, "enqueue", "Report", '["q3"]', "-r", APP)
    assert result.exit_code == 0, result.output
    [job] = queued_jobs(r, "reports")
    assert (job["class"], job["retry"]) == ("tests.app_admin.Report", 3)

    result = cli(redis_url, "enqueue", "Reprot", "[]", "-r", APP)
    assert result.exit_code == 2
    assert "no job registered as 'Reprot' by tests.app_admin" in result.output
    assert "(did you mean tests.app_admin.Report" in result.output
    result = cli(redis_url, "enqueue", "tests.app_admin.Reprot", "[]", "-r", APP)
    assert "(did you mean tests.app_admin.Report" in result.output
    result = cli(redis_url, "enqueue", "Report", "[]", "-r", APP, "-r", "tests.app_admin_more")
    assert result.exit_code == 2 and ("2 registered jobs are called that: "
                                      "tests.app_admin.Report, tests.app_admin_more.Report; "
                                      "give the full name") in result.output
    result = cli(redis_url, "enqueue", "Report", "[]", "-r", "tests.no_such_module")
    assert result.exit_code == 2 and "cannot import 'tests.no_such_module'" in result.output


# -- retry, kill, delete, clear ------------------------------------------------------------------
def test_retry_takes_jids_from_the_retry_and_dead_sets_to_their_queues(config, r, redis_url):
    failed = entry(r, "retry", retry_count=1)
    dead = entry(r, "dead", score=time.time())
    result = cli(redis_url, "retry", failed, dead)
    assert result.exit_code == 0, result.output
    assert result.output == f"retried {failed} (from retry)\nretried {dead} (from dead)\n"
    assert {job["jid"] for job in queued_jobs(r)} == {failed, dead}
    # The manual retry is not an attempt.
    assert next(j for j in queued_jobs(r) if j["jid"] == failed)["retry_count"] == 0
    assert RetrySet(config).size == DeadSet(config).size == 0


def test_an_unknown_jid_is_an_error_and_nothing_changes(config, r, redis_url):
    failed = entry(r, "retry")
    result = cli(redis_url, "retry", failed, "0123456789abcdef01234567")
    assert result.exit_code == 1
    assert ("no job with jid 0123456789abcdef01234567 in the retry set or dead set; nothing "
            "was changed") in result.output
    assert RetrySet(config).size == 1 and not queued_jobs(r)
    result = cli(redis_url, "kill", "nope", "--yes")
    assert result.exit_code == 1 and "in the retry set or schedule" in result.output
    result = cli(redis_url, "delete", "nope", "--from", "dead", "--yes")
    assert result.exit_code == 1 and "no job with jid nope in the dead set" in result.output


def test_retry_and_kill_all_move_a_whole_set(config, r, redis_url):
    retries = [entry(r, "retry") for _ in range(3)]
    scheduled = [entry(r, "schedule") for _ in range(2)]
    result = cli(redis_url, "kill", "--all", "--from", "schedule", "--yes", "--json")
    assert json.loads(result.output) == {"killed": 2, "from": "schedule"}
    assert {e.jid for e in DeadSet(config)} == set(scheduled)
    assert cli(redis_url, "retry", "--all", "--yes").output == "retried 3 jobs (from retry)\n"
    assert {job["jid"] for job in queued_jobs(r)} == set(retries)
    result = cli(redis_url, "retry", "--all", "--from", "dead", "--yes", "--json")
    assert json.loads(result.output) == {"retried": 2, "from": "dead"}
    assert cli(redis_url, "retry", "--all", "x").exit_code == 2
    assert "needs JIDs, or --all" in cli(redis_url, "kill").output


def test_kill_and_delete_find_the_set_that_holds_each_jid(config, r, redis_url):
    failed, scheduled, dead = entry(r, "retry"), entry(r, "schedule"), entry(r, "dead")
    result = cli(redis_url, "kill", scheduled, failed, "--yes", "--json")
    assert json.loads(result.output) == {
        "killed": [{"jid": scheduled, "from": "schedule"}, {"jid": failed, "from": "retry"}],
        "failed": []}
    assert {e.jid for e in DeadSet(config)} == {failed, scheduled, dead}
    assert cli(redis_url, "delete", dead, failed, "--yes").output == (
        f"deleted {dead} (from dead)\ndeleted {failed} (from dead)\n")
    assert [e.jid for e in DeadSet(config)] == [scheduled]
    assert cli(redis_url, "delete", scheduled, "--from", "retry", "--yes").exit_code == 1


def test_a_dead_entry_that_is_not_a_job_cannot_be_retried_and_says_why(config, r, redis_url):
    # Given the record the worker writes for bytes that were not a job
    record = malformed_job("default", b"\xc1garbage", "not a valid msgpack payload")
    r.zadd("dead", {encode(record): time.time()})
    jid = record["jid"]
    # When it is retried, then it stays, and the command says why and exits 1
    result = cli(redis_url, "retry", jid)
    assert result.exit_code == 1
    assert f"not retried: {jid}: not a job, so it cannot be queued" in result.output
    assert DeadSet(config).size == 1 and not queued_jobs(r)
    assert cli(redis_url, "delete", jid, "--yes").exit_code == 0 and DeadSet(config).size == 0


def test_clear_empties_a_set_or_a_queue(config, r, redis_url):
    for _ in range(3):
        entry(r, "retry")
    entry(r, "dead")
    kiqpy.enqueue("Record", 1, queue="mail")
    Queue("mail", config).pause()
    assert cli(redis_url, "clear", "retry", "--yes").output == (
        "cleared the retry set: 3 jobs deleted\n")
    entry(r, "schedule")
    assert cli(redis_url, "clear", "schedule", "--yes").output == (
        "cleared the schedule: 1 jobs deleted\n")
    result = cli(redis_url, "clear", "queue", "mail", "--yes", "--json")
    assert json.loads(result.output) == {"cleared": "mail", "queue": True, "deleted": 1}
    assert Queue("mail", config).size == 0 and Queue("mail", config).paused
    assert DeadSet(config).size == 1 and RetrySet(config).size == 0
    assert "needs the queue's NAME" in cli(redis_url, "clear", "queue", "--yes").output
    assert "takes no NAME" in cli(redis_url, "clear", "dead", "mail", "--yes").output


def test_destructive_commands_without_yes_and_without_a_terminal_are_usage_errors(
        config, r, redis_url):
    jid = entry(r, "retry")
    for args in (["delete", jid], ["kill", jid], ["clear", "retry"], ["retry", "--all"]):
        result = cli(redis_url, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "stdin is not a terminal; pass --yes" in result.output
    assert RetrySet(config).size == 1
    # The plain retry of given jids changes nothing for good, so it asks nobody.
    assert cli(redis_url, "retry", jid).exit_code == 0


def _in_a_terminal(redis_url: str, args: list[str], answer: str) -> tuple[int, str]:
    env = {**os.environ, "REDIS_URL": redis_url}
    return in_a_terminal([sys.executable, "-m", "kiqpy.cli", *args], env, ROOT, answer)


def test_on_a_terminal_a_destructive_command_asks_first(config, r, redis_url):
    jid = entry(r, "dead")
    status, text = _in_a_terminal(redis_url, ["delete", jid], "n")
    assert status == 1 and "Delete 1 job(s) for good. Continue? [y/N]" in text
    assert "Aborted" in text and DeadSet(config).size == 1
    status, text = _in_a_terminal(redis_url, ["clear", "dead"], "y")
    assert status == 0 and "Delete all 1 jobs of the dead set. Continue?" in text
    assert "cleared the dead set: 1 jobs deleted" in text and DeadSet(config).size == 0


# -- processes -----------------------------------------------------------------------------------
def test_process_list_quiet_dump_and_stop_a_real_worker(config, r, redis_url):
    with WorkerProcess(redis_url, "-g", "admin-test", "-q", "default,reports",
                       require=APP) as worker:
        identity = identity_of(worker)
        wait_for(lambda: ProcessSet(config).find(identity), message="the first heartbeat")
        lines = cli(redis_url, "process", "list").output.splitlines()
        assert lines[0].split()[:3] == ["IDENTITY", "TAG", "QUEUES"]
        assert lines[1].split()[:3] == [identity, "admin-test", "default,reports"]
        assert lines[1].endswith("running")
        [row] = json.loads(cli(redis_url, "process", "--json").output)
        assert (row["identity"], row["pid"], row["pending"]) == (identity, worker.pid, [])

        # ID may be a unique prefix: host:pid.
        prefix = identity.rsplit(":", 1)[0]
        result = cli(redis_url, "process", "dump", prefix)
        assert result.output == (f"asked {identity} to log the stack of every thread; it acts "
                                 f"at its next heartbeat\n")
        worker.wait_for_log("thread dump")
        assert cli(redis_url, "process", "quiet", identity).exit_code == 0
        wait_for(lambda: ProcessSet(config).find(identity).is_quiet, message="quiet")
        assert cli(redis_url, "process", "list").output.splitlines()[1].endswith("quiet")

        result = cli(redis_url, "process", "stop", "nohost:1")
        assert result.exit_code == 1 and f"no live process 'nohost:1' (live: {identity})" in (
            result.output)
        assert cli(redis_url, "process", "stop", identity).exit_code == 2  # no --yes, no tty
        assert worker.process.poll() is None
        result = cli(redis_url, "process", "stop", identity, "--yes", "--json")
        assert json.loads(result.output) == {"action": "stop", "processes": [identity]}
        assert worker.wait(30) == 0
    assert cli(redis_url, "process", "quiet").exit_code == 2
    assert cli(redis_url, "process", "list").output == "no live processes\n"


def test_a_real_enqueue_subprocess_runs_its_job_in_a_real_worker(config, r, redis_url):
    env = {**os.environ, "REDIS_URL": redis_url}
    done = subprocess.run([sys.executable, "-m", "kiqpy.cli", "enqueue", "Record", '["cli"]',
                           "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    jid = json.loads(done.stdout)["jid"]
    with WorkerProcess(redis_url):
        wait_for(lambda: r.lrange("test:jids", 0, -1) == [jid.encode()], message="the job ran")
    assert ScheduledSet(config).size == 0


def test_the_commands_honour_the_namespace_and_say_when_redis_is_unreachable(r, redis_url,
                                                                           closed_url):
    data = json.loads(cli(redis_url, "enqueue", "Record", "[1]", "--in", "600", "--json",
                          "--namespace", "shop").output)
    assert r.zcard("shop:schedule") == 1 and not r.exists("schedule")
    result = cli(redis_url, "kill", data["jid"], "--yes", "--namespace", "shop")
    assert result.output == f"killed {data['jid']} (from schedule)\n"
    assert r.zcard("shop:dead") == 1
    assert cli(redis_url, "kill", data["jid"], "--yes").exit_code == 1  # not in the bare keys

    for args in (["enqueue", "Record"], ["retry", "x"], ["clear", "dead", "--yes"],
                 ["process", "list"]):
        result = cli(closed_url, *args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("Error: cannot reach Redis at redis://127.0.0.1:"), (
            result.output)
