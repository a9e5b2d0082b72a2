"""Cluster-wide rate limiters, enforced by Redis, for any code (a job, a web request)::

    from kiqpy import limiter

    ERP = limiter.concurrent("erp", 50, wait_timeout=5, lock_timeout=30)  # at most 50 at once
    STRIPE = limiter.bucket("stripe", 30, "second")   # 30 per calendar second
    MAIL = limiter.window("mail", 5, 60)              # 5 in any sliding 60 s
    PUSH = limiter.leaky("push", 60, "minute")        # a steady drip: one per second

    class ChargeJob(kiqpy.Worker):
        def perform(self, order_id):
            with STRIPE.within_limit():
                stripe.charge(order_id)

Each check is one Lua script (``kiqpy/lua/limiter_*.lua``) run against Redis's clock, so every
process and host shares the limit. A limiter object holds no connection and no state: build
one per call with a dynamic name (``limiter.window(f"user:{uid}", 10, 60)``) if you like; its
keys (``kiqpy:limiter:{<name>}:...``, one cluster slot per limiter) expire when unused, and its
``meta`` hash (kind, size, calls, over-limit count, time waited) a day after its last use.

When a limiter is full after ``wait_timeout`` seconds (5 for ``concurrent``, 0 for the others),
:class:`OverLimit` is raised. Inside a job the worker catches it and reschedules the job with
a growing, jittered delay, without counting a failure or a retry (the job's ``overrated``
counter; after :data:`MAX_OVERRATED` reschedules it fails normally). Elsewhere the caller gets
the exception.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from kiqpy.config import Config, default_config
from kiqpy.connection import thread_client
from kiqpy.errors import ConfigurationError, OverLimit
from kiqpy.keys import Keys
from kiqpy.scripts import Scripts

__all__ = ["MAX_OVERRATED", "Limiter", "OverLimit", "Slot", "bucket", "concurrent", "leaky",
           "window"]

INTERVALS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# How many times the worker reschedules a job whose limiter is full before it counts as a
# normal failure (Sidekiq Enterprise's default).
MAX_OVERRATED = 20
# The `meta` hash (the dashboard's numbers) outlives the limiter's last use by a day.
META_TTL_MS = 86_400_000
NAME_MAX = 200


class Limiter:
    """One limiter: its kind, name and size. Use :meth:`within_limit` around the limited work.
    Built by :func:`concurrent`, :func:`bucket`, :func:`window` and :func:`leaky`."""

    kind = ""

    def __init__(self, name: str, size: int, wait_timeout: float,
                 config: Config | None) -> None:
        self.name = _check_name(name)
        self.size = _check_positive_int("size", size)
        self.wait_timeout = _check_seconds("wait_timeout", wait_timeout, zero_ok=True)
        self._config = config

    def __repr__(self) -> str:
        return f"<kiqpy.limiter.{self.kind} {self.name!r} size={self.size}>"

    @contextmanager
    def within_limit(self) -> Iterator[None]:
        """Run the block if the limit allows it now or within ``wait_timeout``; else raise
        :class:`OverLimit` without running it."""
        self._enter()
        yield

    # -- the part each kind fills in ----------------------------------------------------------
    def _try(self, scripts: Scripts, keys: Keys, final: bool, waited_ms: int,
             token: str) -> tuple[bool, float]:
        """One attempt: (let in, seconds until an attempt might pass)."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    def _enter(self) -> tuple[Scripts, Keys, str]:
        """Wait for the limit to let us in; (scripts, keys, our token) for the release. The
        state of one call lives on its stack: a limiter object is shared by threads."""
        config = self._config if self._config is not None else default_config()
        client = thread_client(config.redis_url, config.socket_timeout, config.sentinel_auth)
        scripts = _scripts_of(client)
        keys = Keys(config.namespace, config.on_cluster)
        # Unique per call: a concurrent slot's or a window entry's member.
        token = f"{os.getpid()}:{random.getrandbits(64):016x}"
        started = time.monotonic()
        deadline = started + self.wait_timeout
        pause = 0.005
        while True:
            now = time.monotonic()
            final = now >= deadline
            waited_ms = int((now - started) * 1000)
            ok, after = self._try(scripts, keys, final, waited_ms, token)
            if ok:
                return scripts, keys, token
            if final:
                raise OverLimit(self.name, self.kind, after)
            # Poll again after 5 ms doubling to 100 ms, or when the script says a place frees
            # up if that is sooner; the random half spreads waiters so they do not all retry
            # at the same instant.
            sleep = min(pause, max(after, 0.001)) * random.uniform(0.5, 1.0)
            time.sleep(min(sleep, max(deadline - time.monotonic(), 0.0)))
            pause = min(pause * 2, 0.1)


