"""Prometheus exposition (extra ``kiqpy[prometheus]``: prometheus_client): the cluster's numbers
read from Redis on each scrape, plus whatever this process registered in prometheus_client's
default registry (``kiqpy_middleware.prometheus`` registers the per-job counters there).

Cluster-wide, from Redis: ``kiqpy_queue_size{queue}``, ``kiqpy_queue_latency_seconds{queue}``,
``kiqpy_retry_set_size``, ``kiqpy_scheduled_set_size``, ``kiqpy_dead_set_size``,
``kiqpy_processes``, ``kiqpy_busy_threads_total``, ``kiqpy_processed_total`` and
``kiqpy_failed_total`` (the ``stat:*`` counters). Under ``-p N`` set ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client's multiprocess mode): the children's per-job counters are then read from its
files by the supervisor, which serves ``--health-port``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from kiqpy.api.processes import ProcessSet
from kiqpy.api.queues import Queue
from kiqpy.api.stats import Stats
from kiqpy.config import Config
from kiqpy.errors import ConfigurationError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_QUEUES = 1000  # queues labelled on one scrape (the largest first beyond that)


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ConfigurationError("Prometheus metrics need the prometheus extra: "
                                 "pip install 'kiqpy[prometheus]'") from exc
    return prometheus_client


class ClusterCollector:
    """A prometheus_client collector that reads the cluster's numbers from Redis."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config

    def collect(self) -> Iterator[Any]:
        metric = _client().metrics_core
        stats = Stats(self.config)
        yield metric.CounterMetricFamily("kiqpy_processed", "Jobs processed (stat:processed)",
                                         value=stats.processed)
        yield metric.CounterMetricFamily("kiqpy_failed", "Jobs failed (stat:failed)",
                                         value=stats.failed)
        for name, value, text in (
                ("kiqpy_retry_set_size", stats.retry_size, "Jobs waiting to be retried"),
                ("kiqpy_scheduled_set_size", stats.scheduled_size, "Jobs scheduled"),
                ("kiqpy_dead_set_size", stats.dead_size, "Jobs in the dead set")):
            yield metric.GaugeMetricFamily(name, text, value=value)
        processes = ProcessSet(self.config, stats.redis, prune=False)
        yield metric.GaugeMetricFamily("kiqpy_processes", "Live worker processes",
                                       value=processes.size)
        yield metric.GaugeMetricFamily("kiqpy_busy_threads_total",
                                       "Threads running a job, all processes",
                                       value=processes.total_busy)
        size = metric.GaugeMetricFamily("kiqpy_queue_size", "Jobs in a queue", labels=["queue"])
        latency = metric.GaugeMetricFamily("kiqpy_queue_latency_seconds",
                                           "Age of a queue's oldest job", labels=["queue"])
        for row in Queue.listing(size=MAX_QUEUES, config=self.config,
                                 redis_client=stats.redis).rows:
            if row.problem is None:
                size.add_metric([row.queue.name], row.size)
                latency.add_metric([row.queue.name], row.latency)
        yield size
        yield latency


def exposition(config: Config | None = None, process: bool = True) -> bytes:
    """The text a scrape gets: the cluster's numbers, and with ``process`` this process's own
    registry (or, in multiprocess mode, every process's files)."""
    prometheus = _client()
    registry = prometheus.CollectorRegistry()
    registry.register(ClusterCollector(config))
    text: bytes = prometheus.generate_latest(registry)
    if process:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            merged = prometheus.CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            text += prometheus.generate_latest(merged)
        else:
            text += prometheus.generate_latest(prometheus.REGISTRY)
    return text
