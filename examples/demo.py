"""kiqpy demo: enqueue a few example jobs (``demo_jobs.py``) and show what lands in Redis.

    make demo                                   # or: .venv/bin/python examples/demo.py

Which Redis: ``$KIQPY_REDIS_URL`` or ``$REDIS_URL`` when set; else one answering PING on
127.0.0.1:6379; else a private ``redis-server`` started for the demo (free port, no persistence,
a temporary dir) and stopped when the demo exits. ``KIQPY_DEMO_NO_LOCALHOST=1`` skips the
127.0.0.1:6379 probe. ``--no-worker`` only enqueues and shows, leaving the jobs in Redis.

Every key the demo writes, and every key its worker reads, is under the namespace
``kiqpy-demo`` (``kiqpy-demo:queue:default``...): on a developer's own Redis the demo's worker
never takes that developer's ``default`` or ``mail`` jobs, and its jobs never reach theirs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import kiqpy
from kiqpy.connection import safe_url
from kiqpy.keys import Keys
from kiqpy.payload import decode

HERE = Path(__file__).resolve().parent
LOCAL_URL = "redis://127.0.0.1:6379/0"
QUEUES = ("default", "mail")
NAMESPACE = "kiqpy-demo"


# -- Redis: given, local, or private ----------------------------------------------------------
def ensure_redis() -> tuple[str, Callable[[], None]]:
    """A Redis URL for the demo and the function that releases it (stops a private server)."""
    for var in ("KIQPY_REDIS_URL", "REDIS_URL"):
        url = os.environ.get(var)
        if url:
            print(f"Redis: {safe_url(url)} (from ${var})")
            return url, _nothing
    if not os.environ.get("KIQPY_DEMO_NO_LOCALHOST") and answers_ping(LOCAL_URL):
        print(f"Redis: {LOCAL_URL} (already running on this machine)")
        return LOCAL_URL, _nothing
    return start_private_redis()


def answers_ping(url: str) -> bool:
    """Whether a Redis at ``url`` answers PING within a fraction of a second."""
    # No retries: a refused connection should answer "no" at once, not after a backoff.
    client = redis.Redis.from_url(url, socket_connect_timeout=0.3, socket_timeout=0.5,
                                  retry=Retry(NoBackoff(), 0))
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def start_private_redis(timeout: float = 10.0) -> tuple[str, Callable[[], None]]:
    """Start ``redis-server`` on a free port with a temporary dir; return (url, stop)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("no Redis to use: set REDIS_URL, start Redis on 127.0.0.1:6379, or "
                         "install redis-server (`make redis`)")
    workdir = tempfile.mkdtemp(prefix="kiqpy-demo-redis-")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--logfile", "redis.log", "--daemonize", "no"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"Stopped the private redis-server (pid {process.pid})")

    try:
        _wait_until_up(url, process, Path(workdir, "redis.log"), timeout)
        print(f"Redis: {url} (a private redis-server, pid {process.pid}, dir {workdir}, "
              f"stopped when the demo exits)")
    except BaseException:  # even Ctrl-C or a closed stdout: never leave the server behind
        stop()
        raise
    return url, stop


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float
                   ) -> None:
    deadline = time.monotonic() + timeout
    while not answers_ping(url):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise SystemExit(f"redis-server did not start at {url}:\n{tail}")
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _nothing() -> None:
    pass


