"""Running the worker process(es) the command line asked for: one process, or a supervisor
with N children (-p); signal handlers, --pidfile, --health-port, log reopening on USR1.

This is the CLI's side of things; library code (Launcher, kiqpy.embed) installs no signal
handlers. Signals:

    TERM, INT   graceful stop within -t (a second one exits at once; in-flight jobs are
                recovered by another process)
    TSTP        quiet: stop fetching          TTIN   log every thread's stack
    USR1        reopen --logfile (logrotate)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from kiqpy import log as kiqpy_log
from kiqpy.config import Config
from kiqpy.connection import REDIS_DOWN, close, connect
from kiqpy.errors import RedisUnavailableError
from kiqpy.keys import Keys


@dataclass(frozen=True)
class ProcessOptions:
    """How to run: the flags that shape processes rather than the worker itself."""

    processes: int = 1
    max_memory: float | None = None  # MB
    max_jobs: int | None = None
    preload: bool = False
    pidfile: str | None = None
    health_port: int | None = None
    health_host: str = "127.0.0.1"

    @property
    def supervised(self) -> bool:
        return self.processes > 1 or bool(self.max_memory) or bool(self.max_jobs)


@contextlib.contextmanager
def pidfile(path: str | None) -> Iterator[None]:
    """Write this process's pid to ``path`` for the run; remove it afterwards."""
    if not path:
        yield
        return
    with open(path, "w") as handle:
        handle.write(f"{os.getpid()}\n")
    mine = False
    try:
        yield
    finally:
        with contextlib.suppress(OSError), open(path) as handle:
            mine = handle.read().strip() == str(os.getpid())
        if mine:
            with contextlib.suppress(OSError):
                os.remove(path)


class AppLoader(Protocol):
    """Imports the application (the -r modules) and returns the configuration, once."""

    def __call__(self) -> Config: ...

    def base(self) -> Config:
        """The configuration without importing the application."""
        ...


def run(load_app: AppLoader, options: ProcessOptions) -> int:
    """Run as ``options`` says; ``load_app`` imports the -r modules and returns the
    configuration (the same one on every call). Returns the exit code."""
    with pidfile(options.pidfile):
        if not options.supervised:
            return run_worker(load_app(), options)
        if options.preload:
            load_app()
        return run_supervisor(options, load_app)


def run_worker(config: Config, options: ProcessOptions, max_jobs: int | None = None,
               parent: int | None = None, quiet: bool = False,
               early_signals: list[int] | None = None) -> int:
    """One worker process in this process, with signal handlers. With ``parent`` (a
    supervisor's pid), it also stops when that supervisor is gone, so a kill -9 of the
    supervisor does not leave workers running unsupervised, and exits with EXIT_STOPPED when
    stopped through Redis, so that the supervisor does not replace it. ``quiet``: start quiet
    (a replacement child of a quiet supervisor). ``early_signals``: signals a supervised child
    received before its handlers were installed (a stop among them is carried out)."""
    from kiqpy.server.launcher import EXIT_STOPPED, Launcher

    launcher = Launcher(config, max_jobs=max_jobs, quiet=quiet)
    if parent is not None:
        _watch_parent(parent, launcher)
    stopping = {"once": False}

    def stop(signum: int, frame: Any) -> None:
        if stopping["once"]:
            kiqpy_log.flush()  # os._exit runs no atexit hook
            os._exit(1)  # jobs still in-flight stay there; orphan recovery brings them back
        stopping["once"] = True
        launcher.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTSTP, lambda s, f: launcher.quiet())
    signal.signal(signal.SIGTTIN, lambda s, f: launcher.command("dump"))
    signal.signal(signal.SIGUSR1, lambda s, f: kiqpy_log.reopen())
    # A supervised child: a stop its supervisor sent while this process was still starting.
    if early_signals and any(s in (signal.SIGTERM, signal.SIGINT) for s in early_signals):
        stop(signal.SIGTERM, None)
    server = None
    if options.health_port is not None:
        from kiqpy.cli import health

        server = health.serve_in_thread(options.health_host, options.health_port,
                                        launcher.healthy, health.prometheus(config),
                                        spawn=launcher.spawn)
    try:
        code = launcher.run()
    finally:
        if server is not None:
            server.shutdown()
    if parent is not None and code == 0 and launcher.stopped_remotely:
        return EXIT_STOPPED
    return code


