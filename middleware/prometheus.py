"""Per-job Prometheus metrics (extra ``kiqpy[prometheus]``: prometheus_client), served with the
cluster's numbers at ``/metrics`` on the worker's ``--health-port`` (and on the dashboard with
``create_app(metrics=True)``; see :mod:`kiqpy.api.prometheus`).

    import kiqpy_middleware.prometheus
    kiqpy_middleware.prometheus.install()        # in a module the worker loads with -r

A server middleware counts, in prometheus_client's default registry:
``kiqpy_jobs_processed_total{queue,job_class}``, ``kiqpy_jobs_failed_total{queue,job_class}``,
``kiqpy_job_duration_seconds{job_class}`` (a histogram with kiqpy's buckets, 1 ms to 300 s),
``kiqpy_busy_threads`` and ``kiqpy_concurrency``. Under ``-p N``, set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory for the worker (prometheus_client's
multiprocess mode): each child writes its counts there and the supervisor serves their sum.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

import kiqpy
from kiqpy.histogram import BUCKETS_MS

PROCESSED = Counter("kiqpy_jobs_processed", "Jobs run by this process",
                    ["queue", "job_class"])
FAILED = Counter("kiqpy_jobs_failed", "Jobs that failed in this process",
                 ["queue", "job_class"])
DURATION = Histogram("kiqpy_job_duration_seconds", "Time jobs took, by class", ["job_class"],
                     buckets=[ms / 1000 for ms in BUCKETS_MS] + [float("inf")])
BUSY = Gauge("kiqpy_busy_threads", "Threads of this process running a job",
             multiprocess_mode="livesum")
CONCURRENCY = Gauge("kiqpy_concurrency", "Processor threads of this process",
                    multiprocess_mode="livesum")


class PrometheusServer:
    """Server middleware: counts each job run, its failure and its duration."""

    def __call__(self, worker: Any, job: dict[str, Any], queue: str,
                 next: Callable[[], Any]) -> Any:
        job_class = str(job.get("class", ""))
        BUSY.inc()
        started = time.perf_counter()
        try:
            return next()
        except BaseException:
            FAILED.labels(queue, job_class).inc()
            raise
        finally:
            DURATION.labels(job_class).observe(time.perf_counter() - started)
            PROCESSED.labels(queue, job_class).inc()
            BUSY.dec()


def install(config: kiqpy.Config | None = None) -> None:
    """Add :class:`PrometheusServer` to the server chain of ``config`` (the default
    configuration when None) and report its concurrency."""
    target = config if config is not None else kiqpy.default_config()
    target.server_middleware.add(PrometheusServer)
    CONCURRENCY.set(target.concurrency)
