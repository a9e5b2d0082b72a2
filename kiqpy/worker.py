"""The Worker mixin: ``perform_async``/``perform_in``/``perform_at``/``set``/``perform_bulk`` on
job classes, per-class options checked at class definition, and the registry of job classes.

    class HardWorker(kiqpy.Worker, queue="mail", retry=5):
        def perform(self, name: str, count: int) -> None: ...

    HardWorker.perform_async("bob", 5)

The registry maps a job's name (``module.QualName`` unless the ``name`` option says otherwise,
for example to match a Ruby class) to its class. A worker only ever instantiates registered
classes; it never imports a name taken from a payload.
"""

from __future__ import annotations

import copy
import datetime as _dt
import inspect
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from kiqpy.errors import ArgumentError, ConfigurationError, OptionsError, UnknownJobError
from kiqpy.options import PUSH_ONLY, validate_options

if TYPE_CHECKING:
    from kiqpy.testing import FakeJobs

# -- registry -------------------------------------------------------------------------------
_registry: dict[str, type[Worker]] = {}
_registry_lock = threading.Lock()


def register(name: str, cls: type[Worker]) -> None:
    """Register ``cls`` under ``name`` (the last class defined under a name wins)."""
    with _registry_lock:
        _registry[name] = cls


def lookup(name: str) -> type[Worker]:
    """The registered job class called ``name``, or :class:`UnknownJobError`."""
    cls = _registry.get(name)
    if cls is None:
        raise UnknownJobError(
            f"no job class registered as {name!r} in this process (is the module that defines "
            f"it imported with -r?)"
        )
    return cls


def registered() -> dict[str, type[Worker]]:
    """A copy of the registry: job name -> class."""
    with _registry_lock:
        return dict(_registry)


# -- scheduling helpers ---------------------------------------------------------------------
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


# -- the mixin ------------------------------------------------------------------------------
class _Enqueue:
    """The enqueue methods, shared by worker classes and by :meth:`Worker.set`'s result."""

    def _target(self) -> tuple[type[Worker], dict[str, Any], dict[str, Any] | None]:
        """(class, options, custom fields or None)."""
        raise NotImplementedError

    def perform_async(self, *args: Any) -> str | None:
        """Enqueue now. Returns the jid, or None when client middleware stopped the push."""
        cls, options, fields = self._target()
        return _client().enqueue(cls, args, options, None, fields)

    def perform_in(self, interval: float | _dt.timedelta | _dt.datetime, *args: Any
                   ) -> str | None:
        """Enqueue to run later. As in Sidekiq (where perform_at is the same method): a
        number below 1,000,000,000 is seconds from now, a larger one an epoch time; a
        timedelta is from now, a datetime absolute. A time now or past enqueues at once."""
        cls, options, fields = self._target()
        return _client().enqueue(cls, args, options, perform_time(interval, "perform_in"),
                                 fields)

    def perform_at(self, when: float | _dt.datetime | _dt.timedelta, *args: Any
                   ) -> str | None:
        """Enqueue to run at ``when``: the same rule as :meth:`perform_in` (a datetime or
        epoch seconds; a number below 1e9 is seconds from now). A past time runs now."""
        cls, options, fields = self._target()
        return _client().enqueue(cls, args, options, perform_time(when, "perform_at"), fields)

    def perform_bulk(self, arg_lists: Iterable[Sequence[Any]], batch_size: int = 1000,
                     at: float | _dt.datetime | Sequence[float | _dt.datetime] | None = None
                     ) -> list[str | None]:
        """Enqueue one job per arg list, one round trip per ``batch_size`` jobs. ``at`` (a
        datetime or epoch seconds) schedules them all; a list of such times, one per arg list
        (as the ``at`` array of Sidekiq's push_bulk), schedules each job at its own time.

        Returns the jids in order (None where client middleware stopped a job)."""
        cls, options, fields = self._target()
        when: float | list[float | None] | None
        if isinstance(at, (list, tuple)):
            when = [run_at(at=one) for one in at]
        else:
            when = None if at is None else run_at(at=at)
        return _client().enqueue_bulk(cls, arg_lists, options, when, batch_size, fields)

    def perform_inline(self, *args: Any) -> Any:
        """Run the job now, in this thread, after the same serialization round trip as a
        real push and through the server middleware chain: the testing mode's in fake and
        inline mode (``kiqpy.testing``), else the default configuration's. Returns what
        ``perform`` returns."""
        from kiqpy.testing import run_inline

        cls, options, fields = self._target()
        return run_inline(cls, args, options, fields)

    def set(self, **options: Any) -> _Setter:
        """Options for one push: ``HardWorker.set(queue="critical").perform_async(1)``.

        As in Sidekiq, keys that are not options are custom fields stored in the job
        (``set(tenant="acme")``; ``jid`` too, for one job), checked as
        :meth:`kiqpy.Client.push` checks them. So a misspelt option is stored as a field here;
        class definitions are where unknown options are refused."""
        from kiqpy.client import split_push

        cls, current, fields = self._target()
        checked, extra = split_push(options, f"{cls.__qualname__}.set()",
                                    _client().config.serializer)
        merged = {**fields, **extra} if fields else extra
        return _Setter(cls, {**current, **checked}, merged or None)


