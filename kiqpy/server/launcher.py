"""One worker process, wired: fetcher, processors, scheduler, heartbeat; and the order in which
they stop. Installs no signal handlers (the CLI does), so it can run embedded in any program.

    launcher = Launcher(config)
    launcher.run()            # blocks; returns the exit code after stop() or a remote "stop"
"""

from __future__ import annotations

import queue as _queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from kiqpy import queues
from kiqpy.client.periodic import entries as periodic_entries
from kiqpy.config import Config
from kiqpy.connection import connect
from kiqpy.keys import Keys
from kiqpy.log import get_logger
from kiqpy.server import aio
from kiqpy.server.batches import Reporter
from kiqpy.server.events import fire
from kiqpy.server.fetch import BLOCK_SECONDS, MAX_WAITERS, Fetcher
from kiqpy.server.heartbeat import Heartbeat, new_identity
from kiqpy.server.manager import Manager
from kiqpy.server.outage import Outage
from kiqpy.server.retry import Retrier
from kiqpy.server.scheduler import Scheduler
from kiqpy.server.ticker import Ticker
from kiqpy.server.watchdog import Watchdog

EXIT_RECYCLE = 75  # the exit code asking a supervisor for a replacement (--max-jobs)
# The exit code of a supervised child stopped through Redis (dashboard "Stop", api
# Process.stop): its supervisor does not start a replacement.
EXIT_STOPPED = 76

# How long shutdown keeps trying to reach Redis for acks and the requeue before leaving the
# jobs in-flight for orphan recovery.
FLUSH_SECONDS = 5.0


