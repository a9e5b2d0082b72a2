"""`make bench-compare` (python -m bench.compare): kiqpy, Ruby Sidekiq, Dramatiq, Celery, RQ,
Huey and arq on the same INCR job against one private Redis, one after another.

Each round (--runs) measures the Python ceiling, then every system with logs off and on; a
system that fails to install or start is reported with its error and the others go on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import redis

from . import report, runner
from .systems import SYSTEMS
from .systems.base import ROOT, System

sys.path.insert(0, str(ROOT))
from tests.redis_server import RedisServer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per run (20,000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per system and log setting (3)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 1 run of 5,000 jobs")
    parser.add_argument("--only", default="",
                        help="comma-separated systems to run: "
                             + ",".join(s.name for s in SYSTEMS))
    # The slowest systems here run 50-1,000 jobs/s: capping their drains keeps a default run
    # near 15 minutes on 2 cores, and 15 s of jobs still gives a steady rate.
    parser.add_argument("--max-seconds", type=float, default=15.0,
                        help="stop a drain after this long and time the jobs done (15)")
    parser.add_argument("--json", type=Path, help="write the raw numbers to this file")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.runs = 5_000, 1
    known = {s.name for s in SYSTEMS}
    wanted = set(filter(None, args.only.split(",")))
    if wanted - known:
        parser.error(f"unknown system(s) {', '.join(sorted(wanted - known))}; "
                     f"known: {', '.join(s.name for s in SYSTEMS)}")
    args.systems = [s for s in SYSTEMS if not wanted or s.name in wanted]
    return args


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def one_system(system: System, outcome: report.Outcome, url: str, r: redis.Redis, n: int,
               max_seconds: float, logdir: Path) -> None:
    """Logs off then on; the off run's backlog is pushed one call at a time, the on run's in bulk
    where the system has a bulk API, so each run also measures an enqueue loop."""
    for logs in (False, True):
        bulk = logs and system.has_bulk
        r.flushall()
        pushes = runner.enqueue(system, url, n, bulk)
        outcome.pushes["bulk" if bulk else "single"].append(pushes)
        drained = runner.drain(system, url, r, n, logs, max_seconds,
                               logdir / f"{system.name}-{'on' if logs else 'off'}.log")
        outcome.drains["on" if logs else "off"].append(drained)
        progress(f"{system.name:<9} logs {'on ' if logs else 'off'} {pushes:>9,.0f} pushes/s "
                 f"{'(bulk)  ' if bulk else '(single)'} {drained.jobs_per_s:>9,.0f} jobs/s "
                 f"{drained.cpu_us_per_job:>6,.0f} us/job {drained.rss_mb:>6.1f} MB"
                 f"{'  (capped)' if drained.capped else ''}")


def main() -> None:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]  # a TextIOWrapper
    server = RedisServer().start()
    r = redis.Redis.from_url(server.url)
    outcomes = {s.name: report.Outcome(defaults=s.defaults) for s in args.systems}
    ceiling: list[tuple[float, float]] = []
    try:
        meta = report.machine(str(r.info()["redis_version"]))
        for system in args.systems:
            try:
                outcomes[system.name].version = runner.app_command(system, server.url, "version")
            except runner.SystemFailed as exc:
                outcomes[system.name].error = f"not installed or does not load: {exc}"
        report.header(meta, args.jobs, args.runs, args.max_seconds)
        for system in args.systems:
            report.system_line(system.name, outcomes[system.name])
        with tempfile.TemporaryDirectory(prefix="kiqpy-compare-") as logdir:
            for run in range(args.runs):
                progress(f"run {run + 1} of {args.runs}")
                r.flushall()
                ceiling.append(runner.ceiling(server.url, args.jobs))
                progress(f"ceiling   {ceiling[-1][0]:,.0f} INCR/s {ceiling[-1][1]:,.0f} us/INCR")
                for system in args.systems:
                    outcome = outcomes[system.name]
                    if outcome.error:
                        continue
                    try:
                        one_system(system, outcome, server.url, r, args.jobs, args.max_seconds,
                                   Path(logdir))
                    except (runner.SystemFailed, OSError) as exc:
                        outcome.error = f"run {run + 1}: {exc}"
                        progress(f"{system.name} failed: {exc}")
        report.tables(outcomes, ceiling)
        for name, outcome in outcomes.items():
            if outcome.error and any(outcome.drains.values()):
                print(f"{name} failed part-way, {outcome.error}")
        if args.json:
            args.json.write_text(json.dumps(
                {"meta": {**meta, "load_at_end": report.load()}, "jobs": args.jobs,
                 "runs": args.runs,
                 "ceiling": [{"incr_per_s": c[0], "cpu_us_per_incr": c[1]} for c in ceiling],
                 "systems": {name: dataclasses.asdict(o) for name, o in outcomes.items()}},
                indent=2) + "\n")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