class Concurrent(Limiter):
    """At most ``size`` blocks running at once across the cluster."""

    kind = "concurrent"

    def __init__(self, name: str, size: int, wait_timeout: float, lock_timeout: float,
                 config: Config | None) -> None:
        super().__init__(name, size, wait_timeout, config)
        self.lock_timeout = _check_seconds("lock_timeout", lock_timeout)

    def _try(self, scripts: Scripts, keys: Keys, final: bool, waited_ms: int,
             token: str) -> tuple[bool, float]:
        ok, _used, after = scripts.call(
            scripts.limiter_concurrent,
            [keys.limiter(self.name, "slots"), keys.limiter(self.name, "meta")],
            [self.size, int(self.lock_timeout * 1000), token, int(final), waited_ms,
             META_TTL_MS])
        # `after` is when the oldest lease runs out, which a live holder rarely makes anyone
        # wait for: no hint (a rescheduled job starts from the shortest delay).
        del after
        return bool(ok), 0.0

    @contextmanager
    def within_limit(self) -> Iterator[Slot]:  # type: ignore[override]
        """Hold one of the ``size`` slots for the block (waiting up to ``wait_timeout`` for
        one), released on exit even when the block raises. A holder that dies keeps its slot
        until ``lock_timeout`` has passed; a block running longer than that loses it unless
        it calls the yielded :class:`Slot`'s ``renew``."""
        scripts, keys, token = self._enter()
        slot = Slot(keys.limiter(self.name, "slots"), token, self.lock_timeout)
        try:
            yield slot
        finally:
            scripts.call(scripts.limiter_release, [slot.key], [token])


class Slot:
    """A held slot of a :class:`Concurrent` limiter (what ``within_limit`` yields)."""

    __slots__ = ("key", "lease", "token")

    def __init__(self, key: str, token: str, lease: float) -> None:
        self.key, self.token, self.lease = key, token, lease

    def renew(self, client: redis.Redis) -> bool:
        """Extend the lease by ``lock_timeout`` from now, through ``client`` (any thread's:
        the worker's heartbeat renews the slots of its running jobs). False if the lease had
        already run out, so the slot may be someone else's now."""
        scripts = _scripts_of(client)
        return bool(scripts.call(scripts.limiter_renew, [self.key],
                                 [self.token, int(self.lease * 1000)]))


class _Rate(Limiter):
    """A limiter that lets calls in over time (bucket, window, leaky): one script, named after
    its kind (``limiter_<kind>.lua``), on its ``<kind>`` and ``meta`` keys."""

    def _args(self, token: str) -> list[Any]:
        """The script's ARGV before the shared ``final, waited_ms, meta ttl``."""
        raise NotImplementedError

    def _try(self, scripts: Scripts, keys: Keys, final: bool, waited_ms: int,
             token: str) -> tuple[bool, float]:
        ok, _used, after = scripts.call(
            getattr(scripts, f"limiter_{self.kind}"),
            [keys.limiter(self.name, self.kind), keys.limiter(self.name, "meta")],
            [*self._args(token), int(final), waited_ms, META_TTL_MS])
        return bool(ok), max(int(after), 0) / 1000


class Bucket(_Rate):
    """At most ``size`` calls per calendar interval (second, minute, hour, UTC day)."""

    kind = "bucket"

    def __init__(self, name: str, size: int, interval: str, wait_timeout: float,
                 config: Config | None) -> None:
        super().__init__(name, size, wait_timeout, config)
        self.interval = _check_interval(interval)

    def _args(self, token: str) -> list[Any]:
        return [self.size, self.interval * 1000]


