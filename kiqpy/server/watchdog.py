"""Job timeouts: a job still running after its ``timeout`` gets :class:`kiqpy.JobTimeout` raised
in its thread, and fails like any error (retried by its rules, with the timeout in the
message).

CPython delivers an exception to another thread (``PyThreadState_SetAsyncExc``) the next time
that thread runs Python bytecode. So it interrupts Python code (loops, calls between pure-Python
steps) but not a blocking C call: ``time.sleep``, a socket read without a timeout, a C
extension's long computation run on until they return. A job still running ``timeout_grace``
seconds after its timeout is stuck in such a call; the watchdog then asks the process to be
replaced (``on_stuck``: the launcher stops gracefully with the recycle exit code, which a
``-p`` supervisor answers with a fresh child). The stuck job is pushed back to its queue by the
shutdown after ``-t`` (or recovered after a kill), so it runs again: nothing is lost.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from typing import Any

from kiqpy.errors import JobTimeout

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)


class Watchdog:
    """Loop (thread ``kiqpy.watchdog``): every 0.1 s, raise :class:`JobTimeout` in the threads
    whose job passed its deadline, and report a job stuck past the grace period once. Owns the
    table of armed deadlines (thread id -> jid, deadline); processors arm and disarm it under
    its lock, so an exception is only ever sent while the job it is meant for runs. Exits when
    ``stop`` is set. A job without a timeout never touches it."""

    TICK = 0.1

    def __init__(self, grace: float, log: Any, stop: threading.Event,
                 on_stuck: Callable[[], None]) -> None:
        self.grace, self.log, self.stop, self.on_stuck = grace, log, stop, on_stuck
        self._lock = threading.Lock()
        # thread id -> [jid, deadline (monotonic), timeout, sent]
        self._armed: dict[int, list[Any]] = {}
        self._reported: set[str] = set()

    def arm(self, jid: str, timeout: float) -> None:
        with self._lock:
            self._armed[threading.get_ident()] = [jid, time.monotonic() + timeout, timeout, False]

    def disarm(self) -> None:
        with self._lock:
            self._armed.pop(threading.get_ident(), None)

    def run(self) -> None:
        while not self.stop.wait(self.TICK):
            self.check(time.monotonic())

    def check(self, now: float) -> None:
        stuck = []
        with self._lock:
            for ident, armed in self._armed.items():
                jid, deadline, timeout, sent = armed
                if now < deadline:
                    continue
                if not sent:
                    # Sent while the job is armed (under the lock): it cannot reach the
                    # processor's own code after the job, which disarms under this lock first.
                    _set_async_exc(ident, JobTimeout)
                    armed[3] = True
                    self.log.warning("job timed out; interrupting it", jid=jid, timeout=timeout)
                elif now >= deadline + self.grace and jid not in self._reported:
                    self._reported.add(jid)
                    stuck.append((jid, timeout))
        for jid, timeout in stuck:
            self.log.error("job did not stop at its timeout (stuck in a blocking call); "
                           "replacing this process, the job will run again", jid=jid,
                           timeout=timeout, grace=self.grace)
            self.on_stuck()


def settle() -> None:
    """A call after :meth:`Watchdog.disarm`: an exception the watchdog sent just before it
    is raised here at the latest (a call checks for pending asynchronous exceptions), inside
    the caller's ``try``, rather than somewhere in the processor's bookkeeping."""
