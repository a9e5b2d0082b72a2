"""What Ruby Sidekiq 6.x, 7.x and 8.x write, read by kiqpy's data API; and what kiqpy writes for
them. The fixtures are built field by field from Sidekiq's source (``lib/sidekiq/launcher.rb``
``heartbeat``/``to_data``, ``processor.rb`` ``WORK_STATE``, ``job_retry.rb``) at v6.4.1,
v7.3.9 and v8.1.7; tests/test_sidekiq_interop.py checks 6.4 against a real process."""

from __future__ import annotations

import json
import threading
import time

import pytest

from kiqpy.api import ProcessSet, RetrySet, WorkSet
from kiqpy.keys import Keys
from kiqpy.payload import decode
from tests.conftest import wait_for
from tests.recording import RecordingLog
from tests.test_heartbeat import IDENTITY, Blocking, Parts, payload, release

KEYS = Keys()
NOW = time.time()
RUBY_JOB = {"retry": True, "queue": "critical", "class": "HardJob", "args": [1, "two"],
            "jid": "b4a577edbccf1d805744efa9", "created_at": NOW - 1.5}


def sidekiq_process(version: str) -> tuple[dict[str, str], str]:
    """The heartbeat hash of a Sidekiq process (5 threads, queues critical x2, default x1) and
    its running-jobs key, as ``version`` writes them."""
    info = {"hostname": "web-1", "started_at": NOW - 60, "pid": 4242, "tag": "app",
            "identity": f"web-1:4242:{version}abc", "labels": ["blue"]}
    fields = {"busy": "1", "beat": repr(NOW), "quiet": "false", "rss": "120000",
              "rtt_us": "250"}
    if version == "6":  # 6.4: concurrency and queues in info; the weights are not shown
        info.update(concurrency=5, queues=["critical", "critical", "default"])
        work_key = ":workers"
    elif version == "7":  # 7.3: one weights map per capsule, version, embedded
        info.update(concurrency=5, queues=["critical", "default"],
                    weights=[{"critical": 2, "default": 1}], version="7.3.9", embedded=False)
        work_key = ":work"
    else:  # 8.1: capsules; concurrency only in the hash itself
        info.update(capsules={"default": {"concurrency": 5, "mode": "weighted",
                                          "weights": {"critical": 2, "default": 1}}},
                    queues=["critical", "default"], weights=[{"critical": 2, "default": 1}],
                    version="8.1.7", embedded=False)
        fields["concurrency"] = "5"
        work_key = ":work"
    return {"info": json.dumps(info), **fields}, work_key


@pytest.mark.parametrize("version", ["6", "7", "8"])
def test_kiqpy_reads_a_sidekiq_process_and_its_running_job(config, r, version):
    fields, work_key = sidekiq_process(version)
    identity = json.loads(fields["info"])["identity"]
    r.sadd("processes", identity)
    r.hset(identity, mapping=fields)
    # Sidekiq stores the job as it came off the queue: a JSON string inside the entry
    r.hset(identity + work_key, "ox3k", json.dumps(
        {"queue": "critical", "payload": json.dumps(RUBY_JOB), "run_at": int(NOW)}))

    [process] = ProcessSet()
    assert (process.concurrency, process.busy, process.tag) == (5, 1, "app")
    assert process.queues in (["critical", "default"], ["critical", "critical", "default"])
    if version != "6":
        assert process.weights == {"critical": 2, "default": 1}
        assert process.version.startswith(version)
    [(pid, thread, work)] = WorkSet()
    assert (pid, thread, work.queue) == (identity, "ox3k", "critical")
    assert work.payload["jid"] == RUBY_JOB["jid"] and work.job.display_class == "HardJob"
    assert abs(work.run_at.timestamp() - int(NOW)) < 1


@pytest.mark.parametrize("unit", ["float seconds (6, 7)", "int ms (8)"])
def test_kiqpy_reads_a_sidekiq_retry_in_either_unit(config, r, unit):
    seconds = unit.startswith("float")
    failed = NOW - 30 if seconds else int((NOW - 30) * 1000)
    job = {**RUBY_JOB, "error_message": "boom", "error_class": "RuntimeError",
           "failed_at": failed, "retry_count": 1, "retried_at": failed,
           "enqueued_at": failed}
    r.zadd("retry", {json.dumps(job): NOW + 60})

    [entry] = RetrySet()
    assert abs(entry.failed_at.timestamp() - (NOW - 30)) < 1
    assert abs(entry.retried_at.timestamp() - (NOW - 30)) < 1
    assert abs(entry.created_at.timestamp() - (NOW - 1.5)) < 1
    assert entry.item["error_class"] == "RuntimeError" and entry.item["retry_count"] == 1


@pytest.mark.parametrize("version", ["6", "7", "8"])
def test_kiqpy_writes_its_running_jobs_where_that_sidekiq_reads_them(config, r, version):
    # Given a kiqpy processor in the middle of a job, sidekiq_version set
    parts = Parts(config.replace(serializer="json", sidekiq_version=version), r, RecordingLog())
    release.clear()
    data = payload(Blocking, "slow")
    thread = threading.Thread(target=lambda: parts.manager.processors[0].process("default",
                                                                                 data))
    thread.start()
    try:
        wait_for(lambda: parts.manager.snapshot(), message="the job to start")
        parts.heartbeat.beat()
        # Then 6 finds it in :workers with the payload as a JSON string and run_at in whole
        # seconds (as Sidekiq 6 writes it); 7 and 8 in :work (their JobRecord takes a map)
        key = KEYS.workers(IDENTITY) if version == "6" else KEYS.work(IDENTITY)
        other = KEYS.work(IDENTITY) if version == "6" else KEYS.workers(IDENTITY)
        assert not r.exists(other)
        [raw] = r.hvals(key)
        entry = json.loads(raw)
        job = json.loads(entry["payload"]) if version == "6" else entry["payload"]
        assert job["jid"] == decode(data)["jid"]
        assert type(entry["run_at"]) is (int if version == "6" else float)
        # and kiqpy's own readers find it either way
        [(_, _, work)] = WorkSet()
        assert work.payload["jid"] == job["jid"]
        # Sidekiq 8.1 reads concurrency from the hash; 8.0.9+ the capsules
        fields = r.hgetall(KEYS.process(IDENTITY))
        assert fields[b"concurrency"] == b"10"
        info = json.loads(fields[b"info"])
        assert info["capsules"]["default"]["concurrency"] == 10
        assert info["capsules"]["default"]["weights"] == {"default": 0}
    finally:
        release.set()
        thread.join(10)
    parts.heartbeat.clear()
    assert not r.exists(KEYS.work(IDENTITY), KEYS.workers(IDENTITY))


def test_remote_commands_use_sidekiqs_signal_names(config, r):
    fields, _ = sidekiq_process("6")
    identity = json.loads(fields["info"])["identity"]
    r.sadd("processes", identity)
    r.hset(identity, mapping=fields)
    [process] = ProcessSet()
    process.quiet(), process.dump_threads(), process.stop()
    # Sidekiq passes each to Process.kill; kiqpy's heartbeat maps them (SIGNALS)
    assert r.lrange(f"{identity}-signals", 0, -1)[::-1] == [b"TSTP", b"TTIN", b"TERM"]


def test_kiqpy_heartbeat_obeys_sidekiqs_signal_names(config, r):
    parts = Parts(config, r, RecordingLog())
    r.lpush(KEYS.signals(IDENTITY), "TSTP", "TTIN")
    parts.heartbeat.beat()
    assert parts.signals == ["quiet", "dump"]
