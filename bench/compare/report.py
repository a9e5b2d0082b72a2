"""The printed header and tables. Medians with min-max spreads; kiqpy's ratio is kiqpy's median
over the system's, so above 1 means kiqpy is faster."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .runner import Drain


@dataclass
class Outcome:
    """Everything measured of one system, over all runs."""

    version: str = ""
    defaults: str = ""
    error: str | None = None
    drains: dict[str, list[Drain]] = field(default_factory=lambda: {"off": [], "on": []})
    pushes: dict[str, list[float]] = field(default_factory=lambda: {"single": [], "bulk": []})


def machine(redis_version: str) -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for row in cpuinfo:
            if row.startswith("model name"):
                model = row.split(":", 1)[1].strip()
                break
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": platform.machine(), "cpu": f"{model}, {os.cpu_count()} cores",
            "python": sys.version.split()[0], "redis_server": redis_version,
            "load_at_start": load()}


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def header(meta: dict[str, str], n: int, runs: int, max_seconds: float) -> None:
    print(f"kiqpy bench-compare, {meta['date']}: {meta['machine']}, {meta['cpu']}, "
          f"Python {meta['python']}, redis-server {meta['redis_server']} (private, loopback), "
          f"load average at start {meta['load_at_start']}")
    print(f"{n:,} jobs per run, {runs} run(s) per system and log setting, one system at a time.")
    print("Job: a no-op that INCRs one Redis counter, through the worker's own Redis client where "
          "the system exposes one.")
    print("jobs/s: the whole backlog is enqueued first, then the worker starts; timed from the "
          "first INCR seen to the last\n  (start-up left out). CPU: the worker's process tree, "
          "utime+stime over that span, per job. RSS: peak summed RSS\n  of the tree (sampled "
          f"every 0.1 s). A run still going after {max_seconds:.0f} s is stopped and timed "
          "over the jobs done (marked *).")
    print("logs on: each system's per-job log lines as it writes them at INFO (written to a "
          "file); logs off: WARNING.\nkiqpy ratio: kiqpy's median over the system's (above 1: "
          "kiqpy is faster).")
    print("Each system at its documented defaults except a concurrency of 10 in one worker:")


def system_line(name: str, outcome: Outcome) -> None:
    if outcome.error:
        print(f"  {name:<9} FAILED: {_indent(outcome.error)}")
    else:
        print(f"  {name:<9} {outcome.version}\n  {'':<9} {outcome.defaults}")


def _indent(text: str) -> str:
    return text.replace("\n", "\n" + " " * 20)


def _spread(values: list[float], unit: str = "") -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:,.0f}{unit}"
    return f"{statistics.median(values):,.0f}{unit} ({min(values):,.0f}-{max(values):,.0f})"


def _ratio(kiqpy: list[float], other: list[float]) -> str:
    if not kiqpy or not other:
        return "-"
    return f"{statistics.median(kiqpy) / statistics.median(other):.2f}x"


def tables(outcomes: dict[str, Outcome], ceiling: list[tuple[float, float]]) -> None:
    kiqpy = outcomes.get("kiqpy")
    print(f"\n{'processing':<10} {'logs':<4} {'jobs/s median (min-max)':>28} {'CPU us/job':>11} "
          f"{'RSS MB':>7} {'log lines/job':>14} {'kiqpy ratio':>12}")
    for name, outcome in outcomes.items():
        if outcome.error and not any(outcome.drains.values()):
            print(f"{name:<10} failed: {outcome.error.splitlines()[0]}")
            continue
        for logs in ("off", "on"):
            drains = outcome.drains[logs]
            if not drains:
                continue
            rates = [d.jobs_per_s for d in drains]
            mark = "*" if any(d.capped for d in drains) else ""
            ours = [d.jobs_per_s for d in kiqpy.drains[logs]] if kiqpy else []
            print(f"{name:<10} {logs:<4} {_spread(rates) + mark:>28} "
                  f"{statistics.median(d.cpu_us_per_job for d in drains):>11,.0f} "
                  f"{max(d.rss_mb for d in drains):>7.1f} "
                  f"{statistics.median(d.log_lines_per_job for d in drains):>14.2f} "
                  f"{_ratio(ours, rates):>12}")
    if ceiling:
        rates, cpus = [c[0] for c in ceiling], [c[1] for c in ceiling]
        share = ""
        if kiqpy and kiqpy.drains["off"]:
            # The ceiling moves with the machine's load, so each round's kiqpy figure is set
            # against the ceiling measured just before it, in the same round.
            # (kiqpy may have failed part-way: fewer drains than rounds.)
            paired = zip(kiqpy.drains["off"], ceiling, strict=False)
            shares = [d.jobs_per_s / c[0] * 100 for d, c in paired]
            share = f"; kiqpy logs off, per round, reaches {_spread(shares, '%')} of it"
        print(f"{'ceiling':<10} {'-':<4} {_spread(rates):>28} {statistics.median(cpus):>11,.0f}"
              f"   <- the Python ceiling: 10 threads doing only redis-py INCRs on their own "
              f"connections{share}")
    print(f"\n{'enqueue':<10} {'single pushes/s median (min-max)':>34} {'kiqpy ratio':>12} "
          f"{'bulk pushes/s median (min-max)':>32} {'kiqpy ratio':>12}")
    for name, outcome in outcomes.items():
        if not outcome.pushes["single"] and not outcome.pushes["bulk"]:
            continue
        ours = kiqpy.pushes if kiqpy else {"single": [], "bulk": []}
        bulk = _spread(outcome.pushes["bulk"]) if outcome.pushes["bulk"] else "(no bulk API)"
        print(f"{name:<10} {_spread(outcome.pushes['single']):>34} "
              f"{_ratio(ours['single'], outcome.pushes['single']):>12} {bulk:>32} "
              f"{_ratio(ours['bulk'], outcome.pushes['bulk']):>12}")
    capped = [f"{name} logs {logs}: {', '.join(f'{d.jobs_timed:,}' for d in drains)}"
              for name, outcome in outcomes.items() for logs, drains in outcome.drains.items()
              if any(d.capped for d in drains)]
    if capped:
        print("\n* stopped at --max-seconds; jobs timed per run: " + "; ".join(capped))
    print(f"\nload average at the end: {load()}")
