"""kiqpy_middleware.unique releases a job's lock when the job dies or is discarded (its death
handler, added by install()), as Sidekiq Enterprise does, and keeps it while a retry is
pending. Run in a real worker."""

from __future__ import annotations

import pytest

from kiqpy.keys import Keys
from kiqpy.payload import decode
from kiqpy_middleware.unique import UniqueDeath, digest, install
from tests import app_unique_death as jobs
from tests.conftest import wait_for
from tests.workers import WorkerProcess

DYING = [jobs.NoRetry, jobs.Exhausted, jobs.Killed, jobs.Discarded]


def lock_of(cls, *args):
    return Keys().unique(digest(cls.kiqpy_job_name, "default", list(args)))


@pytest.fixture
def unique(config):
    install(config)
    return config


def test_install_adds_one_death_handler(config):
    install(config)
    install(config)
    assert [type(h) for h in config.death_handlers] == [UniqueDeath]


def test_a_job_that_dies_or_is_discarded_releases_its_lock_and_a_retried_one_keeps_it(
        unique, r, redis_url):
    # Given one unique job of each kind pushed, each holding its lock, and a second push of
    # each refused
    jids = {cls: cls.perform_async(1) for cls in [*DYING, jobs.Retried]}
    assert all(jids.values()) and all(r.exists(lock_of(cls, 1)) for cls in jids)
    assert [cls.perform_async(1) for cls in jids] == [None] * len(jids)
    # When a worker runs them and each fails
    with WorkerProcess(redis_url, require="tests.app_unique_death") as worker:
        wait_for(lambda: r.zcard("retry") == 1 and r.zcard("dead") == 2
                 and not any(r.exists(lock_of(cls, 1)) for cls in DYING),
                 timeout=20, message="the jobs to fail and the dying ones to unlock")
        worker.terminate()
        assert worker.wait() == 0
    # Then each ran once; the killed and exhausted ones are in the dead set
    for cls in jids:
        assert r.get(f"test:attempts:{cls.kiqpy_job_name}") == b"1"
    dead = sorted(decode(m)["class"] for m in r.zrange("dead", 0, -1))
    assert dead == ["UniqueExhausted", "UniqueKilled"]
    # and only the job waiting for its retry still holds its lock, with its own jid
    assert r.get(lock_of(jobs.Retried, 1)) == jids[jobs.Retried].encode()
    assert jobs.Retried.perform_async(1) is None
    # while the dead and discarded ones can be pushed again at once
    assert all(cls.perform_async(1) for cls in DYING)


def test_the_death_handler_leaves_a_newer_copys_lock_alone(unique, r):
    # Given a lock that now belongs to a newer copy of the job
    jid = jobs.NoRetry.perform_async(2)
    handler = UniqueDeath(unique)
    # When the death handler runs for an older job with the same digest
    handler({"jid": "older", "unique_digest": digest("UniqueNoRetry", "default", [2])},
            RuntimeError("boom"))
    handler({"jid": "no-digest"}, RuntimeError("boom"))
    # Then the newer copy keeps its lock
    assert r.get(lock_of(jobs.NoRetry, 2)) == jid.encode()
