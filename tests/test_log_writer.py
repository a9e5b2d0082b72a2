"""The JSON line writer (kiqpy.log.LineWriter): info lines are gathered and written together
within FLUSH_SECONDS by its own thread, warning and error lines at once and in order, and
nothing is lost at exit, at os._exit through kiqpy.log.flush(), or duplicated by a fork."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import structlog

from kiqpy import log
from tests import app_jobs
from tests.conftest import wait_for
from tests.workers import WorkerProcess, log_events

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pipe():
    """(a text stream on the write end of a pipe, a function returning what was read so far)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    stream = os.fdopen(write_fd, "w")
    seen: list[bytes] = []

    def read() -> list[dict]:
        try:
            while chunk := os.read(read_fd, 65536):
                seen.append(chunk)
        except BlockingIOError:
            pass
        return [json.loads(line) for line in b"".join(seen).splitlines()]

    yield stream, read
    log.flush()
    log._writers.clear()
    stream.close()
    os.close(read_fd)
    structlog.reset_defaults()


def test_info_lines_are_written_together_within_the_flush_interval(pipe) -> None:
    stream, read = pipe
    log.setup(fmt="json", stream=stream)
    logger = structlog.get_logger("kiqpy")

    for n in range(100):
        logger.info("start", n=n)

    lines = wait_for(lambda: len(read()) == 100 and read(), timeout=10,
                     message="100 info lines")
    assert [line["n"] for line in lines] == list(range(100))  # type: ignore[union-attr]


def test_a_warning_goes_out_at_once_after_the_lines_before_it(pipe) -> None:
    stream, read = pipe
    log.setup(fmt="json", stream=stream)
    logger = structlog.get_logger("kiqpy")

    logger.info("start")
    logger.warning("fail", error="boom")

    # No waiting: the warning's call wrote both lines before it returned
    assert [(line["event"], line["level"]) for line in read()] == [("start", "info"),
                                                                   ("fail", "warning")]


def test_flush_writes_what_waits(pipe) -> None:
    stream, read = pipe
    log.setup(fmt="json", stream=stream)
    structlog.get_logger("kiqpy").info("done")

    log.flush()

    assert [line["event"] for line in read()] == ["done"]


def test_a_starved_writer_thread_does_not_let_lines_pile_up(pipe) -> None:
    stream, read = pipe
    log.setup(fmt="json", stream=stream)
    logger = structlog.get_logger("kiqpy")
    writer = log._writers[0]
    # Lines waiting up to one short of the cap, and a writer thread that never came round
    # (none was started): the line that reaches the cap writes them all itself
    writer._waiting.extend([b""] * (log.MAX_WAITING - 1))
    writer._due.set()

    logger.info("the last straw")

    assert [line["event"] for line in read()] == ["the last straw"]
    assert not writer._waiting


PROGRAM = """
import os, sys, structlog
from kiqpy import log
log.setup(fmt="json", stream=sys.stderr)
logger = structlog.get_logger("kiqpy")
for n in range(5000):
    logger.info("line", n=n)
how = sys.argv[1]
if how == "fork":
    pid = os.fork()
    if pid == 0:
        logger.info("child")
        log.flush()
        os._exit(0)
    os.waitpid(pid, 0)
    logger.info("parent")
elif how == "os._exit":
    log.flush()
    os._exit(0)
"""


@pytest.mark.parametrize("how", ["exit", "os._exit", "fork"])
def test_no_line_is_lost_or_repeated_at_exit_and_across_a_fork(how: str) -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(PROGRAM), how], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)

    events = [json.loads(line) for line in done.stderr.splitlines()]
    numbered = [event["n"] for event in events if event["event"] == "line"]
    assert numbered == list(range(5000))
    extra = [event["event"] for event in events if event["event"] != "line"]
    assert extra == {"fork": ["child", "parent"]}.get(how, [])


def test_a_logfile_gets_the_lines_and_reopens_for_logrotate(tmp_path: Path) -> None:
    path = tmp_path / "kiqpy.log"
    log.setup(fmt="json", logfile=str(path))
    logger = structlog.get_logger("kiqpy")
    try:
        logger.info("before", n=1)
        wait_for(lambda: b"before" in path.read_bytes(), timeout=10, message="the first line")
        path.rename(tmp_path / "kiqpy.log.1")  # logrotate moves it, then sends USR1

        log.reopen()
        logger.info("after", n=2)
        log.flush()

        assert [json.loads(line)["event"] for line in path.read_text().splitlines()] == ["after"]
        assert b"after" not in (tmp_path / "kiqpy.log.1").read_bytes()
    finally:
        log.flush()
        log._writers.clear()
        log._logfile.clear()
        structlog.reset_defaults()


def test_a_worker_with_the_default_writes_every_line_by_a_graceful_stop(
        config, r, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIQPY_LOG_FLUSH")  # the default: lines written together
    with WorkerProcess(redis_url, "-p", "2") as worker:
        app_jobs.Record.perform_bulk([[n] for n in range(200)])

        # Lines come within the interval while the worker runs...
        wait_for(lambda: events(worker).count("done") == 200, timeout=30,
                 message="200 done lines")
        # ...and the last ones by the time the processes have stopped (TERM: the children
        # write theirs before os._exit, the supervisor at exit)
        app_jobs.Record.perform_bulk([[n] for n in range(200, 300)])
        wait_for(lambda: r.llen("test:ran") == 300, timeout=30, message="300 jobs run")
        worker.terminate()
        assert worker.wait(30) == 0

    seen = events(worker)
    assert (seen.count("start"), seen.count("done")) == (300, 300)
    assert (seen.count("stopped"), seen.count("supervisor stopped")) == (2, 1)


def events(worker: WorkerProcess) -> list[str]:
    return [event.get("event", "") for event in log_events(worker)]
