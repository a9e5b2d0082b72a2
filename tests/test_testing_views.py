"""kiqpy.testing: ``Job.jobs`` and ``jobs_for`` as live views (Sidekiq's ``HardWorker.jobs.clear``),
and the server chain the testing modes run jobs through (Sidekiq::Testing.server_middleware)."""

from __future__ import annotations

import pytest

import kiqpy
from kiqpy import testing
from kiqpy.chain import Chain

ran: list = []


class Mail(kiqpy.Worker, queue="mail"):
    def perform(self, to):
        ran.append(("Mail", to))
        return f"sent to {to}"


class Audit(kiqpy.Worker, queue="mail"):
    def perform(self, n):
        ran.append(("Audit", n))


@pytest.fixture(autouse=True)
def _clean():
    ran.clear()


# -- live views ---------------------------------------------------------------------------------
def test_jobs_clear_forgets_the_class_jobs_as_in_sidekiq(kiqpy_fake):
    Mail.perform_async("a")
    Mail.perform_async("b")
    Audit.perform_async(1)
    Mail.jobs.clear()
    assert Mail.jobs == [] and len(Mail.jobs) == 0
    assert [j["class"] for j in kiqpy_fake.jobs] == [Audit.kiqpy_job_name]
    assert Mail.drain() == 0 and testing.drain_all() == 1
    assert ran == [("Audit", 1)]


def test_del_pop_and_remove_take_jobs_out_of_the_fake_client(kiqpy_fake):
    for to in ("a", "b", "c", "d"):
        Mail.perform_async(to)
    Audit.perform_async(0)
    del Mail.jobs[0]
    popped = Mail.jobs.pop()
    Mail.jobs.remove(Mail.jobs[0])
    assert (popped["args"], [j["args"] for j in Mail.jobs]) == (["d"], [["c"]])
    assert [j["args"] for j in kiqpy_fake.jobs] == [["c"], [0]]
    del Mail.jobs[:]
    assert kiqpy_fake.jobs == Audit.jobs and len(Audit.jobs) == 1


def test_a_view_reads_like_a_list_and_follows_later_pushes(kiqpy_fake):
    jobs = Mail.jobs
    assert jobs == [] and not jobs
    jid = Mail.perform_async("a")
    Mail.perform_async("b")
    assert len(jobs) == 2 and jobs[0]["jid"] == jid and jobs[-1]["args"] == ["b"]
    assert [j["args"] for j in jobs[:1]] == [["a"]]
    [first, second] = jobs
    assert jobs == [first, second] and [first, second] == jobs and jobs != [first]
    assert jobs == Mail.jobs and repr(jobs) == repr([first, second])
    with pytest.raises(TypeError, match="added by pushing"):
        jobs.append(first)


def test_jobs_for_is_a_live_view_of_a_queue_and_agrees_with_the_class_views(kiqpy_fake):
    Mail.perform_async("a")
    Audit.perform_async(1)
    Mail.set(queue="other").perform_async("b")
    mail = testing.jobs_for("mail")
    assert [j["args"] for j in mail] == [["a"], [1]]
    mail.clear()
    assert Audit.jobs == [] and [j["args"] for j in Mail.jobs] == [["b"]]
    assert [j["queue"] for j in kiqpy_fake.jobs] == ["other"]
    testing.clear_all()
    assert Mail.jobs == [] and testing.jobs_for("other") == []


def test_draining_while_holding_a_view_runs_jobs_enqueued_meanwhile(kiqpy_fake):
    class Chain3(kiqpy.Worker):
        def perform(self, n):
            ran.append(n)
            if n < 3:
                Chain3.perform_async(n + 1)

    view = Chain3.jobs
    Chain3.perform_async(1)
    assert Chain3.drain() == 3 and ran == [1, 2, 3] and view == []


# -- server middleware in testing modes ----------------------------------------------------------
def recorder(seen: list, tag: str):
    def middleware(worker, job, queue, next):
        seen.append((tag, type(worker).__name__, queue))
        return next()
    return middleware


def test_fake_drain_and_perform_one_run_the_fake_modes_chain_not_the_default(config):
    # Given a server middleware on the default configuration and one for fake mode
    seen: list = []
    config.server_middleware.add(recorder(seen, "default"))
    chain = Chain()
    chain.add(recorder(seen, "fake"))
    # When fake jobs run, with and without a chain of their own
    with testing.fake():
        Mail.perform_async("plain")
        Mail.drain()
    with testing.fake(server_middleware=chain):
        Mail.perform_async("a")
        Audit.perform_async(1)
        Mail.perform_one()
        testing.drain_all()
    # Then only the fake chain ran, and only when given
    assert seen == [("fake", "Mail", "mail"), ("fake", "Audit", "mail")]
    assert ran == [("Mail", "plain"), ("Mail", "a"), ("Audit", 1)]


def test_the_fixtures_clients_take_server_middleware(kiqpy_fake):
    seen: list = []
    kiqpy_fake.server_middleware.add(recorder(seen, "fixture"))
    Mail.perform_async("a")
    assert Mail.drain() == 1 and seen == [("fixture", "Mail", "mail")]


def test_perform_inline_uses_the_testing_modes_chain_in_a_testing_mode(config):
    # Given a default server middleware, and chains for inline and fake mode
    seen: list = []
    config.server_middleware.add(recorder(seen, "default"))
    inline_chain, fake_chain = Chain(), Chain()
    inline_chain.add(recorder(seen, "inline"))
    fake_chain.add(recorder(seen, "fake"))
    # When perform_inline runs in each mode and outside them
    with testing.inline(server_middleware=inline_chain):
        assert Mail.perform_inline("a") == "sent to a"
    with testing.fake(server_middleware=fake_chain) as client:
        assert Mail.set(queue="urgent").perform_inline("b") == "sent to b"
        assert client.jobs == []
    with testing.inline():
        Mail.perform_inline("c")  # the inline mode's chain: empty
    assert Mail.perform_inline("d") == "sent to d"
    # Then each ran through its mode's chain; outside the modes, the default one
    assert seen == [("inline", "Mail", "mail"), ("fake", "Mail", "urgent"),
                    ("default", "Mail", "mail")]
    assert [to for _, to in ran] == ["a", "b", "c", "d"]
