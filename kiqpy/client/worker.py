"""The Worker mixin: ``perform_async``/``perform_in``/``perform_at``/``set``/``perform_bulk`` on
job classes, and per-class options checked at class definition.

    class HardWorker(kiqpy.Worker, queue="mail", retry=5):
        def perform(self, name: str, count: int) -> None: ...

    HardWorker.perform_async("bob", 5)

Defining a subclass registers it (:mod:`kiqpy.client.registry`). Pushes go to the client of the
current context (:func:`kiqpy.client.push.current_client`); the fake-mode helpers
(``HardWorker.jobs``, ``drain``...) ask the testing seam (:mod:`kiqpy.client.mode`).
"""

from __future__ import annotations

import datetime as _dt
import inspect
from collections.abc import Iterable, Mapping, MutableSequence, Sequence
from typing import Any, ClassVar

from kiqpy.client import mode
from kiqpy.client.batch import Batch
from kiqpy.client.build import split_push
from kiqpy.client.execution import arun_inline, current_job, run_inline
from kiqpy.client.options import validate_options
from kiqpy.client.push import current_client
from kiqpy.client.registry import register
from kiqpy.client.results import peek_result
from kiqpy.client.timing import perform_time, run_at
from kiqpy.client.workflow import Signature
from kiqpy.config import default_config
from kiqpy.connection import thread_client
from kiqpy.errors import ConfigurationError, OptionsError
from kiqpy.keys import Keys
from kiqpy.payload import Job


