"""bench/compare (`make bench-compare`) runs end to end: the harness, in --quick mode, on kiqpy
alone, so CI exercises it without installing Sidekiq or the Python queues."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_comparison_of_kiqpy_alone_prints_the_table_and_writes_the_numbers(tmp_path):
    raw = tmp_path / "compare.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--quick", "--only", "kiqpy", "--json", str(raw)],
        cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr

    # The header names the machine and the versions; the table has both log settings, the
    # ceiling line and the enqueue loops.
    assert "redis-server" in done.stdout and "kiqpy 0." in done.stdout
    rows = [line.split()[:2] for line in done.stdout.splitlines()]
    assert ["kiqpy", "off"] in rows and ["kiqpy", "on"] in rows
    assert "the Python ceiling" in done.stdout

    numbers = json.loads(raw.read_text())
    kiqpy = numbers["systems"]["kiqpy"]
    assert kiqpy["error"] is None
    for logs in ("off", "on"):
        (drain,) = kiqpy["drains"][logs]
        assert drain["jobs_per_s"] > 0 and drain["cpu_us_per_job"] > 0 and drain["rss_mb"] > 0
    # Per-job log lines appear only with logs on.
    assert kiqpy["drains"]["off"][0]["log_lines_per_job"] < 0.1
    assert kiqpy["drains"]["on"][0]["log_lines_per_job"] >= 1
    assert kiqpy["pushes"]["single"] and kiqpy["pushes"]["bulk"]
    assert numbers["ceiling"][0]["incr_per_s"] > 0
    assert list(numbers["systems"]) == ["kiqpy"]