class Launcher:
    """Owns one worker process's threads. :meth:`run` starts them and waits for a command;
    "quiet" stops fetching, "stop" runs :meth:`shutdown`, "dump" logs every thread's stack."""

    def __init__(self, config: Config, identity: str | None = None,
                 max_jobs: int | None = None, quiet: bool = False) -> None:
        self.config = config
        self.max_jobs = max_jobs
        self.log = get_logger()
        # One blocking waiter per queue, up to MAX_WAITERS; patterns may resolve to that many.
        waiters = (MAX_WAITERS if queues.dynamic(config.queues)
                   else len(config.queues) if len(config.queues) <= MAX_WAITERS else 0)
        self.redis = connect(config.redis_url, config.pool_size or config.concurrency + waiters
                             + 6 + aio.IO_THREADS, config.socket_timeout, config.sentinel_auth)
        self.keys = Keys(config.namespace, config.on_cluster)
        self.identity = identity or new_identity()
        self.outage = Outage(self.redis.kiqpy_url, self.log)  # type: ignore[attr-defined]
        self.hard_stop = threading.Event()
        self.background_stop = threading.Event()
        self.fetcher = Fetcher(config, self.redis, self.keys, self.identity, self.outage,
                               self.log)
        self.fetcher.budget = max_jobs
        self.retrier = Retrier(config, self.redis, self.keys, self.outage, self.log,
                               self.hard_stop)
        # Reports successes of batch jobs in groups, then acks them (kiqpy/server/batches.py).
        self.reporter = Reporter(self.retrier.outcomes, self.fetcher.done, self.fetcher.release,
                                 self.outage, self.hard_stop)
        self.retrier.outcomes.reporter = self.reporter
        self.watchdog = Watchdog(config.timeout_grace, self.log, self.background_stop,
                                 self._stuck)
        self.manager = Manager(config.concurrency, self.fetcher, self.retrier,
                               config.server_middleware, self.log, config.metrics,
                               self.watchdog, config.default_timeout,
                               config.async_concurrency)
        self.heartbeat = Heartbeat(config, self.redis, self.keys, self.identity, self.manager,
                                   self.fetcher, self.outage, self.log, self._remote,
                                   self.background_stop, self._poison_pill_died)
        self.scheduler = Scheduler(config, self.redis, self.keys, self.outage, self.log,
                                   self.background_stop)
        # Only a process that knows periodic entries (from -r modules or the -C file) ticks.
        self.ticker = (Ticker(config, self.redis, self.keys, self.identity, self.outage,
                              self.log, self.background_stop) if periodic_entries() else None)
        self.exit_code = 0
        self.stop_requested = threading.Event()
        self.started = threading.Event()
        self.stopped = threading.Event()
        self._commands: _queue.SimpleQueue[str] = _queue.SimpleQueue()
        self._background: list[threading.Thread] = []
        self.stopped_remotely = False  # a "stop" came through Redis (dashboard, api)
        if quiet:  # a supervisor that is quiet starts its replacement children quiet
            self._quiet()

    # -- control (thread-safe) -----------------------------------------------------------------
    def command(self, name: str) -> None:
        """Ask for "quiet", "stop" or "dump"; carried out by the thread in :meth:`run`."""
        self._commands.put(name)

    def quiet(self) -> None:
        self.command("quiet")

    def _remote(self, name: str) -> None:
        """A command read from this process's signals list in Redis."""
        if name == "stop":
            self.stopped_remotely = True
        self.command(name)

    def stop(self) -> None:
        self.stop_requested.set()
        self.command("stop")

    # -- running -----------------------------------------------------------------------------
    def start(self) -> None:
        """Register the process, then start every thread."""
        self.log.info("starting", identity=self.identity, concurrency=self.config.concurrency,
                      queues=self.config.queue_names, redis=self.outage.url)
        try:
            fire(self.config, self.log, "startup", strict=True)
        except Exception:
            self.log.exception("a startup event handler failed; not starting")
            self.exit_code = 1
            return
        # Registered (in-flight owner, heartbeat hash) before the first fetch, so that a crash
        # right after it leaves jobs that orphan recovery can find.
        if self.outage.retry(self._first_beat, "start", self.stop_requested) is None:
            return  # stopped while waiting for Redis: nothing was started
        fire(self.config, self.log, "heartbeat")
        self.reporter.start(self.spawn)
        self.manager.start(self.spawn)
        self.fetcher.start(self.spawn)
        self._background.append(self.spawn("kiqpy.scheduler", self.scheduler.run))
        self._background.append(self.spawn("kiqpy.heartbeat", self.heartbeat.run))
        self._background.append(self.spawn("kiqpy.watchdog", self.watchdog.run))
        if self.ticker is not None:
            self._background.append(self.spawn("kiqpy.periodic", self.ticker.run))
        self.started.set()

    def _stuck(self) -> None:
        """A job stuck past its timeout: stop as for a memory recycle (a -p supervisor starts
        a replacement); the shutdown pushes the stuck job back to its queue after -t."""
        if not self.stop_requested.is_set():
            self.exit_code = EXIT_RECYCLE
            self.stop()

    def _first_beat(self) -> bool:
        self.heartbeat.beat()
        return True

    def run(self) -> int:
        """Start, carry out commands until "stop", shut down; returns the exit code."""
        self.start()
        if not self.started.is_set():
            if not self.exit_code:
                self.log.info("stopped before Redis could be reached")
            self.stopped.set()
            return self.exit_code
        while True:
            try:
                # Never block without a timeout: a signal (TERM) that the kernel delivers to
                # another thread only trips a flag, and its Python handler runs once this main
                # thread executes bytecode again; an endless wait would never get there.
                name = self._commands.get(timeout=0.5)
            except _queue.Empty:
                name = self._check_max_jobs()
            if name == "quiet":
                self._quiet()
            elif name == "dump":
                self.dump_threads()
            elif name == "stop":
                break
        self.shutdown()
        return self.exit_code

    def _check_max_jobs(self) -> str:
        processed = self.manager.counts()[0]
        if self.max_jobs and processed >= self.max_jobs:
            self.log.info("reached --max-jobs; stopping to be replaced", processed=processed)
            self.exit_code = EXIT_RECYCLE
            return "stop"
        return ""

    def healthy(self) -> tuple[bool, str]:
        """For the health endpoint: a recent heartbeat and Redis reachable."""
        beat = self.heartbeat.last_beat
        if self.outage.since is not None:
            return False, f"redis unreachable for {time.monotonic() - self.outage.since:.0f} s"
        if beat is None:
            return False, "no heartbeat yet"
        age = time.monotonic() - beat
        if age > 2 * self.config.heartbeat_interval + 5:
            return False, f"last heartbeat {age:.0f} s ago"
        if self.stopped.is_set():
            return False, "stopped"
        quiet = " (quiet)" if self.heartbeat.quiet else ""
        return True, f"ok{quiet}: {self.identity}, last heartbeat {age:.1f} s ago"

    def spawn(self, name: str, body: Callable[[], None]) -> threading.Thread:
        """Start a named daemon thread whose crash is logged and stops the process."""
        def guarded() -> None:
            try:
                body()
            except BaseException:
                self.log.exception("thread crashed; stopping", thread=name)
                self.exit_code = 1
                self.stop()
                raise

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        return thread

    def _quiet(self) -> None:
        if not self.fetcher.stopping:
            self.log.info("quiet: no new jobs will be fetched", identity=self.identity)
            fire(self.config, self.log, "quiet")
        self.fetcher.stop()
        self.heartbeat.quiet = True
        if self.ticker is not None:
            self.ticker.quiet = True  # a quiet process is on its way out: let another lead

    def dump_threads(self) -> None:
        """Log the stack of every thread (TTIN, or the remote "dump" signal)."""
        frames = sys._current_frames()
        for thread in threading.enumerate():
            frame = frames.get(thread.ident or -1)
            stack = "".join(traceback.format_stack(frame)) if frame else "(no frame)"
            self.log.warning("thread dump", thread=thread.name, stack=stack)

    # -- stopping --------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop in a fixed order, within ``timeout`` seconds plus a few for Redis writes."""
        started = time.monotonic()
        self.log.info("shutting down", timeout=self.config.timeout)
        # 1. Quiet: no new jobs. Jobs already taken but not started will be requeued.
        self._quiet()
        fire(self.config, self.log, "shutdown")
        self.manager.stop()
        # 2. Let running jobs finish, up to the timeout (async ones too).
        finished = self.manager.join(self.config.timeout)
        if not finished:
            self.log.warning("jobs still running at the timeout; requeueing them",
                             running=len(self.manager.snapshot()))
            # Async jobs are cancelled (never acked), so the requeue below puts them back.
            self.manager.abandon()
        # 2b. Jobs handed to the batch reporter are reported, then acked (before the fetcher
        #     sends its last acks).
        reported = self.reporter.close(FLUSH_SECONDS)
        # 3. From here a failure's Redis writes give up rather than block the exit: such a
        #    job stays in-flight, so it is requeued below or recovered later.
        self.hard_stop.set()
        self.background_stop.set()
        acked = self.fetcher.close(FLUSH_SECONDS)
        # 4. The waiters may still be inside BLMOVE; a job they take lands in-flight, so the
        #    requeue must come after they have exited.
        fetch_done = self.fetcher.join_waiters(BLOCK_SECONDS + self.config.socket_timeout)
        # 5. Everything still in-flight goes back to the front of its queue.
        requeued = self.outage.retry(self.fetcher.requeue, "requeue",
                                     _timer(FLUSH_SECONDS))
        clean = acked and fetch_done and requeued is not None and finished and reported
        # 6. Leave the registry. Unless all went well, stay an in-flight owner, so orphan
        #    recovery requeues whatever is left once this process's hash expires.
        self.outage.retry(self._leave if clean else self.heartbeat.clear, "leave",
                          _timer(FLUSH_SECONDS))
        self.log.info("stopped", requeued=requeued or 0, clean=clean,
                      seconds=round(time.monotonic() - started, 2))
        fire(self.config, self.log, "exit")
        self.stopped.set()

    def _poison_pill_died(self, job: dict[str, Any], error: BaseException) -> None:
        """A poison pill orphan recovery moved to the dead set: its batch and kept result
        learn of the death, as for a job that died in a processor."""
        self.retrier.outcomes.failed(job, error, "dead")

    def _leave(self) -> None:
        self.heartbeat.clear()
        self.redis.hdel(self.keys.inflight_owners, self.identity)


