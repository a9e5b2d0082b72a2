"""Execution metrics: counted in memory per class and minute, written by the heartbeat (no Redis
command per job), kept through a Redis outage, read back by kiqpy.api.Metrics with percentiles
and deploy marks."""

from __future__ import annotations

import pytest

from kiqpy.api import Metrics, mark_deploy
from kiqpy.histogram import BUCKETS_MS, bucket, percentile
from kiqpy.keys import Keys
from kiqpy.log import get_logger
from kiqpy.server.metrics import MetricsWriter, Recorder
from tests.conftest import wait_for
from tests.redis_server import RedisServer
from tests.workers import WorkerProcess


def test_buckets_and_percentiles():
    assert [bucket(ms) for ms in (0.2, 1, 1.5, 300_000, 300_001)] == [0, 0, 1, 15, 16]
    counts = [0] * (len(BUCKETS_MS) + 1)
    counts[bucket(3)] = 90     # 90 jobs of about 3 ms
    counts[bucket(700)] = 10   # 10 of about 0.7 s
    assert percentile(counts, 0.5) == 0.005
    assert percentile(counts, 0.95) == 1.0
    assert percentile([0] * len(counts), 0.5) is None


def test_a_recorder_keeps_each_minute_apart_and_starts_afresh_after_a_take(monkeypatch):
    # Given a clock at the end of one minute, then in the next, then back (an NTP step)
    import kiqpy.server.metrics as metrics
    clock = iter([119.9, 120.0, 120.5, 100.0, 130.0])
    monkeypatch.setattr(metrics.time, "time", lambda: next(clock))
    recorder = Recorder()
    recorder.record("A", 0.003, False)   # minute 1
    recorder.record("A", 0.2, True)      # minute 2
    recorder.record("B", 0.0005, False)  # minute 2
    recorder.record("A", 0.001, False)   # minute 1 again (clock stepped back)
    counts = recorder.take()
    assert counts[("A", 1)][:3] == [2, 0, 4.0]
    assert counts[("A", 2)][:3] == [1, 1, 200.0]
    assert counts[("A", 2)][3 + bucket(200.0)] == 1
    assert counts[("B", 2)][0] == 1
    # When the heartbeat has taken the counts, Then the next record starts a new row
    recorder.record("A", 0.001, False)   # minute 2
    assert recorder.take() == {("A", 2): recorder_row(1.0)}


def recorder_row(ms: float) -> list[float]:
    row = [1.0, 0.0, ms] + [0.0] * (len(BUCKETS_MS) + 1)
    row[3 + bucket(ms)] = 1
    return row


def test_counts_are_written_in_one_round_trip_per_flush_and_read_back(config, r):
    recorders = [Recorder(), Recorder()]
    writer = MetricsWriter(config, r, Keys(), recorders, get_logger())
    for n in range(100):
        recorders[n % 2].record("Invoice", 0.003, failed=False)
    recorders[0].record("Invoice", 0.7, failed=True)
    recorders[1].record("Mailer", 12.0, failed=False)
    r.config_resetstat()
    assert writer.flush() == 2
    # A few commands per class and minute (p, f, ms, a bucket each, EXPIRE), none per job
    assert int(r.info("stats")["total_commands_processed"]) <= 11 + 1  # (+ the INFO)
    [mailer, invoice] = Metrics(config, r).top(minutes=5)  # the most total time first
    assert (invoice.job_class, invoice.processed, invoice.failed) == ("Invoice", 101, 1)
    assert invoice.milliseconds == 1000 and round(invoice.avg_seconds, 4) == 0.0099
    assert (invoice.p50_seconds, invoice.p99_seconds, invoice.percentile(1.0)) == (
        0.005, 0.005, 1.0)
    assert (mailer.job_class, mailer.total_seconds, mailer.p95_seconds) == ("Mailer", 12.0, 30.0)
    # Every minute key expires with the retention
    [key] = r.keys("kiqpy:metrics:[0-9]*")
    assert 0 < r.ttl(key) <= config.metrics_retention


def test_counts_survive_a_flush_while_redis_is_down(config):
    server = RedisServer().start()
    try:
        import redis

        client = redis.Redis.from_url(server.url, socket_timeout=0.5)
        recorder = Recorder()
        writer = MetricsWriter(config, client, Keys(), [recorder], get_logger())
        recorder.record("Job", 0.01, failed=False)
        server.stop()
        assert writer.flush() == 0  # kept for the next beat
        recorder.record("Job", 0.01, failed=False)
        server.start()
        assert writer.flush() == 1
        [row] = Metrics(config.replace(redis_url=server.url), client).top(minutes=5)
        assert row.processed == 2
    finally:
        server.cleanup()