def run_supervisor(options: ProcessOptions, load_app: AppLoader) -> int:
    """A parent that forks ``options.processes`` workers (see kiqpy.server.supervisor)."""
    from kiqpy.server.launcher import shutdown_overrun
    from kiqpy.server.supervisor import Supervisor

    # What the parent needs (timeout, Redis for the health check) does not depend on the app.
    config = load_app() if options.preload else load_app.base()

    parent = os.getpid()

    def run_child(index: int, quiet: bool) -> int:
        return run_worker(load_app(), ProcessOptions(), max_jobs=options.max_jobs,
                          parent=parent, quiet=quiet, early_signals=supervisor.signals)

    supervisor = Supervisor(options.processes, run_child, config.timeout, kiqpy_log.get_logger(),
                            max_memory_mb=options.max_memory, on_reopen=kiqpy_log.reopen,
                            on_child_died=forget_dead_child(config),
                            # a child's shutdown is bounded; SIGKILL only past that bound
                            kill_grace=shutdown_overrun(config) + 2.0)
    if options.health_port is not None:
        from kiqpy.cli import health

        supervisor.health = health.make_server(
            options.health_host, options.health_port,
            supervisor_check(config, supervisor.child_pids), threading_server=False,
            metrics=health.prometheus(config))
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTSTP, signal.SIGTTIN,
                   signal.SIGUSR1):
        signal.signal(signum, lambda s, f: supervisor.signals.append(s))
    try:
        return supervisor.run()
    finally:
        if supervisor.health is not None:
            supervisor.health.server_close()


def supervisor_check(config: Config, child_pids: Callable[[], list[int]]
                     ) -> Callable[[], tuple[bool, str]]:
    """Healthy when Redis answers and every child has a fresh heartbeat."""
    client = connect(config.redis_url, 1, config.socket_timeout, config.sentinel_auth)
    keys, host = Keys(config.namespace, config.on_cluster), socket.gethostname()
    max_age = 2 * config.heartbeat_interval + 5

    from kiqpy.cli import health

    def check() -> tuple[bool, str]:
        try:
            live = health.live_processes(client, keys, max_age)
        except RedisUnavailableError as exc:
            return False, f"redis unreachable: {exc}"
        fresh = {p.pid for p in live if p.hostname == host}
        pids = child_pids()
        stale = [pid for pid in pids if pid not in fresh]
        if stale or not pids:
            return False, f"{len(stale)} of {len(pids)} worker processes without a fresh heartbeat"
        return True, f"ok: {len(pids)} worker processes"

    return check


def forget_dead_child(config: Config) -> Callable[[int], None]:
    """For the supervisor, once it has reaped a child that died without shutting down: delete
    that child's heartbeat hash, which is what its expiry would do ``process_ttl`` later. The
    child is certainly dead (reaped), so the next heartbeat of any live process requeues its
    in-flight jobs: seconds after a kill -9 instead of a minute. If Redis cannot be reached,
    expiry does the same later."""
    keys, host = Keys(config.namespace, config.on_cluster), socket.gethostname()

    def forget(pid: int) -> None:
        try:
            # Inside the try: a cluster client reaches its nodes when it is built.
            client = connect(config.redis_url, 1, config.socket_timeout, config.sentinel_auth)
        except RedisUnavailableError:
            return
        try:
            for member in client.smembers(keys.processes):
                identity = (member.decode(errors="replace") if isinstance(member, bytes)
                            else member)
                parts = identity.rsplit(":", 2)
                if len(parts) == 3 and parts[0] == host and parts[1] == str(pid):
                    client.delete(keys.process(identity))
        except (RedisUnavailableError, *REDIS_DOWN):
            pass
        finally:
            close(client)

    return forget


def _watch_parent(parent: int, launcher: Any) -> None:
    """Thread ``kiqpy.parent-watch``: once a second, is the supervisor still our parent? If
    not (it was killed; we were re-parented), stop gracefully like on TERM."""
    def watch() -> None:
        while not launcher.stopped.wait(1.0):
            if os.getppid() != parent:
                launcher.log.warning("supervisor gone; stopping", supervisor=parent)
                launcher.stop()
                return

    launcher.spawn("kiqpy.parent-watch", watch)  # a crash is logged and stops the process
