"""Running a worker inside another program (kiqpy.embed) and its health endpoint."""

from __future__ import annotations

import kiqpy
from kiqpy.cli.health import check_cluster, serve_in_thread
from kiqpy.keys import Keys
from tests import app_jobs
from tests.conftest import wait_for
from tests.redis_server import free_port
from tests.workers import http_get


def test_embedded_worker_runs_jobs_and_stops_without_signals(config, r, redis_url,
                                                             monkeypatch):
    # Given a worker embedded in this test process
    monkeypatch.setenv("REDIS_URL", redis_url)  # app_jobs' own client
    worker = kiqpy.embed(concurrency=2, heartbeat_interval=0.2)
    try:
        # When a job is pushed, it runs in this process
        app_jobs.Record.perform_async("embedded")
        wait_for(lambda: r.llen("test:ran") == 1, message="the embedded worker to run the job")
        assert r.sismember("processes", worker.identity)
        # Quiet is visible in its heartbeat hash
        worker.quiet()
        wait_for(lambda: r.hget(worker.identity, "quiet") == b"true", message="quiet")
    finally:
        # Then stop() drains and unregisters it, and returns the exit code
        assert worker.stop() == 0
    assert not r.sismember("processes", worker.identity)
    assert not r.exists(worker.identity)


def test_embedded_worker_as_a_context_manager(config, r, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    with kiqpy.embed(concurrency=1) as worker:
        app_jobs.Record.perform_async(1)
        wait_for(lambda: r.llen("test:ran") == 1, message="job to run")
    assert worker.exit_code == 0


def test_health_endpoint_is_200_while_fresh_and_503_once_stopped(config, r, redis_url,
                                                                  monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    worker = kiqpy.embed(concurrency=1, heartbeat_interval=0.2)
    assert worker.wait_started(10)
    port = free_port()
    server = serve_in_thread("127.0.0.1", port, worker.launcher.healthy)
    try:
        status, body = http_get(f"http://127.0.0.1:{port}/health")
        assert status == 200, body
        assert worker.identity in body
        assert http_get(f"http://127.0.0.1:{port}/nope")[0] == 404
        worker.stop()
        status, body = http_get(f"http://127.0.0.1:{port}/health")
        assert status == 503
    finally:
        server.shutdown()
        worker.stop()


def test_check_cluster_needs_a_live_process_for_the_queues(config, r):
    keys = Keys()
    assert check_cluster(r, keys) == (False, "no live kiqpy process")
    with kiqpy.embed(concurrency=1, queues=(("default", 0), ("mail", 0))):
        wait_for(lambda: check_cluster(r, keys)[0], message="the worker to register")
        assert check_cluster(r, keys, ["mail"])[0]
        ok, reason = check_cluster(r, keys, ["mail", "reports"])
        assert not ok and "reports" in reason
