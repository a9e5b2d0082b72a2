"""kiqpy and a real Ruby Sidekiq (Debian's ruby-sidekiq, 6.4) on one Redis, in JSON mode with
``sidekiq_version = "6"``: jobs cross both ways (immediate, scheduled, bulk), retries and dead
entries written by one side read right on the other (types and units), a class one side does
not know is retried with a clear error, each side lists the other's process and running job,
stats and daily history agree, kiqpy's dashboard renders with Sidekiq's data, and each side's
API quiets the other. The Ruby side is tests/interop_jobs.rb (run by
``sidekiq``, and by ``ruby`` for its API); the kiqpy side tests/app_interop.py.

Without ``sidekiq`` on PATH these skip, except under CI=true, where they fail; ``make test``
installs it (as root, with apt-get). One Redis, one Sidekiq and one kiqpy worker serve the
whole module (booting Ruby takes a second); each test uses its own tags."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import kiqpy
from kiqpy.api import DeadSet, History, ProcessSet, RetrySet, Stats, WorkSet
from kiqpy.config import Config
from tests import app_interop
from tests.conftest import wait_for
from tests.redis_server import RedisServer
from tests.web_helpers import client_for, text
from tests.workers import ROOT, LoggedProcess, WorkerProcess

pytestmark = pytest.mark.slow
RUBY_JOBS = ROOT / "tests" / "interop_jobs.rb"


class Peers:
    """The shared Redis, the Sidekiq and kiqpy processes, and a kiqpy configuration for it."""

    def __init__(self, url: str, sidekiq: LoggedProcess, worker: WorkerProcess) -> None:
        self.url, self.sidekiq, self.worker = url, sidekiq, worker
        self.config = Config(redis_url=url, serializer="json", sidekiq_version="6")
        self.redis = redis.Redis.from_url(url)

    def ruby(self, *args: str) -> str:
        """``ruby tests/interop_jobs.rb ARGS``: Sidekiq's client and API on the shared Redis."""
        done = subprocess.run(["ruby", str(RUBY_JOBS), *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, env={**os.environ, "REDIS_URL": self.url})
        assert done.returncode == 0, done.stderr
        return done.stdout

    def state(self) -> dict[str, Any]:
        return json.loads(self.ruby("state"))

    def seen(self, side: str, tag: str) -> list[dict[str, Any]]:
        """The jobs tagged ``tag`` that ``side`` ("ruby" or "python") ran, as it read them."""
        jobs = [json.loads(raw) for raw in self.redis.lrange(f"interop:{side}", 0, -1)]
        return [j for j in jobs if j["args"] and str(j["args"][0]).startswith(tag)]

    def wait_seen(self, side: str, tag: str, count: int = 1) -> list[dict[str, Any]]:
        wait_for(lambda: len(self.seen(side, tag)) >= count, timeout=20,
                 message=f"{count} {tag} job(s) run by {side}:\n{self.logs()}")
        return self.seen(side, tag)

    def identity(self, tag: str) -> str:
        """The identity of the live process tagged ``tag``, as kiqpy's API lists it."""
        def find() -> str | None:
            return next((p.identity for p in ProcessSet(self.config) if p.tag == tag), None)
        return str(wait_for(find, timeout=20, message=f"process {tag}:\n{self.logs()}"))

    def logs(self) -> str:
        return (f"--- sidekiq\n{self.sidekiq.log()[-3000:]}\n"
                f"--- kiqpy\n{self.worker.log()[-3000:]}")


def _unavailable(reason: str) -> None:
    message = (f"{reason}; `make test` installs Debian's ruby-sidekiq (as root), or "
               f"`apt-get install ruby-sidekiq`")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def peers() -> Iterator[Peers]:
    if shutil.which("sidekiq") is None or shutil.which("ruby") is None:
        _unavailable("the sidekiq command is not installed")
    server = RedisServer()
    try:
        server.start()
    except RuntimeError as exc:
        _unavailable(f"cannot start redis-server: {exc}")
    log_path = Path(tempfile.mkstemp(prefix="sidekiq-", suffix=".log")[1])
    env = {**os.environ, "REDIS_URL": server.url}
    sidekiq = LoggedProcess(["sidekiq", "-q", "ruby", "-c", "3", "-t", "1", "-g", "rubyside",
                             "-r", str(RUBY_JOBS)], ROOT, env, log_path)
    worker = WorkerProcess(server.url, "-q", "python", "-c", "3", "-g", "pyside",
                           "--serializer", "json", "--sidekiq-version", "6",
                           require="tests.app_interop")
    with sidekiq, worker:
        peers = Peers(server.url, sidekiq, worker)
        kiqpy.configure(peers.config)
        try:
            yield peers
        finally:
            kiqpy.configure(Config())
            server.cleanup()


def near_now(value: Any) -> float:
    """A Sidekiq 6 timestamp: float epoch seconds of about now."""
    assert type(value) is float and abs(value - time.time()) < 120, value
    return value


# -- jobs cross -----------------------------------------------------------------------------------
def test_kiqpy_pushes_run_in_sidekiq(peers):
    app_interop.RubyRecord.perform_async("k-now")
    app_interop.RubyRecord.perform_in(1, "k-later")
    app_interop.RubyRecord.perform_bulk([["k-bulk-1"], ["k-bulk-2"], ["k-bulk-3"]])
    kiqpy.enqueue("RubyRecord", "k-byname", queue="ruby")

    for tag, count in (("k-now", 1), ("k-later", 1), ("k-bulk", 3), ("k-byname", 1)):
        for job in peers.wait_seen("ruby", tag, count):
            # Sidekiq computes latency from our float-second stamps: small and positive
            assert 0 <= job["latency"] < 15, job
            near_now(job["created_at"]), near_now(job["enqueued_at"])
            assert job["class"] == "RubyRecord" and job["queue"] == "ruby"


def test_sidekiq_pushes_run_in_kiqpy(peers):
    peers.ruby("push", "r-now")
    peers.ruby("schedule", "r-later")
    peers.ruby("bulk", "r-bulk", "3")

    for tag, count in (("r-now", 1), ("r-later", 1), ("r-bulk", 3)):
        for job in peers.wait_seen("python", tag, count):
            assert 0 <= job["latency"] < 15, job
            near_now(job["created_at"]), near_now(job["enqueued_at"])
            assert job["class"] == "PyRecord"


# -- retries --------------------------------------------------------------------------------------
def test_sidekiqs_retry_of_a_kiqpy_job_reads_right_in_kiqpy(peers):
    jid = app_interop.RubyFails.perform_async("k-fails")

    def entry():
        return next((e for e in RetrySet(peers.config) if e.jid == jid), None)
    retry = wait_for(entry, timeout=20, message=f"Sidekiq's retry entry\n{peers.logs()}")

    item = retry.item
    assert item["error_class"] == "ArgumentError" and item["retry_count"] == 0
    assert item["error_message"] == "ruby fails k-fails"
    # one unit throughout: our created_at/enqueued_at and Sidekiq's failed_at, all float s
    for field in ("created_at", "enqueued_at", "failed_at"):
        near_now(item[field])
    assert abs(retry.failed_at.timestamp() - time.time()) < 120
    assert 10 < retry.score - time.time() < 120  # Sidekiq's first delay: 15 s plus jitter


def test_kiqpys_retry_of_a_sidekiq_job_reads_right_in_sidekiq(peers):
    jid = peers.ruby("fail", "r-fails").strip()
    peers.wait_seen("python", "r-fails")

    def entry():
        return next((e for e in peers.state()["retries"] if e["jid"] == jid), None)
    retry = wait_for(entry, timeout=20, message=f"kiqpy's retry entry\n{peers.logs()}")

    assert retry["class"] == "PyFails" and retry["retry_count"] == 0
    assert retry["error_class"] == "ValueError"
    assert retry["error_message"] == "python fails r-fails"
    near_now(retry["failed_at"]), near_now(retry["created_at"])
    assert time.time() < retry["at"] < time.time() + 300
    assert retry["retried_at"] is None


def test_dead_entries_written_by_one_side_read_right_on_the_other(peers):
    # Given a job each side kills at once (retry 0)
    py_jid = kiqpy.enqueue("RubyFails", "k-dead", queue="ruby", retry=0)
    ruby_jid = peers.ruby("dead", "r-dead").strip()

    # Then kiqpy's DeadSet reads Sidekiq's entry, and Sidekiq's DeadSet reads kiqpy's
    def in_kiqpy():
        return next((e for e in DeadSet(peers.config) if e.jid == py_jid), None)
    entry = wait_for(in_kiqpy, timeout=20, message=f"Sidekiq's dead entry\n{peers.logs()}")
    assert entry.item["error_class"] == "ArgumentError"
    near_now(entry.item["failed_at"]), near_now(entry.item["created_at"])
    assert abs(entry.score - time.time()) < 120

    def in_sidekiq():
        return next((e for e in peers.state()["dead"] if e["jid"] == ruby_jid), None)
    dead = wait_for(in_sidekiq, timeout=20, message=f"kiqpy's dead entry\n{peers.logs()}")
    assert dead["class"] == "PyFails" and dead["error_class"] == "ValueError"
    near_now(dead["failed_at"])
    assert abs(dead["at"] - time.time()) < 120


def test_a_class_the_other_side_does_not_know_is_retried_with_a_clear_error(peers):
    # Given a Python name on Sidekiq's queue, and a Ruby name on kiqpy's
    py_jid = kiqpy.enqueue("PyOnlyJob", "k-unknown", queue="ruby")
    ruby_jid = peers.ruby("unknown", "r-unknown").strip()

    # Then each side fails it as any job that raised, into the retry set, saying why
    def both():
        entries = {e.jid: e.item for e in RetrySet(peers.config)}
        return entries if py_jid in entries and ruby_jid in entries else None
    entries = wait_for(both, timeout=20, message=f"both retries\n{peers.logs()}")
    assert entries[py_jid]["error_class"] == "NameError"
    assert "PyOnlyJob" in entries[py_jid]["error_message"]
    assert entries[ruby_jid]["error_class"].endswith("UnknownJobError")
    assert "no job class registered as 'RubyOnly'" in entries[ruby_jid]["error_message"]


# -- processes and running jobs -------------------------------------------------------------------
def test_kiqpy_lists_sidekiqs_process_and_its_running_job(peers):
    identity = peers.identity("rubyside")
    # Sidekiq 6 writes its running jobs every 5 s: the job outlasts two beats, so it is still
    # running (and counted busy) while the checks below read, even on a loaded machine
    app_interop.RubySlow.perform_async(15)

    def running():
        return next((w for p, _, w in WorkSet(peers.config) if p == identity), None)
    work = wait_for(running, timeout=20, message=f"Sidekiq's running job\n{peers.logs()}")

    assert work.queue == "ruby" and work.job.display_class == "RubySlow"
    busy = text(client_for(peers.config).get("/busy"))
    assert "RubySlow" in busy and "malformed" not in busy
    assert abs(work.run_at.timestamp() - time.time()) < 30
    process = ProcessSet(peers.config).find(identity)
    assert process is not None
    assert (process.queues, process.concurrency) == (["ruby"], 3)
    assert process.busy >= 1 and not process.is_quiet


def test_sidekiq_lists_kiqpys_process_and_its_running_job(peers):
    identity = peers.identity("pyside")
    jid = peers.ruby("slow", "3").strip()

    def running():
        state = peers.state()
        return state if any(w["jid"] == jid for w in state["work"]) else None
    state = wait_for(running, timeout=20, message=f"kiqpy's running job\n{peers.logs()}")

    [work] = [w for w in state["work"] if w["jid"] == jid]
    assert (work["process"], work["queue"], work["class"]) == (identity, "python", "PySlow")
    assert abs(work["run_at"] - time.time()) < 30
    [process] = [p for p in state["processes"] if p["identity"] == identity]
    assert (process["queues"], process["concurrency"], process["tag"]) == (["python"], 3,
                                                                           "pyside")
    assert process["busy"] >= 1 and process["quiet"] is False
    near_now(process["started_at"])


def test_stats_daily_history_and_the_dashboard_agree_with_sidekiq(peers):
    # Both sides count into the same keys; Sidekiq's API and kiqpy's read the same numbers
    def agree():
        ruby, stats = peers.state(), Stats(peers.config)
        history = History(days=1, config=peers.config)
        ours = (stats.processed, stats.failed, sum(history.processed.values()),
                sum(history.failed.values()))
        theirs = (ruby["processed"], ruby["failed"], ruby["processed_today"],
                  ruby["failed_today"])
        return ours if ours == theirs else None
    processed, failed, _, _ = wait_for(agree, timeout=20, message="the same counts")
    assert processed >= 10 and failed >= 2

    # kiqpy's dashboard renders every page with Sidekiq's processes, retries and dead jobs
    web = client_for(peers.config)
    for path in ("/", "/busy", "/queues", "/retries", "/scheduled", "/dead", "/metrics",
                 "/keys"):
        response = web.get(path)
        assert response.status_code == 200, (path, text(response)[:2000])
    busy = text(web.get("/busy"))
    assert "rubyside" in busy and "pyside" in busy
    assert "ArgumentError" in text(web.get("/retries"))


# -- remote control (last: it leaves both sides quiet) ------------------------------------------
def test_quiet_from_kiqpys_api_quiets_sidekiq(peers):
    identity = peers.identity("rubyside")
    process = ProcessSet(peers.config).find(identity)
    assert process is not None

    process.quiet()

    wait_for(lambda: ProcessSet(peers.config).find(identity).is_quiet, timeout=20,
             message=f"Sidekiq to be quiet\n{peers.logs()}")
    assert "unsupported signal" not in peers.sidekiq.log()
    assert [p["quiet"] for p in peers.state()["processes"] if p["identity"] == identity] == [True]


def test_quiet_from_sidekiqs_api_quiets_kiqpy(peers):
    identity = peers.identity("pyside")

    peers.ruby("quiet", identity)

    wait_for(lambda: ProcessSet(peers.config).find(identity).is_quiet, timeout=20,
             message=f"kiqpy to be quiet\n{peers.logs()}")
    assert [p["quiet"] for p in peers.state()["processes"] if p["identity"] == identity] == [True]