# -- the jobs -------------------------------------------------------------------------------
def load_jobs() -> ModuleType:
    """Import ``demo_jobs`` under that name, whoever imports this module and from where, so job
    names match those of a worker started with ``-r demo_jobs`` in this directory."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return importlib.import_module("demo_jobs")


def enqueue_examples() -> list[tuple[str, str, str | None]]:
    """Push the example jobs through the public API; return (call, where to, jid) triples."""
    jobs = load_jobs()
    sleeper, word_count, greeter = jobs.Sleeper, jobs.WordCount, jobs.Greeter
    pushed = [
        ("Sleeper.perform_async(0.2)", "default", sleeper.perform_async(0.2)),
        ("WordCount.perform_async('the quick brown fox ...')", "default",
         word_count.perform_async("the quick brown fox jumps over the lazy dog")),
        ("Greeter.perform_async('Ada')", "mail", greeter.perform_async("Ada")),
        ("Sleeper.perform_in(5, 0.2)", "schedule", sleeper.perform_in(5, 0.2)),
        ("WordCount.set(queue='mail').perform_async('hello kiqpy')", "mail",
         word_count.set(queue="mail").perform_async("hello kiqpy")),
    ]
    names = [["Grace"], ["Linus"], ["Guido"]]
    jids = greeter.perform_bulk(names)  # one round trip for the whole list
    pushed += [(f"Greeter.perform_bulk([...]) item {index}", "mail", jid)
               for index, jid in enumerate(jids)]
    return pushed


# -- what is in Redis -----------------------------------------------------------------------
def snapshot(url: str) -> dict[str, int]:
    """Job counts by key: each known queue's list, then the schedule set."""
    keys = Keys(kiqpy.default_config().namespace)
    client = redis.Redis.from_url(url)
    try:
        names = sorted(name.decode() for name in client.smembers(keys.queues))
        counts = {keys.queue(name): client.llen(keys.queue(name)) for name in names}
        counts[keys.schedule] = client.zcard(keys.schedule)
        return counts
    finally:
        client.close()


def show_redis(url: str) -> None:
    """Print the queues, the schedule set and the next job of the default queue, decoded."""
    print("In Redis now:")
    for key, count in snapshot(url).items():
        print(f"  {key:<28} {count} job{'' if count == 1 else 's'}")
    keys = Keys(kiqpy.default_config().namespace)
    client = redis.Redis.from_url(url)
    try:
        # Producers LPUSH and workers take from the right, so index -1 is the next job to run.
        raw = client.lindex(keys.queue("default"), -1)
    finally:
        client.close()
    if raw is not None:
        encoding = "JSON" if raw.startswith(b"{") else "msgpack"
        print(f"Next job on {keys.queue('default')} ({len(raw)} bytes of {encoding}), decoded:")
        print(json.dumps(decode(raw), indent=2, sort_keys=True))


# -- the worker ---------------------------------------------------------------------------
def run_worker(redis_url: str) -> None:
    """Run a worker over the demo's queues until they are empty (30 s at most)."""
    env = {**os.environ, "REDIS_URL": redis_url}
    env.pop("KIQPY_REDIS_URL", None)
    # The CLI of the README, as a user would start it from this directory, on the demo's
    # namespace only.
    command = [sys.executable, "-c", "from kiqpy.cli import main; main()",
               "-r", "demo_jobs", "-q", ",".join(QUEUES), "--namespace", NAMESPACE, "-c", "5"]
    worker = subprocess.Popen(command, cwd=HERE, env=env)
    deadline = time.monotonic() + 30
    try:
        while worker.poll() is None and any(snapshot(redis_url).values()):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        worker.terminate()  # TERM: finish the running jobs, then exit
        code = worker.wait(30)
    print(f"Worker exited with code {code}; left in Redis: {snapshot(redis_url)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Enqueue kiqpy's example jobs and show Redis.")
    parser.add_argument("--no-worker", action="store_true",
                        help="only enqueue and show; leave the jobs in Redis")
    options = parser.parse_args(argv)
    # A TERM becomes SystemExit, so the `finally` below still stops a private redis-server.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    url, release = ensure_redis()
    try:
        kiqpy.configure(redis_url=url, namespace=NAMESPACE)
        print(f"Namespace: {NAMESPACE} (every key the demo writes or reads starts with "
              f"'{NAMESPACE}:')")
        print("Enqueued:")
        for call, where, jid in enqueue_examples():
            print(f"  {call:<58} -> {where:<8} jid {jid}")
        show_redis(url)
        if not options.no_worker:
            run_worker(url)
    finally:
        release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
