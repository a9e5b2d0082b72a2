"""What the runner needs to know of a system: how to start its worker and run its enqueue loop.

Every command runs with the working directory ``apps/`` and, in its environment, REDIS_URL (the
private Redis) and BENCH_LOGS ("on" or "off") for the apps that switch logs off themselves.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
APPS = ROOT / "bench" / "compare" / "apps"
# One venv per Python system under .venv-compare/, made by `make bench-compare`: each gets its
# own newest release (arq pins redis-py < 6; Celery's kombu needs >= 6.4).
COMPARE_VENVS = ROOT / ".venv-compare"


def compare_bin(system: str, program: str) -> str:
    """A program in the venv of one Python system."""
    return str(COMPARE_VENVS / system / "bin" / program)


def kiqpy_bin(program: str) -> str:
    """A program in kiqpy's own dev venv (the one running this benchmark)."""
    return str(Path(sys.executable).parent / program)


@dataclass(frozen=True)
class System:
    name: str  # as given to --only
    # What runs at the system's defaults and what the benchmark sets; printed in the header.
    defaults: str
    # The worker's command line given logs on (the system's default per-job logging) or off,
    # and the Redis URL (also in REDIS_URL).
    worker: Callable[[bool, str], list[str]]
    # The command that takes "version" or "enqueue N single|bulk" (apps/enqueue_cli.py).
    app: list[str]
    has_bulk: bool
