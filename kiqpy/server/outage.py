"""Living through Redis outages: log once when Redis goes away, once when it is back, and
retry with jittered exponential backoff in between. Shared by every worker thread."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from kiqpy.connection import REDIS_DOWN

T = TypeVar("T")


def backoff(attempt: int, cap: float = 5.0) -> float:
    """Delay before retry number ``attempt`` (0-based): 50 ms doubling up to ``cap``, times a
    random factor in [0.5, 1.5) so that threads and processes do not retry in lockstep."""
    return min(cap, 0.05 * (2 ** min(attempt, 16))) * random.uniform(0.5, 1.5)


class Outage:
    """Tracks whether Redis is reachable, logging each outage once and its end once."""

    def __init__(self, url: str, log: Any) -> None:
        self.url, self.log = url, log
        self.since: float | None = None
        self.ended: float | None = None  # monotonic time the last outage ended
        self._lock = threading.Lock()

    def failed(self, exc: BaseException, where: str) -> None:
        with self._lock:
            if self.since is None:
                self.since = time.monotonic()
                self.log.error("redis unreachable; retrying", redis=self.url, error=str(exc),
                               where=where)

    def ok(self) -> None:
        if self.since is None:  # the common case: one attribute read
            return
        with self._lock:
            if self.since is not None:
                self.log.warning("redis back", redis=self.url,
                                 after_s=round(time.monotonic() - self.since, 1))
                self.since = None
                self.ended = time.monotonic()

    def settled(self, seconds: float) -> bool:
        """True when Redis has been reachable for at least ``seconds`` (or never failed)."""
        return self.since is None and (self.ended is None
                                       or time.monotonic() - self.ended >= seconds)

    def retry(self, fn: Callable[[], T], where: str, give_up: threading.Event | None = None
              ) -> T | None:
        """Call ``fn`` until it succeeds, backing off while Redis is down or refuses the
        command (out of memory, a read-only replica after a failover): a refusal is logged
        once and tried again, so the job or state it carries is kept, never dropped. Returns
        None only if ``give_up`` is set before ``fn`` succeeded."""
        attempt = 0
        refused = False
        while True:
            try:
                result = fn()
            except REDIS_DOWN as exc:
                self.failed(exc, where)
            except redis.exceptions.ResponseError as exc:
                if not refused:
                    self.log.error("redis refused a command; will try again", redis=self.url,
                                   error=str(exc), where=where)
                refused = True
            else:
                self.ok()
                if refused:
                    self.log.warning("redis accepted the command again", redis=self.url,
                                     where=where)
                return result
            delay = backoff(attempt)
            if give_up is not None and give_up.wait(delay):
                return None
            if give_up is None:
                time.sleep(delay)
            attempt += 1