def shutdown_overrun(config: Config) -> float:
    """The most seconds :meth:`Launcher.shutdown` can take past ``config.timeout``: steps 2b
    to 6 are each bounded (FLUSH_SECONDS, or a blocked BLMOVE plus a socket timeout), and a
    Redis call under way when a step's timer runs out may still take a socket timeout. The
    ``-p N`` supervisor waits this long (and a little more) before it SIGKILLs a child."""
    return 4 * FLUSH_SECONDS + BLOCK_SECONDS + 5 * config.socket_timeout


def _timer(seconds: float) -> threading.Event:
    """An event that sets itself after ``seconds``."""
    event = threading.Event()
    timer = threading.Timer(seconds, event.set)
    timer.daemon = True
    timer.start()
    return event


def run(config: Config, **kwargs: Any) -> int:
    """Run a worker in this thread until it is stopped; returns its exit code."""
    return Launcher(config, **kwargs).run()


class Embedded:
    """A worker running inside another Python program (a web server, a notebook, a test), in a
    background thread, with no signal handlers of its own::

        worker = kiqpy.embed(concurrency=5, queues=(("default", 0),))
        ...
        worker.stop()            # graceful: waits for running jobs up to the timeout

    Also a context manager (``with kiqpy.embed() as worker: ...``).
    """

    def __init__(self, config: Config) -> None:
        self.launcher = Launcher(config)
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._run, name="kiqpy.embedded", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.exit_code = self.launcher.run()

    @property
    def identity(self) -> str:
        return self.launcher.identity

    def wait_started(self, timeout: float | None = None) -> bool:
        """Wait until the worker has registered and started its threads (it waits for Redis
        if Redis is down); True if it has."""
        return self.launcher.started.wait(timeout)

    def quiet(self) -> None:
        """Stop taking new jobs; running ones finish."""
        self.launcher.quiet()

    def stop(self, wait: bool = True) -> int | None:
        """Shut down gracefully (see Launcher.shutdown); with ``wait``, block until done and
        return the exit code."""
        self.launcher.stop()
        if wait:
            self._thread.join()
        return self.exit_code

    def __enter__(self) -> Embedded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def embed(config: Config | None = None, **changes: Any) -> Embedded:
    """Start a worker in a background thread of this process; see :class:`Embedded`.

    ``config`` defaults to kiqpy's default configuration; keywords replace its fields."""
    from kiqpy.config import default_config

    base = config or default_config()
    return Embedded(base.replace(**changes) if changes else base)
