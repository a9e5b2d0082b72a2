"""Testing your jobs without a worker: fake mode and inline mode.

Fake mode keeps pushed jobs in memory (after the same serialization round trip as a real push,
so bad args fail the same way)::

    with kiqpy.testing.fake():
        HardWorker.perform_async("bob", 5)
        assert len(HardWorker.jobs) == 1
        HardWorker.drain()                     # runs them (jobs they enqueue run too)

Inline mode runs each job at once, in the caller, through the server middleware chain::

    with kiqpy.testing.inline():
        HardWorker.perform_async("bob", 5)     # has run when this returns

Both are context managers and pytest fixtures (``kiqpy_fake``, ``kiqpy_inline``, from the plugin
kiqpy installs). A mode applies to the current context only: other threads and other tests
keep pushing for real.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from kiqpy.chain import Chain
from kiqpy.client import Client, JobBuilder, _override
from kiqpy.config import Config, default_config
from kiqpy.errors import KiqpyError, NoJobsError
from kiqpy.execution import execute
from kiqpy.payload import Job, decode, encode, now_ms
from kiqpy.worker import Worker, lookup


def round_trip(job: Job, serializer: str) -> Job:
    """The job as a worker would read it back from Redis."""
    return decode(encode(job, serializer))


class FakeClient(Client):
    """A client whose pushes land in an in-memory list instead of Redis."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or default_config()
        self.redis = None  # type: ignore[assignment]
        self.builder = JobBuilder(self.config)
        self.jobs: list[Job] = []

    def close(self) -> None:
        pass

    def _store(self, jobs: list[Job]) -> None:
        for job in jobs:
            if "at" not in job:
                job["enqueued_at"] = now_ms()
            self.jobs.append(round_trip(job, self.config.serializer))


class InlineClient(FakeClient):
    """A client that runs each pushed job at once, in the caller's thread."""

    def __init__(self, config: Config | None = None, server_middleware: Chain | None = None
                 ) -> None:
        super().__init__(config)
        self.server_middleware = server_middleware if server_middleware is not None else Chain()

    def _store(self, jobs: list[Job]) -> None:
        for job in jobs:
            # Running now is being enqueued now; a worker's job always has this field.
            job["enqueued_at"] = now_ms()
            job = round_trip(job, self.config.serializer)
            execute(lookup(job["class"]), job, self.server_middleware)


@contextlib.contextmanager
def fake(config: Config | None = None) -> Iterator[FakeClient]:
    """Pushes in this context land in memory. Yields the fake client (``.jobs``)."""
    client = FakeClient(config)
    token = _override.set(client)
    try:
        yield client
    finally:
        _override.reset(token)


@contextlib.contextmanager
def inline(config: Config | None = None, server_middleware: Chain | None = None
           ) -> Iterator[InlineClient]:
    """Pushes in this context run at once, through ``server_middleware`` (empty by default)."""
    client = InlineClient(config, server_middleware)
    token = _override.set(client)
    try:
        yield client
    finally:
        _override.reset(token)


def _fake_client() -> FakeClient:
    client = _override.get()
    if not isinstance(client, FakeClient) or isinstance(client, InlineClient):
        raise KiqpyError("not in fake mode: use `with kiqpy.testing.fake():` or the "
                         "kiqpy_fake fixture")
    return client


def jobs_for(queue: str) -> list[Job]:
    """Fake jobs pushed to ``queue``, oldest first."""
    return [job for job in _fake_client().jobs if job["queue"] == queue]


def jobs_of(cls: type[Worker] | str) -> list[Job]:
    """Fake jobs of one job class (or job name), oldest first."""
    name = cls if isinstance(cls, str) else cls.kiqpy_job_name
    return [job for job in _fake_client().jobs if job["class"] == name]


def clear_all() -> None:
    """Forget every fake job."""
    _fake_client().jobs.clear()


def clear(cls: type[Worker]) -> None:
    """Forget the fake jobs of ``cls``."""
    client = _fake_client()
    client.jobs[:] = [job for job in client.jobs if job["class"] != cls.kiqpy_job_name]


def _run(client: FakeClient, job: Job) -> Any:
    client.jobs.remove(job)
    return execute(lookup(job["class"]), job, Chain())


def perform_one(cls: type[Worker]) -> Any:
    """Run the oldest fake job of ``cls``; :class:`NoJobsError` when there is none."""
    client = _fake_client()
    jobs = jobs_of(cls)
    if not jobs:
        raise NoJobsError(f"{cls.__qualname__} has no fake jobs to perform")
    return _run(client, jobs[0])


def drain(cls: type[Worker]) -> int:
    """Run the fake jobs of ``cls`` (including ones they enqueue) until none is left.
    Returns how many ran."""
    client, count = _fake_client(), 0
    while jobs := jobs_of(cls):
        _run(client, jobs[0])
        count += 1
    return count


def drain_all() -> int:
    """Run every fake job, in push order, including jobs enqueued while draining."""
    client, count = _fake_client(), 0
    while client.jobs:
        _run(client, client.jobs[0])
        count += 1
    return count


def run_inline(cls: type[Worker], args: Sequence[Any], options: dict[str, Any],
               fields: dict[str, Any] | None = None) -> Any:
    """``perform_inline``: the round trip, then the job, through the default server chain."""
    config = default_config()
    job = JobBuilder(config).build(cls, args, options, None, fields=fields)
    if job is None:
        return None
    job["enqueued_at"] = now_ms()
    job = round_trip(job, config.serializer)
    return execute(cls, job, config.server_middleware)
