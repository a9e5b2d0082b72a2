"""Testing modes catch every client's pushes, as Sidekiq's Testing.fake!/inline! patch the
client's raw push: the item API (``kiqpy.default_client().push``, ``kiqpy.Client().push``,
``push_bulk``) lands in the fake list or runs inline, and Redis is never written."""

from __future__ import annotations

import threading
import time

import kiqpy
from kiqpy import testing
from kiqpy.chain import Chain
from tests.conftest import queued_jobs


class Mailer(kiqpy.Worker, queue="mail"):
    sent: list = []

    def perform(self, to):
        Mailer.sent.append(to)


def test_default_client_push_lands_in_fake_mode(config, r):
    with testing.fake() as fake:
        jid = kiqpy.default_client().push({"class": Mailer, "args": ["bob"], "tenant": "acme"})
        kiqpy.default_client().push({"class": "OtherApp::Job", "args": [1],
                                     "at": time.time() + 60})
        assert [job["jid"] for job in Mailer.jobs] == [jid]
        assert Mailer.jobs[0]["tenant"] == "acme"
        assert [job["class"] for job in fake.jobs] == [Mailer.kiqpy_job_name, "OtherApp::Job"]
        assert "at" in fake.jobs[1]  # a fake scheduled job shows its run time, as in Sidekiq
    assert r.keys("*") == []


def test_any_client_push_and_push_bulk_land_in_fake_mode(config, r):
    own = kiqpy.Client(config.replace(namespace="other"))
    with testing.fake():
        own.push({"class": Mailer, "args": ["ann"]})
        kiqpy.Client().push_bulk({"class": Mailer, "args": [["a"], ["b"]]})
        own.enqueue(Mailer, ["c"], {"queue": "mail"})
        assert [job["args"] for job in Mailer.jobs] == [["ann"], ["a"], ["b"], ["c"]]
        assert all("enqueued_at" in job for job in Mailer.jobs)
    assert r.keys("*") == []
    own.close()


def test_a_client_builds_the_job_with_its_own_chain_and_no_redis(config, r):
    # Given a client whose configuration has a client middleware
    seen = []

    def tag(job_class, job, queue, redis_client, next):
        seen.append(redis_client)
        job["tagged"] = True
        return next()

    chain = Chain()
    chain.add(tag)
    own = kiqpy.Client(config.replace(client_middleware=chain))
    # When it pushes in fake mode
    with testing.fake():
        own.push({"class": Mailer, "args": ["x"]})
        # Then its chain ran, saw no Redis (as any testing mode), and the job is fake
        assert Mailer.jobs[0]["tagged"] is True
    assert seen == [None]
    assert r.keys("*") == []
    own.close()


def test_inline_mode_runs_item_api_pushes_at_once(config, r):
    Mailer.sent = []
    with testing.inline():
        kiqpy.default_client().push({"class": Mailer, "args": ["now"]})
        kiqpy.Client().push_bulk({"class": Mailer, "args": [["one"], ["two"]]})
    assert Mailer.sent == ["now", "one", "two"]
    assert r.keys("*") == []


def test_outside_a_mode_and_in_other_threads_clients_push_to_redis(config, r):
    client = kiqpy.Client()
    pushed = []
    with testing.fake():
        thread = threading.Thread(target=lambda: pushed.append(
            client.push({"class": Mailer, "args": ["elsewhere"]})))
        thread.start()
        thread.join(10)
        assert len(Mailer.jobs) == 0
    client.push({"class": Mailer, "args": ["after"]})
    assert [job["args"] for job in queued_jobs(r, "mail")] == [["elsewhere"], ["after"]]
    client.close()
