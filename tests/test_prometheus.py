"""Prometheus: /metrics on a worker's --health-port (per-job counters of the process plus the
cluster's numbers from Redis), and on the dashboard with create_app(metrics=True)."""

from __future__ import annotations

import pytest

import kiqpy
from tests import app_jobs
from tests.conftest import wait_for
from tests.redis_server import free_port
from tests.web_helpers import client_for
from tests.workers import WorkerProcess, http_get


def sample(text: str, name: str) -> float:
    """The value of the sample line that starts with ``name`` (labels included)."""
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.rsplit(" ", 1)[1])


@pytest.mark.slow
def test_a_workers_health_port_serves_its_job_counters_and_the_clusters(config, r,
                                                                        redis_url):
    port = free_port()
    kiqpy.enqueue("Record", 1, queue="parked")  # a queue nobody serves: size 1
    with WorkerProcess(redis_url, "--health-port", str(port),
                       require="tests.app_prometheus"):
        for n in range(3):
            app_jobs.Record.perform_async(n)
        app_jobs.Fail.set(retry=False).perform_async("boom")

        def scraped() -> str | None:
            # Every job done: the four run on ten threads, so Fail may end before a Record
            code, text = http_get(f"http://127.0.0.1:{port}/metrics")
            done = 'kiqpy_jobs_processed_total{job_class="Record",queue="default"} 3.0'
            ok = code == 200 and 'kiqpy_jobs_failed_total{job_class="Fail"' in text
            return text if ok and done in text else None

        text = wait_for(scraped, timeout=20, message="the counters on /metrics")
    assert sample(text, 'kiqpy_jobs_processed_total{job_class="Record",queue="default"}') == 3
    assert sample(text, 'kiqpy_jobs_failed_total{job_class="Fail",queue="default"}') == 1
    assert sample(text, 'kiqpy_job_duration_seconds_count{job_class="Record"}') == 3
    assert sample(text, "kiqpy_concurrency") == 10
    assert sample(text, 'kiqpy_queue_size{queue="parked"}') == 1
    assert sample(text, "kiqpy_processes") == 1
    assert "# TYPE kiqpy_queue_latency_seconds gauge" in text


def test_the_dashboard_answers_scrapes_only_when_asked(config, r):
    kiqpy.enqueue("Record", 1, queue="mail")
    scraper = {"Accept": "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"}
    on = client_for(config, metrics=True).get("/metrics", headers=scraper)
    assert on.status_code == 200 and on.content_type.startswith("text/plain")
    assert sample(on.get_data(as_text=True), 'kiqpy_queue_size{queue="mail"}') == 1
    # A browser still gets the Metrics page; without metrics=True, a scraper gets it too
    browser = client_for(config, metrics=True).get("/metrics", headers={"Accept": "text/html"})
    assert browser.content_type.startswith("text/html")
    off = client_for(config).get("/metrics", headers=scraper)
    assert off.content_type.startswith("text/html")


@pytest.mark.slow
def test_under_p_2_the_supervisor_serves_the_sum_of_its_children(config, r, redis_url,
                                                                  tmp_path):
    port = free_port()
    with WorkerProcess(redis_url, "-p", "2", "--health-port", str(port),
                       require="tests.app_prometheus",
                       env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}) as supervisor:
        for n in range(20):
            app_jobs.Record.perform_async(n)

        def scraped() -> str | None:
            code, text = http_get(f"http://127.0.0.1:{port}/metrics")
            line = 'kiqpy_jobs_processed_total{job_class="Record",queue="default"} 20.0'
            return text if code == 200 and line in text else None

        text = wait_for(scraped, timeout=30, message="both children's counts, summed")
        # A graceful stop: its children must not outlive the test and take later tests' jobs
        supervisor.terminate()
        assert supervisor.wait(60) == 0
    assert sample(text, "kiqpy_concurrency") == 20  # two children of 10 threads
