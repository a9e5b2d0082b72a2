"""Periodic jobs: cron schedules (or plain intervals) declared next to the job classes, so every
worker process that loads them knows the same schedule.

    kiqpy.periodic("0 3 * * *", NightlyReport)                       # 03:00 every day, UTC
    kiqpy.periodic("*/15 * * * *", SyncFeeds, args=["all"], tz="Europe/Berlin", queue="low",
                   name="feeds")
    kiqpy.periodic("*/10 * * * * *", Heartbeat)                      # 6 fields: seconds first
    kiqpy.periodic(datetime.timedelta(minutes=5), Cleanup)           # a plain interval

This module only declares and computes ticks (no I/O); the worker's ticker
(:mod:`kiqpy.server.ticker`) enqueues them, each tick exactly once.

Cron expressions are parsed by croniter (maintained, handles seconds and time zones). Ticks are
whole epoch seconds. Daylight saving time: a wall time that a zone skips runs at the first time
after it (02:30 on a spring-forward day runs at 03:00, once); a wall time that occurs twice runs
once, at its first occurrence, unless the hour field is a wildcard (``*``, ``*/2``): such
schedules follow real time through the repeated hour, as cron does. An interval's ticks are
multiples of the interval since the epoch, so every process computes the same ones.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kiqpy.client.options import validate_push_options
from kiqpy.client.registry import JobType
from kiqpy.errors import ConfigurationError
from kiqpy.payload import check_args

CATCH_UP = ("last", "all", "none")


def _croniter() -> Any:
    """croniter's class, imported when a cron expression is first read: a worker without cron
    entries does not load it (about 1 MB of RSS with its dependencies)."""
    from croniter import croniter

    return croniter

#: "all" catch-up enqueues at most this many missed ticks of one entry at once.
MAX_CATCH_UP = 1000


@dataclass(frozen=True)
class Schedule:
    """When an entry ticks: a cron expression in a time zone, or a fixed interval."""

    expression: str | None
    interval: int | None
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if self.expression is not None:
            fields = self.expression.split()
            if len(fields) not in (5, 6) or not _croniter().is_valid(
                    self.expression, second_at_beginning=len(fields) == 6):
                raise ConfigurationError(
                    f"invalid cron expression {self.expression!r}: expected 5 fields (minute "
                    f"hour day month weekday) or 6 (seconds first)")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(f"unknown time zone {self.tz!r} (an IANA name such as "
                                     f"'UTC' or 'Europe/Berlin')") from None

    def __str__(self) -> str:
        return self.expression if self.expression is not None else f"every {self.interval} s"

    def next_after(self, epoch: float) -> int:
        """The first tick strictly after ``epoch``, as whole epoch seconds."""
        if self.interval is not None:
            return (math.floor(epoch) // self.interval + 1) * self.interval
        assert self.expression is not None
        zone = ZoneInfo(self.tz)
        six = len(self.expression.split()) == 6
        start = _dt.datetime.fromtimestamp(math.floor(epoch), zone)
        ticks = _croniter()(self.expression, start, second_at_beginning=six)
        while True:
            tick: _dt.datetime = ticks.get_next(_dt.datetime)
            if not (self._fixed_hour() and _second_occurrence(tick)):
                return int(tick.timestamp())

    def ticks(self, after: float, until: float, limit: int = MAX_CATCH_UP) -> list[int]:
        """The ticks in (``after``, ``until``], oldest first, at most the newest ``limit``."""
        found: list[int] = []
        tick = self.next_after(after)
        while tick <= until:
            found.append(tick)
            if len(found) > limit:
                del found[0]
            tick = self.next_after(tick)
        return found

    def _fixed_hour(self) -> bool:
        assert self.expression is not None
        fields = self.expression.split()
        hour = fields[2] if len(fields) == 6 else fields[1]
        return "*" not in hour


def _second_occurrence(tick: _dt.datetime) -> bool:
    """True for the later of two instants with the same wall time (the repeated hour)."""
    earlier = tick.replace(fold=0)
    return tick.fold == 1 or (earlier.utcoffset() != tick.utcoffset())


@dataclass(frozen=True)
class PeriodicEntry:
    """One registered schedule: which job, with which args and options, when."""

    name: str
    schedule: Schedule
    job: str  # the registered job name
    args: list[Any] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    catch_up: str = "last"

    def describe(self) -> dict[str, Any]:
        """The entry as the leader publishes it, for the data API and the dashboard."""
        return {"name": self.name, "schedule": str(self.schedule),
                "cron": self.schedule.expression, "interval": self.schedule.interval,
                "tz": self.schedule.tz, "class": self.job, "args": self.args,
                "options": self.options, "catch_up": self.catch_up,
                "signature": self.signature}

    @property
    def signature(self) -> str:
        """Changes when the schedule changes: a new schedule starts afresh, with no ticks
        computed from the old one."""
        text = json.dumps([self.schedule.expression, self.schedule.interval, self.schedule.tz])
        return hashlib.sha1(text.encode()).hexdigest()[:12]


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[str, PeriodicEntry] = {}


_registry = _Registry()


def periodic(schedule: str | _dt.timedelta | int, job_class: JobType | str, *,
             args: list[Any] | tuple[Any, ...] = (), name: str | None = None, tz: str = "UTC",
             catch_up: str = "last", **options: Any) -> PeriodicEntry:
    """Run ``job_class`` on ``schedule`` (a cron expression of 5 fields, or 6 with seconds
    first; a ``timedelta``; or seconds), in time zone ``tz``, once per tick across every
    worker process. ``options`` are push options (queue, retry...), checked like
    ``set(...)``'s. ``catch_up`` says which ticks missed while no worker could enqueue them
    (all down, Redis down) run afterwards: "last" (the newest missed tick only, the default),
    "all" (every one, oldest first) or "none".

    ``name`` defaults to the job's name; two entries with one name are an error."""
    job = _job_name(job_class)
    entry_name = name if name is not None else job
    if not isinstance(entry_name, str) or not entry_name or len(entry_name) > 200:
        raise ConfigurationError(f"periodic name must be a non-empty str, got {entry_name!r}")
    if catch_up not in CATCH_UP:
        raise ConfigurationError(f"periodic {entry_name!r}: catch_up must be one of "
                                 f"{', '.join(CATCH_UP)}, got {catch_up!r}")
    args = list(args)
    check_args(args, "json")
    checked = validate_push_options(dict(options), f"periodic({entry_name!r})")
    entry = PeriodicEntry(entry_name, _schedule(schedule, tz), job, args, checked, catch_up)
    with _registry.lock:
        if entry_name in _registry.entries:
            raise ConfigurationError(f"two periodic entries are named {entry_name!r}; give one "
                                     f"of them another name=")
        _registry.entries[entry_name] = entry
    return entry


def entries() -> list[PeriodicEntry]:
    """The entries registered in this process, by name."""
    with _registry.lock:
        return sorted(_registry.entries.values(), key=lambda e: e.name)


def unregister(name: str) -> None:
    """Forget an entry (for tests and for code that rebuilds its schedule)."""
    with _registry.lock:
        _registry.entries.pop(name, None)


def _schedule(value: Any, tz: str) -> Schedule:
    if isinstance(value, str):
        return Schedule(value.strip(), None, tz)
    if isinstance(value, _dt.timedelta):
        value = value.total_seconds()
    if type(value) in (int, float) and value >= 1 and float(value).is_integer():
        return Schedule(None, int(value), tz)
    raise ConfigurationError(f"a periodic schedule is a cron expression, a timedelta or whole "
                             f"seconds (at least 1), got {value!r}")


def _job_name(job_class: Any) -> str:
    if isinstance(job_class, str) and job_class:
        return job_class
    name = getattr(job_class, "kiqpy_job_name", None)
    if isinstance(job_class, type) and isinstance(name, str) and name:
        return name
    raise ConfigurationError(f"periodic() needs a kiqpy.Worker subclass or a job name, got "
                             f"{job_class!r}")
