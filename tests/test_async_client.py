"""The async client (kiqpy/client/push.py ``aenqueue``...; the mixin's ``aperform_*``;
``kiqpy.aenqueue``): what it leaves in Redis is what the sync client leaves, with the same
checks, client middleware and errors. Each test runs its coroutine with asyncio.run."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
import redis

import kiqpy
import kiqpy.testing
from kiqpy.client.push import Client
from kiqpy.config import Config
from kiqpy.errors import ArgumentError, OptionsError, RedisUnavailableError
from tests.conftest import queued_jobs, scheduled_jobs


class MailJob(kiqpy.Worker, queue="mail", retry=3):
    def perform(self, to, count):
        pass


class AsyncMail(kiqpy.Worker, queue="mail"):
    async def perform(self, to):
        await asyncio.sleep(0)


def run(coroutine):
    return asyncio.run(coroutine)


def test_aperform_async_stores_exactly_what_perform_async_stores(config, r):
    jid_sync = MailJob.perform_async("bob", 1)
    jid_async = run(MailJob.aperform_async("bob", 1))
    sync, from_async = queued_jobs(r, "mail")
    assert (sync["jid"], from_async["jid"]) == (jid_sync, jid_async)
    assert set(sync) == set(from_async)
    for field in ("class", "args", "queue", "retry"):
        assert sync[field] == from_async[field]
    assert r.smembers("queues") == {b"mail"}


def test_aperform_in_at_and_bulk_schedule_and_batch_like_the_sync_ones(config, r):
    async def main():
        soon = await MailJob.aperform_in(60, "later", 1)
        at = await MailJob.aperform_at(time.time() + 120, "at", 2)
        now = await MailJob.aperform_in(0, "now", 3)  # a time now or past: queued at once
        bulk = await MailJob.set(queue="bulk").aperform_bulk([["a", 1], ["b", 2], ["c", 3]],
                                                             batch_size=2)
        return soon, at, now, bulk

    soon, at, now, bulk = run(main())
    scheduled = {job["jid"]: score for job, score in scheduled_jobs(r)}
    assert set(scheduled) == {soon, at}
    assert scheduled[at] - scheduled[soon] == pytest.approx(60, abs=2)
    assert [job["jid"] for job in queued_jobs(r, "mail")] == [now]
    assert [job["jid"] for job in queued_jobs(r, "bulk")] == bulk


def test_aenqueue_and_apush_take_names_options_and_fields(config, r):
    async def main():
        jid = await kiqpy.aenqueue("OtherApp::Job", 1, 2, queue="x", tenant="acme")
        later = await kiqpy.aenqueue("OtherApp::Job", delay=30)
        pushed = await kiqpy.default_client().apush({"class": "Y", "args": [1], "queue": "y"})
        many = await kiqpy.default_client().apush_bulk({"class": "Z", "args": [[1], [2]]})
        return jid, later, pushed, many

    jid, later, pushed, many = run(main())
    (job,) = queued_jobs(r, "x")
    assert (job["jid"], job["class"], job["args"], job["tenant"]) == (jid, "OtherApp::Job",
                                                                        [1, 2], "acme")
    assert [j["jid"] for j, _ in scheduled_jobs(r)] == [later]
    assert [j["jid"] for j in queued_jobs(r, "y")] == [pushed]
    assert len(many) == 2 and len(queued_jobs(r, "default")) == 2


BAD = [
    (lambda: MailJob.aperform_async(object()), ArgumentError, r"args\[0\]: object is not"),
    (lambda: kiqpy.aenqueue("X", queue=""), OptionsError, r"aenqueue\('X'\)"),
    (lambda: kiqpy.aenqueue("X", delay=1, at=2), ArgumentError, "takes delay or at, not both"),
    (lambda: MailJob.aperform_bulk([[1, 2], 3]), ArgumentError, "perform_bulk item 1"),
    (lambda: kiqpy.default_client().apush({"args": []}), ArgumentError, "needs a 'class'"),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD)
def test_bad_pushes_fail_with_the_sync_clients_errors_before_any_io(config, r, call, error,
                                                                     message):
    with pytest.raises(error, match=message):
        run(call())
    assert r.keys("*") == []


def test_an_unreachable_redis_is_named_as_by_the_sync_client(closed_url):
    url = closed_url.replace("redis://", "redis://:s3cret@")
    client = Client(Config(redis_url=url))
    with pytest.raises(RedisUnavailableError) as info:
        run(client.aenqueue(MailJob, ["a", 1], {}))
    message = str(info.value)
    assert message.startswith(f"cannot reach Redis at {url.replace('s3cret', '***')}: ")
    assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
    with pytest.raises(RedisUnavailableError, match=re.escape("cannot reach Redis at")):
        run(client.aenqueue_bulk(MailJob, [["a", 1], ["b", 2]], {}))


def test_client_middleware_runs_off_the_loop_and_may_stop_a_push(config, r):
    # Given a client middleware that blocks (as one doing I/O would) and stops some pushes
    seen = []

    def middleware(job_class, job, queue, conn, next):
        seen.append((job["args"], conn is not None, _on_a_loop()))
        time.sleep(0.05)
        return None if job["args"] == ["stop", 0] else next()

    config.client_middleware.add(middleware)

    async def main():
        return [await MailJob.aperform_async("go", 1), await MailJob.aperform_async("stop", 0)]

    go, stopped = run(main())
    # Then it saw each job, with the sync Redis client, in a thread with no running loop
    assert seen == [(["go", 1], True, False), (["stop", 0], True, False)]
    assert stopped is None and [j["jid"] for j in queued_jobs(r, "mail")] == [go]


def _on_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_a_script_flushed_from_redis_is_loaded_again(config, r):
    run(MailJob.aperform_async("first", 1))
    r.script_flush()
    run(MailJob.aperform_async("second", 2))
    r.script_flush()
    run(MailJob.aperform_bulk([["third", 3]], at=time.time() + 60))
    run(MailJob.aperform_bulk([["fourth", 4], ["fifth", 5]]))
    assert len(queued_jobs(r, "mail")) == 4 and r.zcard("schedule") == 1


def test_aredis_gives_one_client_per_loop(config, r):
    async def main():
        first, second = kiqpy.aredis(), kiqpy.aredis()
        await first.set("k", "v")
        return first, second, await second.get("k")

    a, b, value = run(main())
    c, _, _ = run(main())
    assert a is b and a is not c and value == b"v"


def test_fake_mode_keeps_async_pushes_and_adrain_awaits_async_jobs(config, r):
    ran = []

    class Recorded(kiqpy.Worker):
        async def perform(self, n):
            await asyncio.sleep(0)
            ran.append((n, kiqpy.current_job()["jid"]))

    with kiqpy.testing.fake():
        async def main():
            jids = [await Recorded.aperform_async(n) for n in range(3)]
            assert len(Recorded.jobs) == 3
            assert await Recorded.adrain() == 3
            return jids

        jids = run(main())
        # outside a loop the sync drain runs an async job on a loop of its own
        Recorded.perform_async(9)
        assert Recorded.drain() == 1
    assert ran == [(0, jids[0]), (1, jids[1]), (2, jids[2]), (9, ran[3][1])]
    assert r.keys("*") == []


def test_inline_mode_awaits_async_jobs_pushed_with_the_async_client(config, r):
    ran = []

    class Now(kiqpy.Worker):
        async def perform(self, n):
            await asyncio.sleep(0)
            ran.append(n)

    with kiqpy.testing.inline():
        run(Now.aperform_async(1))
        Now.perform_async(2)  # a sync push of an async job: its own loop
        assert run(Now.aperform_inline(3)) is None
    assert ran == [1, 2, 3] and r.keys("*") == []


def test_a_blocking_drain_inside_a_loop_is_refused_with_the_way_out(config):
    class Refused(kiqpy.Worker):
        async def perform(self):
            pass

    with kiqpy.testing.fake():
        async def main():
            await Refused.aperform_async()
            Refused.drain()

        with pytest.raises(kiqpy.KiqpyError, match=r"await Refused.adrain\(\)"):
            run(main())


# -- the pytest plugin's fixtures in async tests (anyio's pytest plugin runs them) --------------
@pytest.fixture
def anyio_backend():
    return "asyncio"


class Greeted(kiqpy.Worker):
    greeted: list = []

    async def perform(self, name):
        await asyncio.sleep(0)
        Greeted.greeted.append(name)


@pytest.mark.anyio
async def test_kiqpy_fake_in_an_async_test(kiqpy_fake):
    Greeted.greeted.clear()
    await Greeted.aperform_async("ann")
    await kiqpy.aenqueue(Greeted, "bob")
    assert [job["args"] for job in Greeted.jobs] == [["ann"], ["bob"]]
    assert await Greeted.adrain() == 2
    assert Greeted.greeted == ["ann", "bob"] and kiqpy_fake.jobs == []


@pytest.mark.anyio
async def test_kiqpy_inline_in_an_async_test(kiqpy_inline):
    Greeted.greeted.clear()
    await Greeted.aperform_async("cy")
    assert Greeted.greeted == ["cy"]


def test_concurrent_pushes_share_round_trips_and_each_gets_its_own_reply(config, r):
    # Given a flushed script cache and a queue key of the wrong type
    r.script_flush()
    r.set("queue:broken", "not a list")

    async def main():
        good = [MailJob.aperform_async("x", n) for n in range(200)]
        bad = MailJob.set(queue="broken").aperform_async("y", 0)
        return await asyncio.gather(*good, bad, return_exceptions=True)

    # When 201 tasks push at once
    *jids, refused = run(main())
    # Then each good push landed once (NOSCRIPT handled), and only the bad one failed, with
    # the sync client's error
    assert len(set(jids)) == 200 and all(isinstance(j, str) for j in jids)
    assert sorted(j["jid"] for j in queued_jobs(r, "mail")) == sorted(jids)
    assert isinstance(refused, kiqpy.RedisRefusedError)
    assert "refused the push" in str(refused) and "WRONGTYPE" in str(refused)


def test_push_replicas_is_checked_as_by_the_sync_client(r, redis_url):
    # Given a client that wants one replica to have each push, and a Redis with none
    client = Client(Config(redis_url=redis_url, push_replicas=1, push_replicas_timeout=0.05))
    # When it pushes with the async client
    with pytest.raises(kiqpy.NotReplicatedError, match=r"only 0 of 1 replica"):
        run(client.aenqueue(MailJob, ["a", 1], {"queue": "mail"}))
    # Then the push was stored (the error says a failover could lose it), as with the sync one
    assert len(queued_jobs(r, "mail")) == 1
    client.close()