class _Setter(_Enqueue):
    __slots__ = ("_cls", "_fields", "_options")

    def __init__(self, cls: type[Worker], options: dict[str, Any],
                 fields: dict[str, Any] | None = None) -> None:
        self._cls, self._options, self._fields = cls, options, fields

    def _target(self) -> tuple[type[Worker], dict[str, Any], dict[str, Any] | None]:
        return self._cls, self._options, self._fields


class _ClassEnqueue:
    """Makes ``HardWorker.perform_async(...)`` work on the class itself."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type[Worker]) -> Any:
        return getattr(_Setter(owner, owner.kiqpy_options_resolved), self.name)


class _FakeJobs:
    """``HardWorker.jobs``: the class's jobs in fake mode, a live view (see kiqpy.testing):
    ``HardWorker.jobs.clear()`` forgets them, as in Sidekiq."""

    def __get__(self, instance: Any, owner: type[Worker]) -> FakeJobs:
        from kiqpy.testing import jobs_of

        return jobs_of(owner)


class Worker:
    """Mixin for job classes. Subclass it and define ``perform``.

    Options (class keywords or a ``kiqpy_options`` dict, checked when the class is defined):
    ``queue`` (default "default"), ``retry`` (True = 25 tries, False, or a count),
    ``retry_queue``, ``retry_for`` (seconds), ``backtrace`` (True or lines), ``dead``, ``tags``,
    ``name`` (the registered job name), plus options declared by bundled middleware.

    Optional hooks, called on a fresh instance (plain methods, classmethods and staticmethods
    all work): ``kiqpy_retry_in(self, count, exc, job)`` returns seconds, "kill", "discard" or
    None (default backoff); ``kiqpy_retries_exhausted(self, job, exc)``.
    """

    kiqpy_options: ClassVar[dict[str, Any]] = {}
    kiqpy_options_resolved: ClassVar[dict[str, Any]] = {}
    kiqpy_job_name: ClassVar[str] = ""
    jid: str | None = None

    perform_async = _ClassEnqueue("perform_async")
    perform_in = _ClassEnqueue("perform_in")
    perform_at = _ClassEnqueue("perform_at")
    perform_bulk = _ClassEnqueue("perform_bulk")
    perform_inline = _ClassEnqueue("perform_inline")
    set = _ClassEnqueue("set")
    jobs = _FakeJobs()

    @classmethod
    def drain(cls) -> int:
        """Fake mode: run this class's fake jobs until none is left; returns how many ran."""
        from kiqpy.testing import drain

        return drain(cls)

    @classmethod
    def perform_one(cls) -> Any:
        """Fake mode: run this class's oldest fake job."""
        from kiqpy.testing import perform_one

        return perform_one(cls)

    @classmethod
    def clear(cls) -> None:
        """Fake mode: forget this class's fake jobs."""
        from kiqpy.testing import clear

        clear(cls)

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__()
        declared = cls.__dict__.get("kiqpy_options", {})
        if not isinstance(declared, Mapping):
            raise OptionsError(f"{cls.__qualname__}: kiqpy_options must be a dict, got "
                               f"{type(declared).__name__}")
        _refuse_async_perform(cls)
        own = {**declared, **options}
        checked = validate_options(own, cls.__qualname__)
        inherited = dict(cls.kiqpy_options_resolved)
        name = checked.pop("name", None) or f"{cls.__module__}.{cls.__qualname__}"
        cls.kiqpy_options_resolved = {**inherited, **checked}
        cls.kiqpy_job_name = name
        register(name, cls)

    def perform(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__qualname__} must define perform()")


def _refuse_async_perform(cls: type[Worker]) -> None:
    """An ``async def perform`` would return a coroutine that nobody awaits: the job would
    count as a success without running. Until the worker runs async jobs, refuse such a class
    where it is defined."""
    perform = cls.__dict__.get("perform")
    if inspect.iscoroutinefunction(perform) or inspect.isasyncgenfunction(perform):
        raise ConfigurationError(
            f"{cls.__qualname__}.perform is 'async def', and kiqpy runs only plain 'def "
            f"perform' methods so far: the job would never run. Define 'def perform' (it may "
            f"call asyncio.run(...) for async code)")


def payload_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options that travel in the payload (all but push-only ones). List and dict values
    are copied, so a middleware that edits ``job["tags"]`` cannot change the class's options."""
    return {k: copy.deepcopy(v) if type(v) in (list, dict) else v
            for k, v in options.items() if k not in PUSH_ONLY}


def _client() -> Any:
    from kiqpy.client import current_client

    return current_client()
