"""Config.defer_push, the client's "push now or later" seam (kiqpy.contrib.django plugs
transaction.on_commit into it), and the on_commit push option; no framework involved."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

import kiqpy
from kiqpy.api import Queue
from kiqpy.config import Config
from kiqpy.testing import fake


class Later:
    """A hook that keeps every push it is offered, and what on_commit said."""

    def __init__(self, take: bool = True) -> None:
        self.take = take
        self.pushes: list[Callable[[], None]] = []
        self.asked: list[bool | None] = []

    def __call__(self, push: Callable[[], None], on_commit: bool | None) -> bool:
        self.asked.append(on_commit)
        if self.take:
            self.pushes.append(push)
        return self.take


class Deferred(kiqpy.Worker):
    def perform(self, *args: Any) -> None:
        pass


class AlwaysNow(kiqpy.Worker, on_commit=False):
    def perform(self, *args: Any) -> None:
        pass


@pytest.fixture
def later(r: redis.Redis, redis_url: str) -> Any:
    hook = Later()
    kiqpy.configure(Config(redis_url=redis_url, defer_push=hook))
    yield hook
    kiqpy.configure(Config(redis_url=redis_url))


def test_a_taken_push_returns_its_jid_and_reaches_redis_only_when_called(
        later: Later, r: redis.Redis) -> None:
    jid = Deferred.perform_async(1)
    assert isinstance(jid, str) and r.llen("queue:default") == 0
    later.pushes.pop()()
    assert r.llen("queue:default") == 1
    assert Queue("default").find_job(jid) is not None


def test_the_hook_hears_the_on_commit_option(later: Later, r: redis.Redis) -> None:
    Deferred.perform_async(1)
    Deferred.set(on_commit=True).perform_in(60, 2)
    AlwaysNow.perform_async(3)
    kiqpy.enqueue(Deferred, 4, on_commit=False)
    assert later.asked == [None, True, False, False]
    for push in later.pushes:
        push()
    assert r.llen("queue:default") == 3 and r.zcard("schedule") == 1
    assert all(b"on_commit" not in raw for raw in r.lrange("queue:default", 0, -1))


def test_bulk_is_offered_once_with_every_jid(later: Later, r: redis.Redis) -> None:
    jids = Deferred.perform_bulk([[n] for n in range(5)], batch_size=2)
    assert len(later.pushes) == 1 and len(set(jids)) == 5 and r.llen("queue:default") == 0
    later.pushes[0]()
    assert r.llen("queue:default") == 5


def test_a_hook_that_declines_lets_the_push_go_now(r: redis.Redis, redis_url: str) -> None:
    kiqpy.configure(Config(redis_url=redis_url, defer_push=Later(take=False)))
    try:
        Deferred.perform_async(1)
        assert r.llen("queue:default") == 1
    finally:
        kiqpy.configure(Config(redis_url=redis_url))


def test_testing_modes_never_defer(later: Later) -> None:
    with fake():
        Deferred.perform_async(1)
        assert len(Deferred.jobs) == 1
    assert later.asked == []


def test_bad_hook_and_bad_option_are_refused(redis_url: str) -> None:
    with pytest.raises(kiqpy.ConfigurationError, match="defer_push must be a callable"):
        Config(redis_url=redis_url, defer_push="later")  # type: ignore[arg-type]
    with pytest.raises(kiqpy.OptionsError, match="on_commit"):
        Deferred.set(on_commit=1)
    with pytest.raises(kiqpy.OptionsError, match="on_commit"):
        type("Bad", (kiqpy.Worker,), {}, on_commit="yes")


def test_pushes_inside_a_batch_block_are_never_deferred(later: Later, r: redis.Redis) -> None:
    # Given a hook that would defer every push (a Django transaction)
    from kiqpy.api import BatchStatus

    batch = kiqpy.Batch(description="in a transaction")
    # When jobs are pushed inside the batch's block, one by one and in bulk
    with batch.jobs():
        Deferred.perform_async(1)
        Deferred.perform_bulk([[2], [3]])
    # Then they went out at once and joined the batch before it closed, so it is pending
    assert later.pushes == [] and r.llen("queue:default") == 3
    status = BatchStatus(batch.bid)
    assert (status.total, status.pending, status.complete) == (3, 3, False)


def test_async_pushes_inside_a_batch_block_join_the_batch(r: redis.Redis,
                                                         redis_url: str) -> None:
    import asyncio

    from kiqpy.api import BatchStatus

    kiqpy.configure(Config(redis_url=redis_url))
    batch = kiqpy.Batch(description="async")

    async def main() -> None:
        with batch.jobs():
            await Deferred.aperform_async(1)
            await Deferred.aperform_bulk([[2], [3]])

    asyncio.run(main())
    jobs = [kiqpy.payload.decode(p) for p in r.lrange("queue:default", 0, -1)]
    assert len(jobs) == 3 and {job["bid"] for job in jobs} == {batch.bid}
    assert BatchStatus(batch.bid).pending == 3
