"""Testing your jobs without a worker: fake mode and inline mode.

Fake mode keeps pushed jobs in memory (after the same serialization round trip as a real push,
so bad args fail the same way)::

    with kiqpy.testing.fake():
        HardWorker.perform_async("bob", 5)
        assert len(HardWorker.jobs) == 1
        HardWorker.drain()                     # runs them (jobs they enqueue run too)
        HardWorker.jobs.clear()                # HardWorker.jobs is a live view, as in Sidekiq

Inline mode runs each job at once, in the caller::

    with kiqpy.testing.inline():
        HardWorker.perform_async("bob", 5)     # has run when this returns

Server middleware: as with ``Sidekiq::Testing.server_middleware``, jobs run in a testing mode
(fake ``drain``/``perform_one``, inline pushes, ``perform_inline``) go through the mode's own
server chain, empty unless given: ``fake(server_middleware=chain)``, ``inline(...)``, or
``client.server_middleware.add(...)`` on the client a mode yields (the pytest fixtures yield
it too). The default configuration's server chain is the worker's, and is not used.

Both are context managers and pytest fixtures (``kiqpy_fake``, ``kiqpy_inline``, from the plugin
kiqpy installs). A mode applies to the current context only: other threads and other tests
keep pushing for real. Within it, every push lands in the mode, whatever the path:
``perform_*``, ``kiqpy.enqueue``, and ``push``/``push_bulk`` of ``kiqpy.default_client()`` or of
any ``kiqpy.Client`` (as Sidekiq's testing modes patch every client's push); such a client's
own configuration and client chain build the job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableSequence
from typing import Any, overload

from kiqpy.chain import Chain
from kiqpy.client import mode
from kiqpy.client.build import JobBuilder
from kiqpy.client.execution import execute, execute_async, is_async
from kiqpy.client.push import Client
from kiqpy.client.registry import lookup
from kiqpy.client.worker import Worker
from kiqpy.config import Config, default_config
from kiqpy.errors import NoJobsError
from kiqpy.payload import Job, now_ms, round_trip


class FakeClient(Client):
    """A client whose pushes land in an in-memory list (``.jobs``) instead of Redis. Jobs it
    runs (``drain``, ``perform_one``, ``perform_inline``) go through ``server_middleware``.
    Implements the client's testing seam (:class:`kiqpy.client.mode.Mode`)."""

    keeps_jobs = True

    def __init__(self, config: Config | None = None, server_middleware: Chain | None = None
                 ) -> None:
        self.config = config or default_config()
        self.redis = None  # type: ignore[assignment]
        self.builder = JobBuilder(self.config)
        self.jobs: list[Job] = []
        self.server_middleware = server_middleware if server_middleware is not None else Chain()

    def close(self) -> None:
        pass

    def _store(self, jobs: list[Job]) -> None:
        for job in jobs:
            if "at" not in job:
                job["enqueued_at"] = now_ms()
            self.jobs.append(round_trip(job, self.config.serializer))

    async def _astore(self, jobs: list[Job]) -> None:
        self._store(jobs)

    def jobs_of(self, job_class: type[Worker] | str) -> FakeJobs:
        name = job_class if isinstance(job_class, str) else job_class.kiqpy_job_name
        return FakeJobs(self, "class", name)

    def run(self, job: Job) -> Any:
        """Take ``job`` out of the fake list and run it."""
        self.jobs.remove(job)
        return execute(lookup(job["class"]), job, self.server_middleware)

    async def arun(self, job: Job) -> Any:
        """:meth:`run` on an event loop: an async job is awaited on the running loop."""
        self.jobs.remove(job)
        return await _aexecute(lookup(job["class"]), job, self.server_middleware)

    def perform_one(self, job_class: type[Worker]) -> Any:
        return self.run(self._oldest(job_class))

    async def aperform_one(self, job_class: type[Worker]) -> Any:
        return await self.arun(self._oldest(job_class))

    def _oldest(self, job_class: type[Worker]) -> Job:
        jobs = self.jobs_of(job_class)
        if not jobs:
            raise NoJobsError(f"{job_class.__qualname__} has no fake jobs to perform")
        return jobs[0]

    def drain(self, job_class: type[Worker]) -> int:
        count, jobs = 0, self.jobs_of(job_class)
        while jobs:
            self.run(jobs[0])
            count += 1
        return count

    async def adrain(self, job_class: type[Worker]) -> int:
        count, jobs = 0, self.jobs_of(job_class)
        while jobs:
            await self.arun(jobs[0])
            count += 1
        return count


class InlineClient(FakeClient):
    """A client that runs each pushed job at once, in the caller's thread, through
    ``server_middleware``."""

    keeps_jobs = False

    def _store(self, jobs: list[Job]) -> None:
        for job in jobs:
            # Running now is being enqueued now; a worker's job always has this field.
            job["enqueued_at"] = now_ms()
            job = round_trip(job, self.config.serializer)
            execute(lookup(job["class"]), job, self.server_middleware)

    async def _astore(self, jobs: list[Job]) -> None:
        for job in jobs:
            job["enqueued_at"] = now_ms()
            job = round_trip(job, self.config.serializer)
            await _aexecute(lookup(job["class"]), job, self.server_middleware)


