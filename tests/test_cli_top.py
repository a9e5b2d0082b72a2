"""``kiqpy top``: the Textual UI driven by Textual's pilot against a real Redis and a real
worker process, and the message when Textual is not installed."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner

import kiqpy
from kiqpy.api import DeadSet, ProcessSet, Queue, RetrySet
from kiqpy.cli import main
from kiqpy.config import Config
from kiqpy.payload import encode, new_jid, now_ms
from tests.workers import ROOT, WorkerProcess, identity_of

pytest.importorskip("textual")

from kiqpy.cli.tui import TopApp

APP = "tests.app_admin"


def failed(r, key: str = "retry", queue: str = "elsewhere") -> str:
    """A failed job in ``key``, for a queue no worker of these tests reads."""
    jid = new_jid()
    job = {"class": "tests.app_admin.Report", "args": [jid], "queue": queue, "jid": jid,
           "retry": True, "retry_count": 0, "created_at": now_ms(),
           "error_class": "ValueError", "error_message": "boom"}
    r.zadd(key, {encode(job): time.time() + (3600 if key == "retry" else -60)})
    return jid


async def until(pilot, predicate: Callable[[], object], message: str,
                timeout: float = 20) -> None:
    """Let the app run until ``predicate()`` holds (fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await pilot.pause(0.05)


def rows(app: TopApp, table: str) -> list[list[str]]:
    widget = app.query_one(f"#{table}")
    return [[str(c) for c in widget.get_row_at(i)] for i in range(widget.row_count)]


def choose(app: TopApp, table: str, first_cell: str) -> None:
    """Put the cursor of ``table`` on the row whose first cell is ``first_cell``."""
    widget = app.query_one(f"#{table}")
    index = next(i for i, row in enumerate(rows(app, table)) if row[0] == first_cell)
    widget.focus()
    widget.move_cursor(row=index)


def test_top_shows_a_live_worker_and_its_keys_act_on_it(config, r, redis_url):
    # Given a worker busy with one job, waiting jobs, two retries and one dead job
    retry_a, retry_b = failed(r), failed(r)
    dead = failed(r, "dead")
    kiqpy.enqueue("tests.app_admin.Report", 1, queue="waiting")
    kiqpy.enqueue("tests.app_admin.Nap", "top")
    with WorkerProcess(redis_url, "-q", "default", "-c", "2", "-g", "top-test",
                       require=APP) as worker:
        identity = identity_of(worker)

        async def scenario() -> None:
            app = TopApp(Config(redis_url=redis_url), refresh_seconds=0.2)
            async with app.run_test(size=(200, 60)) as pilot:
                # Then the screen shows the process, the busy job, the queues and the counters
                await until(pilot, lambda: any(
                    row[0] == identity and row[3] == "1/2" for row in rows(app, "processes"))
                    and rows(app, "busy"), "the busy worker on screen")
                [busy] = rows(app, "busy")
                assert busy[0] == identity and busy[3] == "tests.app_admin.Nap"
                assert rows(app, "queues")[0][:2] == ["waiting", "1"]
                counters = str(app.query_one("#counters").render())
                assert "Busy 1/2" in counters and "Retries 2" in counters
                assert "Dead 1" in counters
                assert {row[5] for row in rows(app, "entries")} == {retry_a, retry_b}

                # r retries the selected entry: it is pushed to its queue
                choose(app, "entries", rows(app, "entries")[0][0])
                chosen = rows(app, "entries")[0][5]
                await pilot.press("r")
                await until(pilot, lambda: Queue("elsewhere", config).size == 1, "the retry")
                assert RetrySet(config).find_job(chosen) is None
                other = ({retry_a, retry_b} - {chosen}).pop()
                await until(pilot, lambda: [row[5] for row in rows(app, "entries")] == [other],
                            "the entries to refresh")

                # k asks (and the screen keeps refreshing under the question); n keeps it,
                # k and y kill it
                await pilot.press("k")
                shown = app.refreshes
                await until(pilot, lambda: app.refreshes > shown + 1, "refreshes under Confirm")
                assert app.screen.query_one("#question")
                await pilot.press("n")
                assert RetrySet(config).size == 1
                await pilot.press("k")
                await pilot.press("y")
                await until(pilot, lambda: DeadSet(config).find_job(other), "the kill")

                # e shows the dead set
                await pilot.press("e")
                await until(pilot, lambda: {row[5] for row in rows(app, "entries")}
                            == {dead, other}, "the dead set on screen")
                assert str(app.query_one("#entries-title").render()) == "Dead (2)"

                # Q quiets the selected process, S asks and stops it
                choose(app, "processes", identity)
                await pilot.press("Q")
                await until(pilot, lambda: ProcessSet(config).find(identity).is_quiet,
                            "the worker to quiet")
                await until(pilot, lambda: rows(app, "processes")[0][7] == "quiet",
                            "quiet on screen")
                r.lpush("test:wake", 1)  # the Nap job ends, so the stop is quick
                await pilot.press("S")
                await pilot.press("y")
                await until(pilot, lambda: worker.process.poll() is not None, "the stop")
                await until(pilot, lambda: not rows(app, "processes"), "no process left")
                await pilot.press("q")

        asyncio.run(scenario())
        assert worker.wait(10) == 0


def test_top_says_which_extra_to_install_without_textual(monkeypatch, redis_url):
    monkeypatch.setitem(sys.modules, "textual", None)  # as if it were not installed
    result = CliRunner().invoke(main, ["top", "--redis-url", redis_url])
    assert result.exit_code == 1
    assert "kiqpy top needs Textual" in result.output
    assert "pip install 'kiqpy[tui]'" in result.output


def test_top_says_when_redis_cannot_be_read_and_keeps_running(closed_url):
    async def scenario() -> None:
        app = TopApp(Config(redis_url=closed_url), refresh_seconds=0.2)
        async with app.run_test() as pilot:
            status = app.query_one("#status")
            await until(pilot, lambda: "cannot read Redis" in str(status.render()),
                        "the status line")
            assert app.is_running and app.refreshes == 0
            await pilot.press("q")

    asyncio.run(scenario())


def test_kiqpy_top_runs_in_a_real_terminal_and_q_quits(config, r, redis_url):
    # Given the command in a pseudo-terminal of 120 x 40
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "REDIS_URL": redis_url, "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "kiqpy.cli", "top"], cwd=ROOT, env=env,
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    seen, deadline = b"", time.monotonic() + 30
    try:
        # Then it draws the counters read from Redis; q ends it with status 0
        while b"Processed" not in seen:
            assert time.monotonic() < deadline and proc.poll() is None, seen[-2000:]
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 65536)
        os.write(master, b"q")
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    os.read(master, 65536)  # keep the terminal drained while it exits
                except OSError:
                    break
        assert proc.wait(10) == 0
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
