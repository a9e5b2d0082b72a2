"""examples/demo.py, the README's "run it" command, run as a user would: a subprocess."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiqpy.payload import decode

NS = "kiqpy-demo"  # the demo's namespace: every key it writes or reads
DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def run_demo(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the demo from a directory outside the repo with a clean Redis environment."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "KIQPY_REDIS_URL", "KIQPY_NAMESPACE")}
    environ.update(env)
    return subprocess.run([sys.executable, str(DEMO), *args], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=60)


def test_demo_enqueues_the_examples_into_the_given_redis(r, redis_url, tmp_path):
    # When the demo runs against our Redis (a worker would drain the queues, so none)
    before = time.time()
    done = run_demo(tmp_path, "--no-worker", REDIS_URL=redis_url)

    # Then it says what it used and what it pushed, and shows the queues and a decoded job
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"Redis: {redis_url} (from $REDIS_URL)" in out
    assert re.search(rf"{NS}:queue:default\s+2 jobs", out)
    assert re.search(rf"{NS}:queue:mail\s+5 jobs", out)
    assert re.search(rf"{NS}:schedule\s+1 job\b", out)
    assert '"class": "demo_jobs.Sleeper"' in out
    assert "private redis-server" not in out

    # And Redis holds exactly those jobs, with the jids the demo printed
    printed = set(re.findall(r"jid ([0-9a-f]{24})", out))
    assert len(printed) == 8
    assert r.smembers(f"{NS}:queues") == {b"default", b"mail"}
    assert not [k for k in r.scan_iter() if not k.startswith(f"{NS}:".encode())]
    default = [decode(raw) for raw in r.lrange(f"{NS}:queue:default", 0, -1)]
    mail = [decode(raw) for raw in r.lrange(f"{NS}:queue:mail", 0, -1)]
    scheduled = r.zrange(f"{NS}:schedule", 0, -1, withscores=True)
    assert sorted(job["class"] for job in default) == ["demo_jobs.Sleeper", "demo_jobs.WordCount"]
    greeters, counters = ["demo_jobs.Greeter"] * 4, ["demo_jobs.WordCount"]
    assert sorted(job["class"] for job in mail) == greeters + counters
    assert sorted(job["args"][0] for job in mail if job["class"] == "demo_jobs.Greeter") == [
        "Ada", "Grace", "Guido", "Linus"]
    assert len(scheduled) == 1
    payload, run_at = scheduled[0]
    assert decode(payload)["class"] == "demo_jobs.Sleeper"
    assert before + 5 <= run_at <= time.time() + 5
    assert {job["jid"] for job in default + mail} | {decode(payload)["jid"]} == printed


def test_demo_starts_and_stops_a_private_redis(redis_server, tmp_path):
    # Given no Redis URL and the localhost:6379 probe switched off
    done = run_demo(tmp_path, "--no-worker", KIQPY_DEMO_NO_LOCALHOST="1")

    # Then the demo ran against a redis-server of its own
    assert done.returncode == 0, done.stderr
    started = re.search(r"Redis: redis://127\.0\.0\.1:(\d+)/0 \(a private redis-server, "
                        r"pid (\d+), dir (\S+),", done.stdout)
    assert started, done.stdout
    port, pid, workdir = int(started[1]), int(started[2]), started[3]
    assert re.search(rf"{NS}:queue:mail\s+5 jobs", done.stdout)
    assert f"Stopped the private redis-server (pid {pid})" in done.stdout

    # And that server is gone, port, process and directory
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not Path(workdir).exists()


@pytest.mark.slow
def test_demo_runs_every_job_with_a_worker(r, redis_url, tmp_path):
    # Given a developer's own jobs on their default and mail queues (no namespace)
    import kiqpy

    own = kiqpy.Client(kiqpy.Config(redis_url=redis_url))
    for queue in ("default", "mail"):
        own.push({"class": "MyApp::Job", "args": [queue], "queue": queue})

    # When the whole demo runs, worker included (the scheduled job is due after 5 s)
    done = run_demo(tmp_path, REDIS_URL=redis_url)

    # Then every job ran and nothing is left behind
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for name in ("Ada", "Grace", "Linus", "Guido"):
        assert f"Hello, {name}!" in out
    assert "WordCount: 9 words" in out and "WordCount: 2 words" in out
    assert "Worker exited with code 0" in out
    assert (r.llen(f"{NS}:queue:default") == r.llen(f"{NS}:queue:mail")
            == r.zcard(f"{NS}:schedule") == 0)
    # And the developer's own jobs were not touched: the demo's worker reads its namespace only
    assert [decode(raw)["args"] for raw in r.lrange("queue:default", 0, -1)] == [["default"]]
    assert [decode(raw)["args"] for raw in r.lrange("queue:mail", 0, -1)] == [["mail"]]


def test_on_a_terminal_job_output_never_shares_a_line_with_a_log_line(redis_url, tmp_path):
    # Given the demo on a terminal, as `make demo` is usually run: stdout and stderr are one
    # pseudo-terminal, line-buffered, written to by the worker's five threads at once
    import pty

    primary, secondary = pty.openpty()
    environ = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "KIQPY_REDIS_URL", "KIQPY_NAMESPACE")}
    demo = subprocess.Popen([sys.executable, str(DEMO)], cwd=tmp_path,
                            env={**environ, "REDIS_URL": redis_url},
                            stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary)
    os.close(secondary)
    # When it runs to the end
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert demo.wait(60) == 0
    text = re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode(errors="replace"))
    # Then every line a job printed stands alone
    lines = [line.strip() for line in text.splitlines()]
    job_lines = [line for line in lines if "Hello, " in line or "WordCount: " in line]
    assert len(job_lines) == 6, text
    for line in job_lines:
        assert re.fullmatch(r"Hello, \w+!|WordCount: \d+ words in '[^']*'", line), line
