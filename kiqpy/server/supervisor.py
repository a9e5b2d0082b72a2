"""``kiqpy -p N``: one parent process that forks N worker processes and keeps them running.

Python runs Python code on one core per process, so real deployments run several processes.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kiqpy import log as kiqpy_log
from kiqpy.server.heartbeat import process_rss_kb
from kiqpy.server.launcher import EXIT_RECYCLE, EXIT_STOPPED

if TYPE_CHECKING:
    from http.server import HTTPServer

# How long the parent waits past the children's own shutdown timeout before SIGKILL, unless
# told (kiqpy.cli.serve passes the worker's bounded overrun, launcher.shutdown_overrun).
KILL_GRACE = 15.0


@dataclass
class Child:
    index: int
    pid: int
    started: float = field(default_factory=time.monotonic)
    recycling: str = ""  # why it was told to stop, when it was


class Supervisor:
    """Loop (the parent's main thread; no other threads, so forking stays safe): keep
    ``count`` children alive, restart one that dies (with backoff if it keeps dying young),
    replace one over ``max_memory_mb`` (TERM: it finishes its jobs within the timeout; one
    child at a time, so capacity never drops to zero) or one that exits with EXIT_RECYCLE
    (--max-jobs), and forward TERM/INT/TSTP/TTIN/USR1. After TSTP it stays quiet: children
    started later (replacements) start quiet too. A child stopped through Redis (EXIT_STOPPED)
    is not replaced; once none is left the supervisor exits 0. Exits 0 once every child has
    shut down after a TERM/INT; a second TERM/INT exits at once.

    ``run_child(index, quiet)`` runs in each forked child and returns its exit code.
    """

    def __init__(self, count: int, run_child: Callable[[int, bool], int], timeout: float,
                 log: Any,
                 max_memory_mb: float | None = None, health: HTTPServer | None = None,
                 on_reopen: Callable[[], None] | None = None,
                 on_child_died: Callable[[int], None] | None = None,
                 kill_grace: float = KILL_GRACE) -> None:
        self.count, self.run_child, self.timeout, self.log = count, run_child, timeout, log
        self.kill_grace = kill_grace
        self.max_memory_kb = max_memory_mb * 1024 if max_memory_mb else None
        self.health, self.on_reopen, self.on_child_died = health, on_reopen, on_child_died
        self.children: dict[int, Child] = {}
        self.failures: dict[int, int] = {}  # index -> recent crashes, for backoff
        self.restart_at: dict[int, float] = {}
        self.stopping_since: float | None = None
        self.quiet = False
        self.signals: list[int] = []
        self.exit_code = 0

    def run(self) -> int:
        """Start the children and supervise them until they have all stopped. The caller
        installs signal handlers that append to :attr:`signals` (see kiqpy.cli.serve)."""
        self.log.info("supervisor starting", processes=self.count, pid=os.getpid())
        for index in range(self.count):
            self._spawn(index)
        next_memory_check = time.monotonic()
        while self.children or (self.stopping_since is None and self.restart_at):
            self._wait(0.2)
            self._handle_signals()
            self._reap()
            if self.stopping_since is None:
                self._restart_due()
                if self.max_memory_kb and time.monotonic() >= next_memory_check:
                    self._check_memory()
                    next_memory_check = time.monotonic() + 2.0
            elif time.monotonic() - self.stopping_since > self.timeout + self.kill_grace:
                self._kill_all()
        self.log.info("supervisor stopped", exit_code=self.exit_code)
        return self.exit_code

    def child_pids(self) -> list[int]:
        return [child.pid for child in self.children.values()]

    # -- children ----------------------------------------------------------------------------
    def _spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                # A process group of its own: Ctrl-C in a terminal, or a process manager that
                # signals the whole group (supervisord's stopasgroup), reaches only this
                # supervisor, which forwards one TERM. Receiving both would count as a second
                # stop signal and exit the child at once, jobs unfinished.
                os.setpgid(0, 0)
                # Until the worker installs its own handlers, the parent's (inherited) ones
                # append to this list: a stop signal sent to a child still starting is read
                # from it once the worker is up (kiqpy.cli.serve), not lost.
                self.signals.clear()
                if self.health is not None:
                    self.health.socket.close()
                code = self.run_child(index, self.quiet)
            finally:
                kiqpy_log.flush()  # os._exit runs no atexit hook
                os._exit(code)
        self.children[pid] = Child(index, pid)
        self.log.info("worker process started", index=index, pid=pid)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is not None:
                self._child_exited(child, status)

    def _child_exited(self, child: Child, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, EXIT_RECYCLE, EXIT_STOPPED) and self.on_child_died is not None:
            # Died without leaving the registry: let its jobs be recovered now, not at expiry.
            self.on_child_died(child.pid)
        if self.stopping_since is not None:
            if code not in (0, EXIT_RECYCLE, EXIT_STOPPED):  # those shut down cleanly
                self.exit_code = 1
            self.log.info("worker process exited", pid=child.pid, exit_code=code)
            return
        if code == EXIT_STOPPED:
            self.log.info("worker process stopped through Redis; not replacing it",
                          pid=child.pid, left=len(self.children))
            return
        if child.recycling or code == EXIT_RECYCLE:
            reason = child.recycling or "reached --max-jobs"
            self.log.info("replacing worker process", pid=child.pid, reason=reason)
            self.restart_at[child.index] = time.monotonic()
            return
        # Died on its own: a signal (negative code) or an error exit. Restart with backoff
        # when it keeps dying young: 1, 2, 4 ... 30 s, jittered by the loop's 0.2 s tick.
        young = time.monotonic() - child.started < 10
        crashes = self.failures.get(child.index, 0) + 1 if young else 1
        self.failures[child.index] = crashes
        delay = 0.0 if crashes == 1 else min(30.0, 2.0 ** (crashes - 2))
        why = f"signal {-code}" if code < 0 else f"exit code {code}"
        self.log.warning("worker process died; restarting", pid=child.pid, why=why,
                         restart_in_s=delay)
        self.restart_at[child.index] = time.monotonic() + delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for index, when in list(self.restart_at.items()):
            if when <= now:
                del self.restart_at[index]
                self._spawn(index)

    def _check_memory(self) -> None:
        if any(child.recycling for child in self.children.values()):
            return  # one at a time: the others keep working meanwhile
        for child in self.children.values():
            rss = process_rss_kb(child.pid)
            if not child.recycling and self.max_memory_kb and rss > self.max_memory_kb:
                child.recycling = f"RSS {rss // 1024} MB over --max-memory"
                self.log.warning("worker process over its memory limit; recycling",
                                 pid=child.pid, rss_mb=rss // 1024)
                os.kill(child.pid, signal.SIGTERM)
                return

    # -- signals -----------------------------------------------------------------------------
    def _handle_signals(self) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            if signum in (signal.SIGTERM, signal.SIGINT):
                if self.stopping_since is not None:
                    self.log.warning("second stop signal: exiting now")
                    self._forward(signal.SIGTERM)
                    kiqpy_log.flush()
                    os._exit(1)
                self.stopping_since = time.monotonic()
                self.restart_at.clear()
                self.log.info("supervisor stopping", children=len(self.children))
                # A child being recycled already has its TERM; a second would make it exit
                # at once, its running jobs unfinished.
                self._forward(signal.SIGTERM, skip_recycling=True)
            elif signum == signal.SIGTSTP:
                if not self.quiet:
                    self.log.info("supervisor quiet: children stop fetching, and any "
                                  "replacement starts quiet")
                self.quiet = True
                self._forward(signum)
            elif signum == signal.SIGUSR1 and self.on_reopen is not None:
                self.on_reopen()
                self._forward(signum)
            else:
                self._forward(signum)

    def _forward(self, signum: int, skip_recycling: bool = False) -> None:
        for pid, child in list(self.children.items()):
            if skip_recycling and child.recycling:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _kill_all(self) -> None:
        self.log.warning("children still running past the timeout; killing them")
        self._forward(signal.SIGKILL)
        self.exit_code = 1

    def _wait(self, seconds: float) -> None:
        """Sleep, serving health checks in this same thread when configured."""
        if self.health is None:
            time.sleep(seconds)
            return
        try:
            ready, _, _ = select.select([self.health.socket], [], [], seconds)
        except InterruptedError:
            return
        if ready:
            self.health.handle_request()