class Window(_Rate):
    """At most ``size`` calls in any sliding window of ``seconds``."""

    kind = "window"

    def __init__(self, name: str, size: int, seconds: float, wait_timeout: float,
                 config: Config | None) -> None:
        super().__init__(name, size, wait_timeout, config)
        self.seconds = _check_seconds("seconds", seconds)

    def _args(self, token: str) -> list[Any]:
        return [self.size, int(self.seconds * 1000), token]


class Leaky(_Rate):
    """``size`` calls per interval, evenly spaced (one every interval/size), no bursts."""

    kind = "leaky"

    def __init__(self, name: str, size: int, interval: str, wait_timeout: float,
                 config: Config | None) -> None:
        super().__init__(name, size, wait_timeout, config)
        self.interval = _check_interval(interval)

    def _args(self, token: str) -> list[Any]:
        return [self.size, self.interval * 1000]


def concurrent(name: str, size: int, wait_timeout: float = 5, lock_timeout: float = 30,
               config: Config | None = None) -> Concurrent:
    """At most ``size`` ``within_limit`` blocks of limiter ``name`` run at once, cluster-wide.
    A caller waits up to ``wait_timeout`` seconds for a slot, then gets :class:`OverLimit`; a
    slot whose holder died is free again after ``lock_timeout`` seconds::

        ERP = limiter.concurrent("erp", 50, wait_timeout=5, lock_timeout=30)
        with ERP.within_limit():
            erp.post(invoice)
    """
    return Concurrent(name, size, wait_timeout, lock_timeout, config)


def bucket(name: str, size: int, interval: str, wait_timeout: float = 0,
           config: Config | None = None) -> Bucket:
    """At most ``size`` calls per calendar ``interval`` ("second", "minute", "hour", "day")::

        STRIPE = limiter.bucket("stripe", 30, "second")
    """
    return Bucket(name, size, interval, wait_timeout, config)


def window(name: str, size: int, seconds: float, wait_timeout: float = 0,
           config: Config | None = None) -> Window:
    """At most ``size`` calls in any sliding ``seconds``::

        MAIL = limiter.window(f"mail:{domain}", 5, 60)
    """
    return Window(name, size, seconds, wait_timeout, config)


def leaky(name: str, size: int, interval: str, wait_timeout: float = 0,
          config: Config | None = None) -> Leaky:
    """``size`` calls per ``interval`` ("second", "minute", "hour", "day"), evenly spaced: one
    every interval/size, without bursts::

        PUSH = limiter.leaky("push", 60, "minute")  # one per second
    """
    return Leaky(name, size, interval, wait_timeout, config)


def _scripts_of(client: redis.Redis) -> Scripts:
    """The client's registered scripts, made once per (thread) client."""
    scripts: Scripts | None = getattr(client, "_kiqpy_scripts", None)
    if scripts is None:
        scripts = Scripts(client)
        client._kiqpy_scripts = scripts  # type: ignore[attr-defined]
    return scripts


def _check_name(name: Any) -> str:
    # Braces would break the {name} hash tag that keeps a limiter's keys in one cluster slot.
    if (not isinstance(name, str) or not name or len(name) > NAME_MAX
            or any(ch in name for ch in "{}") or not name.isprintable()):
        raise ConfigurationError(
            f"limiter name {name!r} is not valid: use 1 to {NAME_MAX} printable characters "
            "without '{' or '}'")
    return name


def _check_positive_int(what: str, value: Any) -> int:
    if type(value) is not int or value < 1:
        raise ConfigurationError(f"limiter {what} {value!r} is not valid: use an int >= 1")
    return value


def _check_seconds(what: str, value: Any, zero_ok: bool = False) -> float:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and value == value and value != float("inf") and (value >= 0 if zero_ok else value > 0))
    if not ok:
        bound = ">= 0" if zero_ok else "> 0"
        raise ConfigurationError(f"limiter {what} {value!r} is not valid: use seconds {bound}")
    return float(value)


def _check_interval(interval: Any) -> int:
    if interval not in INTERVALS:
        raise ConfigurationError(f"limiter interval {interval!r} is not valid: use one of "
                                 + ", ".join(repr(name) for name in INTERVALS))
    return INTERVALS[interval]