# -- the mixin ------------------------------------------------------------------------------
class _Enqueue:
    """The enqueue methods, shared by worker classes and by :meth:`Worker.set`'s result."""

    def _target(self) -> tuple[type[Worker], dict[str, Any], dict[str, Any] | None]:
        """(class, options, custom fields or None)."""
        raise NotImplementedError

    def perform_async(self, *args: Any) -> str | None:
        """Enqueue now. Returns the jid, or None when client middleware stopped the push."""
        cls, options, fields = self._target()
        return current_client().enqueue(cls, args, options, None, fields)

    def perform_in(self, interval: float | _dt.timedelta | _dt.datetime, *args: Any
                   ) -> str | None:
        """Enqueue to run later. As in Sidekiq (where perform_at is the same method): a
        number below 1,000,000,000 is seconds from now, a larger one an epoch time; a
        timedelta is from now, a datetime absolute. A time now or past enqueues at once."""
        cls, options, fields = self._target()
        return current_client().enqueue(cls, args, options, perform_time(interval, "perform_in"),
                                 fields)

    def perform_at(self, when: float | _dt.datetime | _dt.timedelta, *args: Any
                   ) -> str | None:
        """Enqueue to run at ``when``: the same rule as :meth:`perform_in` (a datetime or
        epoch seconds; a number below 1e9 is seconds from now). A past time runs now."""
        cls, options, fields = self._target()
        return current_client().enqueue(cls, args, options, perform_time(when, "perform_at"),
                                        fields)

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
        return current_client().enqueue_bulk(cls, arg_lists, options, when, batch_size, fields)

    # -- the async client: the same, awaited, for code on an event loop -------------------------
    async def aperform_async(self, *args: Any) -> str | None:
        """:meth:`perform_async` for code on an event loop (redis.asyncio): the same checks,
        client middleware and errors; never blocks the loop."""
        cls, options, fields = self._target()
        jid: str | None = await current_client().aenqueue(cls, args, options, None, fields)
        return jid

    async def aperform_in(self, interval: float | _dt.timedelta | _dt.datetime, *args: Any
                          ) -> str | None:
        """:meth:`perform_in` for code on an event loop."""
        cls, options, fields = self._target()
        jid: str | None = await current_client().aenqueue(
            cls, args, options, perform_time(interval, "aperform_in"), fields)
        return jid

    async def aperform_at(self, when: float | _dt.datetime | _dt.timedelta, *args: Any
                          ) -> str | None:
        """:meth:`perform_at` for code on an event loop."""
        cls, options, fields = self._target()
        jid: str | None = await current_client().aenqueue(
            cls, args, options, perform_time(when, "aperform_at"), fields)
        return jid

    async def aperform_bulk(self, arg_lists: Iterable[Sequence[Any]], batch_size: int = 1000,
                            at: float | _dt.datetime | Sequence[float | _dt.datetime] | None
                            = None) -> list[str | None]:
        """:meth:`perform_bulk` for code on an event loop."""
        cls, options, fields = self._target()
        when: float | list[float | None] | None
        if isinstance(at, (list, tuple)):
            when = [run_at(at=one) for one in at]
        else:
            when = None if at is None else run_at(at=at)
        jids: list[str | None] = await current_client().aenqueue_bulk(
            cls, arg_lists, options, when, batch_size, fields)
        return jids

    async def aperform_inline(self, *args: Any) -> Any:
        """:meth:`perform_inline` for code on an event loop: an async job is awaited on the
        running loop."""
        cls, options, fields = self._target()
        return await arun_inline(cls, args, options, fields)

    def perform_inline(self, *args: Any) -> Any:
        """Run the job now, in this thread, after the same serialization round trip as a
        real push and through the server middleware chain: the testing mode's in fake and
        inline mode (``kiqpy.testing``), else the default configuration's. Returns what
        ``perform`` returns."""
        cls, options, fields = self._target()
        return run_inline(cls, args, options, fields)

    def s(self, *args: Any) -> Signature:
        """A signature (the job and its args, not pushed) for :func:`kiqpy.chain`,
        :func:`kiqpy.group` and :meth:`kiqpy.Workflow.add`: ``Resize.s(photo_id)``."""
        cls, options, fields = self._target()
        return Signature(cls, args, {**options, **(fields or {})})

    def set(self, **options: Any) -> _Setter:
        """Options for one push: ``HardWorker.set(queue="critical").perform_async(1)``.

        As in Sidekiq, keys that are not options are custom fields stored in the job
        (``set(tenant="acme")``; ``jid`` too, for one job), checked as
        :meth:`kiqpy.Client.push` checks them. So a misspelt option is stored as a field here;
        class definitions are where unknown options are refused."""
        cls, current, fields = self._target()
        checked, extra = split_push(options, f"{cls.__qualname__}.set()",
                                    current_client().config.serializer)
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

    def __get__(self, instance: Any, owner: type[Worker]) -> MutableSequence[Job]:
        return mode.fake_mode().jobs_of(owner)


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
    kiqpy_async: ClassVar[bool] = False  # perform is 'async def' (set at definition)
    jid: str | None = None

    perform_async = _ClassEnqueue("perform_async")
    perform_in = _ClassEnqueue("perform_in")
    perform_at = _ClassEnqueue("perform_at")
    perform_bulk = _ClassEnqueue("perform_bulk")
    perform_inline = _ClassEnqueue("perform_inline")
    aperform_async = _ClassEnqueue("aperform_async")
    aperform_in = _ClassEnqueue("aperform_in")
    aperform_at = _ClassEnqueue("aperform_at")
    aperform_bulk = _ClassEnqueue("aperform_bulk")
    aperform_inline = _ClassEnqueue("aperform_inline")
    set = _ClassEnqueue("set")
    s = _ClassEnqueue("s")
    jobs = _FakeJobs()

    @classmethod
    def drain(cls) -> int:
        """Fake mode: run this class's fake jobs until none is left; returns how many ran."""
        return mode.fake_mode().drain(cls)

    @classmethod
    async def adrain(cls) -> int:
        """Fake mode, on an event loop: :meth:`drain`, awaiting async jobs on the loop."""
        return await mode.fake_mode().adrain(cls)

    @classmethod
    async def aperform_one(cls) -> Any:
        """Fake mode, on an event loop: :meth:`perform_one`, awaiting an async job."""
        return await mode.fake_mode().aperform_one(cls)

    @classmethod
    def perform_one(cls) -> Any:
        """Fake mode: run this class's oldest fake job."""
        return mode.fake_mode().perform_one(cls)

    @classmethod
    def clear(cls) -> None:
        """Fake mode: forget this class's fake jobs."""
        mode.fake_mode().jobs_of(cls).clear()

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__()
        declared = cls.__dict__.get("kiqpy_options", {})
        if not isinstance(declared, Mapping):
            raise OptionsError(f"{cls.__qualname__}: kiqpy_options must be a dict, got "
                               f"{type(declared).__name__}")
        cls.kiqpy_async = _async_perform(cls)
        own = {**declared, **options}
        checked = validate_options(own, cls.__qualname__)
        inherited = dict(cls.kiqpy_options_resolved)
        name = checked.pop("name", None) or f"{cls.__module__}.{cls.__qualname__}"
        cls.kiqpy_options_resolved = {**inherited, **checked}
        if ("concurrency_key" in cls.kiqpy_options_resolved
                and "concurrency_limit" not in cls.kiqpy_options_resolved):
            raise OptionsError(f"{cls.__qualname__}: option concurrency_key needs "
                               "concurrency_limit=N (the most jobs running at once per key)")
        cls.kiqpy_job_name = name
        if not cls.__dict__.get("kiqpy_abstract", False):  # a base such as IterableWorker
            register(name, cls)

    def perform(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__qualname__} must define perform()")

    @property
    def batch(self) -> Batch | None:
        """The batch this running job belongs to (its ``bid``), or None: add jobs to it with
        ``with self.batch.jobs(): ...``."""
        job = current_job()
        bid = job.get("bid") if job is not None else None
        return Batch(bid) if isinstance(bid, str) else None

    def dependency_results(self) -> dict[str, Any]:
        """In a workflow step: the results of the steps it depends on, by step name. A
        dependency that died (with ``ignore_failure=True``) maps to its
        :class:`kiqpy.JobFailed`; one whose result expired maps to None."""
        job = current_job()
        deps = job.get("wf_deps") if job is not None else None
        if not isinstance(deps, dict):
            return {}
        return {name: peek_result(jid) for name, jid in deps.items()}

    @property
    def cancelled(self) -> bool:
        """True once this running job was cancelled (``kiqpy.api.cancel(jid)``, the
        dashboard's Cancel, ``kiqpy cancel``): a long job checks it at good moments and
        stops; then it is neither retried nor sent to the dead set. Asks Redis (one
        command) on each read."""
        if not self.jid:
            return False
        config = default_config()
        client = thread_client(config.redis_url, config.socket_timeout, config.sentinel_auth)
        return bool(client.exists(Keys(config.namespace, config.on_cluster).cancelled(self.jid)))


def _async_perform(cls: type[Worker]) -> bool:
    """Whether ``cls.perform`` (its own or inherited) is ``async def``: the worker then runs
    it on its event loop. An async generator would never run as a job: refused here."""
    perform = getattr(cls, "perform", None)
    if inspect.isasyncgenfunction(perform):
        raise ConfigurationError(
            f"{cls.__qualname__}.perform is an async generator ('async def' with 'yield'): "
            f"a job's perform is 'def' or 'async def' without 'yield'")
    return inspect.iscoroutinefunction(perform)
