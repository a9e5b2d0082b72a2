"""Running real ``kiqpy`` worker processes in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--heartbeat-interval", "0.5", "--process-ttl", "2", "--poll-interval", "0.2"]


_P = TypeVar("_P", bound="LoggedProcess")


class LoggedProcess:
    """A subprocess whose output (stdout and stderr) goes to ``log_path``. Use as a context
    manager; it is killed on exit if still running."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], log_path: Path,
                 new_session: bool = False) -> None:
        self.log_path = log_path
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115
        # new_session: its own process group, for signalling the group as a terminal does.
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self.log_file,
                                        stderr=subprocess.STDOUT, start_new_session=new_session)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.log_file.close()


class WorkerProcess(LoggedProcess):
    """``kiqpy`` (the CLI) in a subprocess, with ``tests/app_jobs.py`` loaded, JSON logs in a
    file. Use as a context manager; it is killed on exit if still running."""

    def __init__(self, redis_url: str, *args: str, fast: bool = True,
                 env: dict[str, str] | None = None, require: str | None = "tests.app_jobs",
                 new_session: bool = False) -> None:
        argv = [sys.executable, "-m", "kiqpy.cli"]
        if require:
            argv += ["-r", require]
        argv += ["--log-format", "json", *(FAST if fast else []), *args]
        full_env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1",
                    **(env or {})}
        full_env.pop("KIQPY_REDIS_URL", None)
        log_path = Path(tempfile.mkstemp(prefix="kiqpy-worker-", suffix=".log")[1])
        super().__init__(argv, ROOT, full_env, log_path, new_session)

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def signal_group(self, signum: int) -> None:
        """Signal its whole process group, as Ctrl-C in a terminal does (needs new_session)."""
        os.killpg(self.process.pid, signum)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.process.wait(10)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def wait_for_log(self, text: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}) before "
                                     f"logging {text!r}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker did not log {text!r}:\n{self.log()[-3000:]}")
            time.sleep(0.02)


# -- helpers for test_cli / test_processing / test_shutdown / test_redis_outage ----------------
def run_cli(*arg_lists: list[str], timeout: float = 20
            ) -> list[subprocess.CompletedProcess[str]]:
    """Run several ``kiqpy`` invocations that exit by themselves, at once; their results."""
    procs = [subprocess.Popen([sys.executable, "-m", "kiqpy.cli", *args], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for args in arg_lists]
    results = []
    for args, proc in zip(arg_lists, procs, strict=True):
        out, err = proc.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return results


def log_events(worker: WorkerProcess) -> list[dict]:
    """The worker's JSON log lines, parsed (other lines are skipped)."""
    import json

    events = []
    for line in worker.log().splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def identity_of(worker: WorkerProcess, timeout: float = 15) -> str:
    """The worker's identity, from its "starting" log line."""
    worker.wait_for_log('"starting"', timeout)
    for event in log_events(worker):
        if event.get("event") == "starting":
            return str(event["identity"])
    raise AssertionError(f"no identity in the log:\n{worker.log()[-3000:]}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def exit_within(worker: WorkerProcess, seconds: float) -> tuple[int, float]:
    """Wait for the worker to exit; (exit code, seconds it took). Fails after ``seconds``."""
    started = time.monotonic()
    try:
        code = worker.wait(seconds)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"worker still running after {seconds}s:\n"
                             f"{worker.log()[-3000:]}") from None
    return code, time.monotonic() - started


def http_get(url: str) -> tuple[int, str]:
    """(status, body) of a GET; (0, the error) when nothing answers."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def in_a_terminal(argv: list[str], env: dict[str, str], cwd: Path, answer: str,
                  prompt: bytes = b"Continue? [y/N]", timeout: float = 20) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal on stdin and stderr, wait for ``prompt`` and type
    ``answer``; returns the exit status and what it wrote (terminal, then stdout)."""
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=subprocess.PIPE,
                            stderr=slave)
    os.close(slave)
    seen, deadline = b"", time.monotonic() + timeout
    try:
        while prompt not in seen:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"no prompt {prompt!r}; got {seen!r}")
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 1024)
        os.write(master, answer.encode() + b"\n")
        out, _ = proc.communicate(timeout=timeout)
        while select.select([master], [], [], 0)[0]:
            try:
                chunk = os.read(master, 1024)
            except OSError:  # the child closed its side
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return proc.returncode, seen.decode(errors="replace") + out.decode(errors="replace")
