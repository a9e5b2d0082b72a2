"""Execution metrics per job class, as the workers' heartbeats wrote them (see
``kiqpy/server/metrics.py``): top classes over a period, one class's series per minute and its
duration histogram with p50/p95/p99, and deploy marks.

    from kiqpy.api import Metrics, mark_deploy

    for row in Metrics().top(minutes=60):
        print(row.job_class, row.processed, row.failed, row.avg_seconds, row.p95_seconds)
    series = Metrics().series("InvoiceJob", minutes=480)
    mark_deploy()                      # "a1b2c3d Fix the invoice rounding", in a git checkout
"""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from kiqpy import histogram as buckets
from kiqpy.api.base import ApiObject, text
from kiqpy.config import Config

PERIODS = {"1h": 60, "8h": 480, "24h": 1440, "72h": 4320}


@dataclass
class ClassMetrics:
    """One job class over a period (or one minute of it)."""

    job_class: str
    processed: int = 0
    failed: int = 0
    milliseconds: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * buckets.SIZE)

    @property
    def avg_seconds(self) -> float:
        return self.milliseconds / self.processed / 1000 if self.processed else 0.0

    @property
    def total_seconds(self) -> float:
        return self.milliseconds / 1000

    @property
    def failure_rate(self) -> float:
        return self.failed / self.processed if self.processed else 0.0

    def percentile(self, fraction: float) -> float | None:
        """The upper bound, in seconds, of the histogram bucket holding that fraction of
        executions (None without executions; ``inf`` past the last bound)."""
        return buckets.percentile(self.histogram, fraction)

    @property
    def p50_seconds(self) -> float | None:
        return self.percentile(0.50)

    @property
    def p95_seconds(self) -> float | None:
        return self.percentile(0.95)

    @property
    def p99_seconds(self) -> float | None:
        return self.percentile(0.99)

    def add(self, field_name: str, value: int) -> None:
        if field_name == "p":
            self.processed += value
        elif field_name == "f":
            self.failed += value
        elif field_name == "ms":
            self.milliseconds += value
        elif field_name[:1] == "h" and field_name[1:].isdigit():
            index = int(field_name[1:])
            if index < len(self.histogram):
                self.histogram[index] += value


@dataclass
class DeployMark:
    label: str
    at: _dt.datetime


class Metrics(ApiObject):
    """Reads the per-minute metrics of the last ``minutes`` (up to the retention, 72 h)."""

    def minutes(self, minutes: int, now: float | None = None) -> list[tuple[int, dict[str, Any]]]:
        """(epoch minute, raw hash) for each of the last ``minutes`` minutes, oldest first."""
        last = int(now if now is not None else time.time()) // 60
        numbers = list(range(last - max(1, int(minutes)) + 1, last + 1))
        rows: list[tuple[int, dict[str, Any]]] = []
        with self.io():
            for start in range(0, len(numbers), 500):
                pipe = self.redis.pipeline(transaction=False)
                chunk = numbers[start:start + 500]
                for minute in chunk:
                    pipe.hgetall(self.keys.metrics(minute))
                rows.extend(zip(chunk, pipe.execute(), strict=True))
        return rows

    def top(self, minutes: int = 60, now: float | None = None) -> list[ClassMetrics]:
        """Every class that ran in the period, the most total time first."""
        classes: dict[str, ClassMetrics] = {}
        for _, raw in self.minutes(minutes, now):
            for name, value in raw.items():
                job_class, _, field_name = text(name).rpartition("|")
                row = classes.get(job_class) or classes.setdefault(job_class,
                                                                   ClassMetrics(job_class))
                row.add(field_name, _int(value))
        return sorted(classes.values(), key=lambda r: (-r.milliseconds, r.job_class))

    def series(self, job_class: str, minutes: int = 60, now: float | None = None
               ) -> list[tuple[_dt.datetime, ClassMetrics]]:
        """One class per minute, oldest first (minutes without executions included)."""
        return [(moment, rows[job_class])
                for moment, rows in self.table([job_class], minutes, now)]

    def table(self, job_classes: list[str], minutes: int = 60, now: float | None = None
              ) -> list[tuple[_dt.datetime, dict[str, ClassMetrics]]]:
        """Several classes per minute, oldest first, read once: the top classes' chart."""
        out = []
        wanted = set(job_classes)
        for minute, raw in self.minutes(minutes, now):
            rows = {name: ClassMetrics(name) for name in job_classes}
            for name, value in raw.items():
                job_class, _, field_name = text(name).rpartition("|")
                if job_class in wanted:
                    rows[job_class].add(field_name, _int(value))
            out.append((_dt.datetime.fromtimestamp(minute * 60, _dt.timezone.utc), rows))
        return out

    def deploys(self, minutes: int = 60, now: float | None = None) -> list[DeployMark]:
        """Deploy marks within the period, oldest first."""
        end = now if now is not None else time.time()
        with self.io():
            raw: list[tuple[bytes, float]] = self.redis.zrangebyscore(  # type: ignore[assignment]
                self.keys.metrics_deploys, end - minutes * 60, end, withscores=True)
        marks = []
        for member, score in raw:
            try:
                label = str(json.loads(member)["label"])
            except (ValueError, KeyError, TypeError):
                label = text(member)
            marks.append(DeployMark(label, _dt.datetime.fromtimestamp(float(score),
                                                                      _dt.timezone.utc)))
        return marks


def mark_deploy(label: str | None = None, config: Config | None = None,
                redis_client: redis.Redis | None = None, at: float | None = None) -> str:
    """Record a deploy at ``at`` (now), shown on the metrics charts. ``label`` defaults to
    the current git commit's short hash and subject, when run in a git checkout."""
    label = label if label is not None else _git_label()
    when = at if at is not None else time.time()
    api = ApiObject(config, redis_client)
    member = json.dumps({"label": label, "at": when})
    with api.io():
        pipe = api.redis.pipeline(transaction=False)
        pipe.zadd(api.keys.metrics_deploys, {member: when})
        # Marks are kept as long as the metrics they annotate.
        pipe.zremrangebyscore(api.keys.metrics_deploys, "-inf",
                              when - api.config.metrics_retention)
        pipe.execute()
    return label


def _git_label() -> str:
    try:
        done = subprocess.run(["git", "log", "-1", "--format=%h %s"], capture_output=True,
                              text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "deploy"
    return done.stdout.strip()[:200] if done.returncode == 0 and done.stdout.strip() else "deploy"


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