def test_series_per_minute_and_deploy_marks(config, r):
    now = 1_900_000_000.0
    keys = Keys()
    minute = int(now) // 60
    r.hset(keys.metrics(minute - 2), mapping={"A|p": 3, "A|ms": 30, "A|h3": 3, "AB|p": 9})
    r.hset(keys.metrics(minute), mapping={"A|p": 1, "A|f": 1, "A|ms": 5, "A|h2": 1})
    series = Metrics(config, r).series("A", minutes=3, now=now)
    assert [row.processed for _, row in series] == [3, 0, 1]   # "AB" is another class
    assert series[-1][1].failure_rate == 1.0
    assert mark_deploy("v2 rounding fix", config, r, at=now - 30) == "v2 rounding fix"
    [mark] = Metrics(config, r).deploys(minutes=60, now=now)
    assert mark.label == "v2 rounding fix" and mark.at.timestamp() == now - 30


def test_mark_deploy_defaults_to_the_git_commit(config, r, monkeypatch, tmp_path):
    label = mark_deploy(config=config, redis_client=r)
    assert label  # a short hash and subject in this checkout, or "deploy" outside one
    monkeypatch.chdir(tmp_path)
    assert mark_deploy(config=config, redis_client=r) == "deploy"


@pytest.mark.slow
def test_a_worker_counts_its_jobs_per_class_without_a_redis_command_per_job(config, r,
                                                                            redis_url):
    from tests import app_jobs

    with WorkerProcess(redis_url, "--heartbeat-interval", "0.3") as worker:
        for n in range(20):
            app_jobs.Record.perform_async(n)
        app_jobs.Fail.set(retry=False).perform_async("boom")
        wait_for(lambda: {m.job_class: m.processed for m in Metrics(config, r).top(5)}
                 == {"Record": 20, "Fail": 1}, timeout=20, message="the metrics of 21 jobs")
        worker.terminate()
        assert worker.wait() == 0
    rows = {m.job_class: m for m in Metrics(config, r).top(5)}
    assert rows["Fail"].failed == 1 and rows["Record"].failed == 0
    assert sum(rows["Record"].histogram) == 20



def test_the_metrics_pages_show_classes_a_histogram_and_deploy_marks(config, r):
    from tests.web_helpers import client_for, text

    recorder = Recorder()
    for _ in range(9):
        recorder.record("Invoice", 0.003, failed=False)
    recorder.record("Invoice", 2.5, failed=True)
    MetricsWriter(config, r, Keys(), [recorder], get_logger()).flush()
    mark_deploy("v7 faster invoices", config, r)
    web = client_for(config)
    page = text(web.get("/metrics?period=8h&sort=failed"))
    assert "Invoice" in page and "10.0" in page  # failure %
    detail = web.get("/metrics/Invoice?period=1h")
    assert detail.status_code == 200
    body = text(detail)
    assert "p50 / p95 / p99" in body and "deploy: v7 faster invoices" in body
    assert "<polyline" in body and "≤ 5 ms" in body
    assert web.get("/metrics?period=2y").status_code == 400


def test_the_readmes_mark_deploy_command_records_the_git_commit(config, r, redis_url):
    import os
    import subprocess
    import sys

    from tests.workers import ROOT

    env = {**os.environ, "REDIS_URL": redis_url}
    env.pop("KIQPY_REDIS_URL", None)
    done = subprocess.run([sys.executable, "-c", "import kiqpy.api; kiqpy.api.mark_deploy()"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    [mark] = Metrics(config, r).deploys(minutes=5)
    head = subprocess.run(["git", "log", "-1", "--format=%h %s"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    assert mark.label == (head[:200] or "deploy")


@pytest.mark.slow
def test_no_metrics_counts_nothing(config, r, redis_url):
    from tests import app_jobs

    with WorkerProcess(redis_url, "--heartbeat-interval", "0.3", "--no-metrics") as worker:
        app_jobs.Record.perform_async(1)
        wait_for(lambda: r.llen("test:ran") == 1, message="the job")
        worker.terminate()
        assert worker.wait() == 0
    assert Metrics(config, r).top(5) == [] and not r.keys("kiqpy:metrics:*")
