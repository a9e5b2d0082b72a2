"""What every app shares: the counter the job INCRs, the Redis URL and the log setting, all
from the environment the runner gives each command (REDIS_URL, BENCH_LOGS)."""

from __future__ import annotations

import os

KEY = "bench:count"


def redis_url() -> str:
    return os.environ["REDIS_URL"]


def logs_on() -> bool:
    return os.environ.get("BENCH_LOGS", "on") == "on"
