"""kiqpy.testing and the pytest plugin: fake mode, inline mode, and how they are scoped."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import threading

import pytest

import kiqpy
import kiqpy.client.push
import kiqpy.config
from kiqpy import testing
from kiqpy.chain import Chain
from kiqpy.client.execution import current_job
from kiqpy.client.push import current_client
from kiqpy.config import Config
from kiqpy.errors import ArgumentError, KiqpyError, NoJobsError
from tests.conftest import queued_jobs

performed: list[tuple[str, list]] = []


@pytest.fixture(autouse=True)
def _forget_performed():
    performed.clear()
    yield
    performed.clear()


@pytest.fixture
def unreachable_default(monkeypatch, closed_url):
    """The default configuration points at a port where no Redis listens (restored after)."""
    monkeypatch.setattr(kiqpy.config._default, "config", None)
    monkeypatch.setattr(kiqpy.client.push._default, "client", None)
    return kiqpy.configure(Config(redis_url=closed_url))


class Mailer(kiqpy.Worker, queue="mail"):
    def perform(self, to, opts=None):
        performed.append(("Mailer", [to, opts]))
        return f"sent to {to}"


class Report(kiqpy.Worker, queue="reports"):
    def perform(self, n):
        performed.append(("Report", [n]))
        if n > 0:
            # A job that enqueues more work: drain must run that too.
            Report.perform_async(n - 1)


class Echo(kiqpy.Worker):
    def perform(self, *args):
        performed.append(("Echo", list(args)))
        return current_job()


# -- fake mode ----------------------------------------------------------------------------------
def test_fake_mode_keeps_jobs_in_memory_without_any_redis(unreachable_default):
    # Given the default Redis cannot be reached at all
    with testing.fake() as client:
        # When jobs are pushed in every way
        jid = Mailer.perform_async("bob")
        Mailer.perform_in(60, "later")
        Mailer.perform_bulk([["a"], ["b"]])
        kiqpy.enqueue("Other::Job", 1, queue="x")
        # Then they are all kept in memory, in push order, as a worker would read them
        assert [j["args"] for j in client.jobs] == [["bob"], ["later"], ["a"], ["b"], [1]]
        assert Mailer.jobs[0]["jid"] == jid
        assert testing.jobs_for("x")[0]["class"] == "Other::Job"


def test_fake_jobs_are_the_payloads_a_worker_would_read():
    with testing.fake():
        jid = Mailer.perform_async("bob", {"cc": ["ann"]})
        Mailer.perform_in(60, "later")
        [now, later] = Mailer.jobs
    assert (now["jid"], now["class"], now["queue"]) == (jid, "tests.test_testing.Mailer", "mail")
    assert now["args"] == ["bob", {"cc": ["ann"]}]
    assert type(now["created_at"]) is int and type(now["enqueued_at"]) is int
    assert "at" in later and "enqueued_at" not in later


def test_jobs_per_class_and_per_queue():
    with testing.fake():
        Mailer.perform_async("a")
        Report.perform_async(0)
        Mailer.set(queue="urgent").perform_async("b")
        assert [j["args"] for j in Mailer.jobs] == [["a"], ["b"]]
        assert [j["args"] for j in Report.jobs] == [[0]]
        assert [j["args"] for j in testing.jobs_for("mail")] == [["a"]]
        assert [j["args"] for j in testing.jobs_for("urgent")] == [["b"]]
        assert testing.jobs_for("nothing") == []


def test_perform_one_runs_the_oldest_job_and_returns_its_result():
    with testing.fake():
        Mailer.perform_async("first")
        Mailer.perform_async("second")
        assert Mailer.perform_one() == "sent to first"
        assert [j["args"] for j in Mailer.jobs] == [["second"]]
    assert performed == [("Mailer", ["first", None])]


def test_perform_one_with_no_job_says_so():
    with testing.fake():
        Report.perform_async(0)
        with pytest.raises(NoJobsError) as info:
            Mailer.perform_one()
    assert str(info.value) == "Mailer has no fake jobs to perform"
    assert isinstance(info.value, LookupError)


def test_drain_runs_the_class_jobs_including_the_ones_they_enqueue():
    with testing.fake():
        Report.perform_async(2)
        Mailer.perform_async("untouched")
        assert Report.drain() == 3
        assert Report.jobs == []
        assert len(Mailer.jobs) == 1
    assert performed == [("Report", [2]), ("Report", [1]), ("Report", [0])]


def test_drain_all_runs_everything_in_push_order_including_new_jobs():
    with testing.fake():
        Report.perform_async(1)
        Mailer.perform_async("m")
        assert testing.drain_all() == 3
        assert Mailer.jobs == [] and Report.jobs == []
    assert performed == [("Report", [1]), ("Mailer", ["m", None]), ("Report", [0])]


def test_clear_and_clear_all():
    with testing.fake() as client:
        Mailer.perform_async("a")
        Report.perform_async(1)
        Mailer.clear()
        assert Mailer.jobs == [] and len(Report.jobs) == 1
        Mailer.perform_async("b")
        testing.clear_all()
        assert client.jobs == []
    assert performed == []


def test_fake_mode_rejects_bad_args_like_a_real_push():
    with testing.fake():
        with pytest.raises(ArgumentError, match=r'^args\[1\]\["at"\]: datetime is not'):
            Mailer.perform_async("bob", {"at": dt.datetime.now()})
        with pytest.raises(ArgumentError, match=r"^args\[0\]: tuple is not serializable"):
            Echo.perform_async((1, 2))
        assert testing.jobs_for("mail") == []


def test_fake_mode_with_a_json_config_rejects_nan():
    with testing.fake(Config(serializer="json")) as client:
        with pytest.raises(ArgumentError, match=r"nan is not valid JSON"):
            Echo.perform_async(float("nan"))
        Echo.perform_async(1.5)
        assert client.jobs[0]["args"] == [1.5]


def test_fake_helpers_outside_fake_mode_explain_themselves():
    with pytest.raises(KiqpyError, match=r"^not in fake mode: use `with kiqpy.testing.fake\(\):`"):
        Mailer.jobs  # noqa: B018
    with testing.inline(), pytest.raises(KiqpyError, match=r"^not in fake mode"):
        Mailer.drain()


# -- inline mode --------------------------------------------------------------------------------
def test_inline_mode_runs_each_job_at_once_after_the_round_trip(unreachable_default):
    with testing.inline():
        jid = Mailer.perform_async("bob", {"cc": ["ann"], "n": 1})
        assert performed == [("Mailer", ["bob", {"cc": ["ann"], "n": 1}])]
        Mailer.perform_in(3600, "later")
        Mailer.perform_bulk([["x"], ["y"]])
    assert len(jid) == 24
    assert [p[1][0] for p in performed] == ["bob", "later", "x", "y"]


def test_inline_mode_rejects_tuples_and_other_non_native_args():
    with testing.inline():
        with pytest.raises(ArgumentError, match=r"^args\[0\]: tuple is not serializable"):
            Echo.perform_async((1, 2))
        with pytest.raises(ArgumentError, match=r'^args\[0\]\[1\]: dict key of type int'):
            Echo.perform_async({1: "x"})
    assert performed == []


class WhoAmI(kiqpy.Worker):
    seen: list = []

    def perform(self):
        WhoAmI.seen.append((self.jid, current_job()))


@pytest.mark.parametrize("push", [lambda: WhoAmI.perform_async(), lambda: WhoAmI.perform_in(60),
                                  lambda: WhoAmI.perform_inline()])
def test_a_job_run_inline_sees_itself_as_a_worker_would(push):
    # A worker's job always has enqueued_at (the scheduler sets it when a job comes due).
    WhoAmI.seen.clear()
    with testing.inline():
        push()
    [(jid, job)] = WhoAmI.seen
    assert jid == job["jid"]
    assert job["class"] == "tests.test_testing.WhoAmI"
    assert type(job["enqueued_at"]) is int
    assert current_job() is None


def test_inline_mode_uses_its_own_server_chain_not_the_default_one(config):
    # Given a server middleware on the default configuration, and another for inline mode
    seen = []

    def default_mw(worker, job, queue, next):
        seen.append("default")
        return next()

    def inline_mw(worker, job, queue, next):
        seen.append(("inline", type(worker).__name__, job["args"], queue))
        return next()

    config.server_middleware.add(default_mw)
    chain = Chain()
    chain.add(inline_mw)
    # When jobs run inline with and without a chain of its own
    with testing.inline():
        Echo.perform_async(1)
    with testing.inline(server_middleware=chain):
        Echo.perform_async(2)
    # Then only the inline chain ran, and only when given
    assert seen == [("inline", "Echo", [2], "default")]


def test_inline_mode_raises_the_jobs_error_in_the_caller():
    class Boom(kiqpy.Worker):
        def perform(self):
            raise RuntimeError("boom")

    with testing.inline(), pytest.raises(RuntimeError, match="boom"):
        Boom.perform_async()


def test_perform_inline_runs_now_through_the_default_server_chain(config, r):
    seen = []
    config.server_middleware.add(lambda worker, job, queue, next: seen.append(queue) or next())
    assert Mailer.perform_inline("bob", {"x": 1}) == "sent to bob"
    assert Mailer.set(queue="urgent").perform_inline("ann") == "sent to ann"
    assert seen == ["mail", "urgent"]
    assert performed == [("Mailer", ["bob", {"x": 1}]), ("Mailer", ["ann", None])]
    assert r.keys("*") == []
    with pytest.raises(ArgumentError, match=r"^args\[0\]: set is not serializable"):
        Mailer.perform_inline({1})


# -- scoping ------------------------------------------------------------------------------------
def test_context_managers_restore_the_previous_mode():
    assert not isinstance(current_client(), testing.FakeClient)
    with testing.inline() as inline_client:
        with testing.fake() as fake_client:
            assert current_client() is fake_client
        assert current_client() is inline_client
        Echo.perform_async("inline again")
    assert not isinstance(current_client(), testing.FakeClient)
    assert performed == [("Echo", ["inline again"])]


def test_the_mode_is_restored_even_when_the_block_raises():
    with pytest.raises(ValueError), testing.fake():
        raise ValueError
    assert not isinstance(current_client(), testing.FakeClient)


def test_a_thread_started_inside_fake_mode_pushes_for_real(config, r):
    # Given fake mode in this thread
    results = []
    with testing.fake() as client:
        # When another thread pushes
        thread = threading.Thread(target=lambda: results.append(Echo.perform_async("real")))
        thread.start()
        thread.join(10)
        Echo.perform_async("fake")
        # Then its job went to Redis, and only this thread's job is fake
        assert [j["args"] for j in client.jobs] == [["fake"]]
    assert [j["jid"] for j in queued_jobs(r)] == results


def test_two_threads_in_fake_mode_keep_their_own_jobs():
    barrier = threading.Barrier(2)
    seen = {}

    def run(name):
        with testing.fake() as client:
            barrier.wait(5)
            Echo.perform_async(name)
            barrier.wait(5)
            seen[name] = [j["args"] for j in client.jobs]

    threads = [threading.Thread(target=run, args=(n,)) for n in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"one": [["one"]], "two": [["two"]]}


# -- pytest plugin ------------------------------------------------------------------------------
def test_kiqpy_fake_fixture(kiqpy_fake):
    Mailer.perform_async("fixture")
    assert [j["args"] for j in Mailer.jobs] == [["fixture"]]
    assert kiqpy_fake.jobs == Mailer.jobs


def test_kiqpy_inline_fixture(kiqpy_inline):
    Mailer.perform_async("fixture")
    assert performed == [("Mailer", ["fixture", None])]
    assert isinstance(kiqpy_inline, testing.InlineClient)


def test_the_plugin_is_installed_and_its_modes_do_not_leak_between_tests(tmp_path):
    # Given a project's test file that uses the fixtures, outside this repository's conftest
    (tmp_path / "test_app.py").write_text(textwrap.dedent("""
        import kiqpy
        from kiqpy.client.push import current_client
        from kiqpy.testing import FakeClient

        class AppJob(kiqpy.Worker):
            def perform(self, x):
                pass

        def test_a_fake(kiqpy_fake):
            AppJob.perform_async(1)
            assert len(AppJob.jobs) == 1

        def test_b_after_fake_nothing_is_fake():
            assert not isinstance(current_client(), FakeClient)

        def test_c_inline(kiqpy_inline):
            AppJob.perform_async(1)

        def test_d_after_inline_nothing_is_inline():
            assert not isinstance(current_client(), FakeClient)
    """))
    # When pytest runs it in a fresh process (the plugin comes from kiqpy's entry point)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    # Then all four pass
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
