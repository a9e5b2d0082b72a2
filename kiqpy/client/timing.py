"""When a job pushed with ``perform_in``/``perform_at`` (or ``at``/``delay``) should run, as
epoch seconds, by Sidekiq's rules; None means now."""

from __future__ import annotations

import datetime as _dt
import math
import time
from typing import Any

from kiqpy.errors import ArgumentError

_UNSET: Any = object()


def run_at(*, delay: Any = _UNSET, at: Any = _UNSET) -> float | None:
    """Epoch seconds for ``delay`` (seconds or timedelta) or ``at`` (datetime or epoch);
    None when the time is now or already past, so the job is pushed at once."""
    now = time.time()
    if delay is not _UNSET:
        if isinstance(delay, _dt.timedelta):
            delay = delay.total_seconds()
        # A non-finite time would be stored as an inf score (never runs) or, for nan, run now.
        if type(delay) not in (int, float) or not math.isfinite(delay):
            raise ArgumentError("perform_in takes a finite number of seconds or a timedelta, "
                                f"got {_shown(delay)}")
        when = now + delay
    elif isinstance(at, _dt.datetime):
        when = at.timestamp()  # a naive datetime is taken as local time
    elif type(at) in (int, float) and math.isfinite(at):
        when = float(at)
    else:
        raise ArgumentError(
            f"perform_at takes a datetime or finite epoch seconds, got {_shown(at)}")
    return when if when > now else None


# Sidekiq's rule for perform_in/perform_at: a number this large is an epoch time, not a delay
# (1e9 s is 2001-09-09; no one schedules a job 31 years ahead by delay).
EPOCH_FROM = 1_000_000_000


def perform_time(when: Any, method: str) -> float | None:
    """When ``perform_in``/``perform_at`` (aliases, as in Sidekiq) should run a job, as epoch
    seconds; None when that is now or already past, so the job is pushed at once.

    A ``timedelta`` is from now and a ``datetime`` absolute (a naive one is local time). A
    number below 1,000,000,000 is seconds from now; from there on it is an epoch time, so
    ``perform_in(time.time() + 3600)`` means in an hour, not in 57 years::

        perform_time(300, "perform_in")            # now + 300
        perform_time(1_900_000_000, "perform_in")  # 2030-03-17, absolute
    """
    now = time.time()
    if isinstance(when, _dt.timedelta):
        when = now + when.total_seconds()
    elif isinstance(when, _dt.datetime):
        when = when.timestamp()
    elif type(when) in (int, float) and math.isfinite(when):
        # A non-finite time would be stored as an inf score (never runs) or, for nan, run now.
        when = float(when) if when >= EPOCH_FROM else now + when
    else:
        expected = ("a finite number of seconds or a timedelta" if method == "perform_in"
                    else "a datetime or finite epoch seconds")
        raise ArgumentError(f"{method} takes {expected}, got {_shown(when)} (either method takes "
                            f"a datetime, a timedelta, or a number: seconds from now below "
                            f"1e9, an epoch time from there on)")
    return when if when > now else None


def _shown(value: Any) -> str:
    return repr(value) if type(value) is float else type(value).__name__
