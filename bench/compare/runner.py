"""The measurements, each on a flushed private Redis:

- ``drain``: the whole backlog of N jobs is enqueued first, then the worker starts; jobs/s is
  counted from the first INCR the runner sees on ``bench:count`` to the N-th (polled every 2 ms),
  so the worker's start-up is left out. CPU is the worker tree's utime+stime over that same span;
  RSS is the largest summed RSS of the tree, sampled every 0.1 s.
- ``enqueue``: N pushes from one client process, the first untimed (apps/enqueue_cli.py).
- ``ceiling``: THREADS threads of raw redis-py INCRs on their own connections (apps/ceiling.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from . import procs
from .systems.base import APPS, ROOT, System

KEY = "bench:count"
START_TIMEOUT = 60.0  # seconds for a worker to run its first job
POLL = 0.002
RSS_EVERY = 0.1


class SystemFailed(Exception):
    """A system's command failed or its worker did not get through its jobs; the message says
    how, with the tail of its output."""


@dataclass
class Drain:
    jobs_per_s: float
    cpu_us_per_job: float
    rss_mb: float
    log_lines_per_job: float
    jobs_timed: int
    capped: bool  # stopped at --max-seconds before the N-th job


def env(url: str, logs: bool) -> dict[str, str]:
    path = os.pathsep.join([str(APPS), str(ROOT)])
    return {**os.environ, "REDIS_URL": url, "BENCH_LOGS": "on" if logs else "off",
            "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def app_command(system: System, url: str, *args: str, timeout: float = 600) -> str:
    """Runs the system's app command and returns its last line of output."""
    try:
        done = subprocess.run([*system.app, *args], cwd=APPS, env=env(url, False),
                              capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SystemFailed(f"{' '.join(system.app[-1:])} {' '.join(args)}: {exc}") from exc
    if done.returncode != 0 or not done.stdout.strip():
        output = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise SystemFailed(f"`{' '.join(args)}` exited {done.returncode}:\n{output}")
    return done.stdout.strip().splitlines()[-1]


def enqueue(system: System, url: str, n: int, bulk: bool) -> float:
    """Pushes per second of N pushes (single calls, or the bulk API)."""
    result = json.loads(app_command(system, url, "enqueue", str(n), "bulk" if bulk else "single"))
    return float(result["timed"]) / float(result["seconds"])


def drain(system: System, url: str, r: redis.Redis, n: int, logs: bool, max_seconds: float,
          logfile: Path) -> Drain:
    """Starts the worker on a backlog of N jobs and measures it until the N-th INCR."""
    with logfile.open("wb") as out:
        try:
            proc = subprocess.Popen(system.worker(logs, url), cwd=APPS, env=env(url, logs),
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise SystemFailed(f"the worker did not start: {exc}") from exc
    try:
        return _measure(proc, r, n, max_seconds, logfile)
    finally:
        _kill(proc)


def _measure(proc: subprocess.Popen[bytes], r: redis.Redis, n: int, max_seconds: float,
             logfile: Path) -> Drain:
    deadline = time.monotonic() + START_TIMEOUT
    while (first := int(r.get(KEY) or 0)) == 0:
        _check_alive(proc, logfile)
        if time.monotonic() > deadline:
            raise SystemFailed(f"no job ran within {START_TIMEOUT:.0f} s:\n{_tail(logfile)}")
        time.sleep(POLL)
    start, cpu_start = time.perf_counter(), procs.cpu_seconds(proc.pid)
    rss = procs.rss_bytes(proc.pid)
    next_rss, stop_at = start + RSS_EVERY, start + max_seconds
    while (count := int(r.get(KEY) or 0)) < n:
        now = time.perf_counter()
        if now > stop_at:
            break
        if now > next_rss:
            _check_alive(proc, logfile)
            rss, next_rss = max(rss, procs.rss_bytes(proc.pid)), now + RSS_EVERY
        time.sleep(POLL)
    elapsed, cpu = time.perf_counter() - start, procs.cpu_seconds(proc.pid) - cpu_start
    rss = max(rss, procs.rss_bytes(proc.pid))
    timed = count - first
    if timed <= 0:
        raise SystemFailed(f"only {count} of {n} jobs ran in {max_seconds:.0f} s")
    lines = sum(1 for _ in logfile.open("rb"))
    return Drain(jobs_per_s=timed / elapsed, cpu_us_per_job=cpu / timed * 1e6,
                 rss_mb=rss / 2**20, log_lines_per_job=lines / count, jobs_timed=timed,
                 capped=count < n)


def _check_alive(proc: subprocess.Popen[bytes], logfile: Path) -> None:
    if proc.poll() is not None:
        raise SystemFailed(f"the worker exited {proc.returncode}:\n{_tail(logfile)}")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    # The numbers are taken; nothing is left to finish, so the whole session goes at once
    # (RQ's forked workers and Dramatiq's worker processes with it).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def ceiling(url: str, n: int, threads: int = 10) -> tuple[float, float]:
    """(INCRs per second, CPU µs per INCR) of the Python ceiling, in kiqpy's interpreter."""
    done = subprocess.run([sys.executable, str(APPS / "ceiling.py"), str(n), str(threads)],
                          cwd=APPS, env=env(url, False), capture_output=True, text=True,
                          timeout=600, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return n / result["seconds"], result["cpu"] / n * 1e6