async def _aexecute(cls: Any, job: Job, chain: Chain) -> Any:
    """Run a job from code on an event loop: await an async one, run a sync one here."""
    if is_async(cls):
        return await execute_async(cls, job, chain)
    return execute(cls, job, chain)


class FakeJobs(MutableSequence[Job]):
    """A live view of some of a fake client's jobs (one class's, or one queue's), oldest
    first: ``HardWorker.jobs`` and :func:`jobs_for`. Reading it reads the fake client's list;
    ``clear()``, ``del view[0]``, ``pop()`` and ``remove()`` remove jobs from it, so the class's
    view, the queue's view and the client's ``jobs`` always agree. Compares equal to a list
    of the same jobs. Jobs are added by pushing, not by ``append``/``insert``."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, client: FakeClient, field: str, value: str) -> None:
        self._client, self._field, self._value = client, field, value

    def _positions(self) -> list[int]:
        field, value = self._field, self._value
        return [i for i, job in enumerate(self._client.jobs) if job.get(field) == value]

    def _list(self) -> list[Job]:
        field, value = self._field, self._value
        return [job for job in self._client.jobs if job.get(field) == value]

    @overload
    def __getitem__(self, index: int) -> Job: ...

    @overload
    def __getitem__(self, index: slice) -> list[Job]: ...

    def __getitem__(self, index: int | slice) -> Job | list[Job]:
        return self._list()[index]

    def __len__(self) -> int:
        return len(self._positions())

    def __iter__(self) -> Iterator[Job]:
        # A snapshot: a job run (and removed) while iterating does not shift the others.
        return iter(self._list())

    def __delitem__(self, index: int | slice) -> None:
        positions = self._positions()
        doomed = positions[index] if isinstance(index, slice) else [positions[index]]
        for position in sorted(doomed, reverse=True):
            del self._client.jobs[position]

    def __setitem__(self, index: Any, value: Any) -> None:
        raise TypeError("fake jobs are added by pushing (perform_async...), not by assignment")

    def insert(self, index: int, value: Job) -> None:
        raise TypeError("fake jobs are added by pushing (perform_async...), not by insert")

    def clear(self) -> None:
        field, value = self._field, self._value
        self._client.jobs[:] = [job for job in self._client.jobs if job.get(field) != value]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, FakeJobs)):
            return self._list() == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return repr(self._list())


@contextlib.contextmanager
def fake(config: Config | None = None, server_middleware: Chain | None = None
         ) -> Iterator[FakeClient]:
    """Pushes in this context land in memory. Yields the fake client (``.jobs``, and
    ``.server_middleware``, the chain fake jobs run through: empty unless given)."""
    with mode.activated(FakeClient(config, server_middleware)) as client:
        yield client  # type: ignore[misc]


@contextlib.contextmanager
def inline(config: Config | None = None, server_middleware: Chain | None = None
           ) -> Iterator[InlineClient]:
    """Pushes in this context run at once, through ``server_middleware`` (empty by default;
    also the yielded client's ``.server_middleware``)."""
    with mode.activated(InlineClient(config, server_middleware)) as client:
        yield client  # type: ignore[misc]


def _fake_client() -> FakeClient:
    client = mode.fake_mode()
    assert isinstance(client, FakeClient)
    return client


def jobs_for(queue: str) -> FakeJobs:
    """Fake jobs pushed to ``queue``, oldest first: a live view (``jobs_for("mail").clear()``
    forgets them)."""
    return FakeJobs(_fake_client(), "queue", queue)


def jobs_of(cls: type[Worker] | str) -> FakeJobs:
    """Fake jobs of one job class (or job name), oldest first: a live view, the same as
    ``cls.jobs``."""
    return _fake_client().jobs_of(cls)


def clear_all() -> None:
    """Forget every fake job."""
    _fake_client().jobs.clear()


def clear(cls: type[Worker]) -> None:
    """Forget the fake jobs of ``cls``."""
    jobs_of(cls).clear()


def perform_one(cls: type[Worker]) -> Any:
    """Run the oldest fake job of ``cls``; :class:`NoJobsError` when there is none."""
    return _fake_client().perform_one(cls)


def drain(cls: type[Worker]) -> int:
    """Run the fake jobs of ``cls`` (including ones they enqueue) until none is left.
    Returns how many ran."""
    return _fake_client().drain(cls)


async def adrain(cls: type[Worker]) -> int:
    """:func:`drain` for a test on an event loop: async jobs are awaited on it."""
    return await _fake_client().adrain(cls)


async def adrain_all() -> int:
    """:func:`drain_all` for a test on an event loop."""
    client, count = _fake_client(), 0
    while client.jobs:
        await client.arun(client.jobs[0])
        count += 1
    return count


def drain_all() -> int:
    """Run every fake job, in push order, including jobs enqueued while draining."""
    client, count = _fake_client(), 0
    while client.jobs:
        client.run(client.jobs[0])
        count += 1
    return count
