"""kiqpy.chain: editing and running middleware chains, and client middleware on real pushes."""

from __future__ import annotations

import datetime as dt
import time

import pytest

import kiqpy
from kiqpy import testing
from kiqpy.chain import Chain
from kiqpy.errors import ArgumentError
from tests.conftest import queued_jobs


class A:
    def __call__(self, *args):
        return args[-1]()


class B(A):
    pass


class C(A):
    pass


class D(A):
    pass


def names(chain):
    return [m.__name__ for m in chain]


# -- editing ------------------------------------------------------------------------------------
def test_add_appends_and_iteration_is_in_order():
    chain = Chain()
    chain.add(A)
    chain.add(B)
    chain.add(C)
    assert names(chain) == ["A", "B", "C"]
    assert len(chain) == 3


def test_adding_again_moves_to_the_end():
    chain = Chain()
    for m in (A, B, C, A):
        chain.add(m)
    assert names(chain) == ["B", "C", "A"]


def test_prepend_puts_first_and_moves_an_existing_entry():
    chain = Chain()
    chain.add(A)
    chain.add(B)
    chain.prepend(C)
    assert names(chain) == ["C", "A", "B"]
    chain.prepend(B)
    assert names(chain) == ["B", "C", "A"]


def test_insert_before_and_after():
    chain = Chain()
    chain.add(A)
    chain.add(B)
    chain.insert_before(B, C)
    assert names(chain) == ["A", "C", "B"]
    chain.insert_after(A, D)
    assert names(chain) == ["A", "D", "C", "B"]
    chain.insert_after(B, A)  # moves A to the end
    assert names(chain) == ["D", "C", "B", "A"]


def test_insert_relative_to_a_missing_entry_goes_to_the_edge():
    chain = Chain()
    chain.add(A)
    chain.insert_before(D, B)
    chain.insert_after(D, C)
    assert names(chain) == ["B", "A", "C"]


def test_remove_contains_and_clear():
    chain = Chain()
    chain.add(A)
    chain.add(B)
    assert chain.contains(A) and B in chain and C not in chain
    chain.remove(A)
    chain.remove(C)  # absent: nothing happens
    assert names(chain) == ["B"]
    chain.clear()
    assert list(chain) == [] and not chain and len(chain) == 0


def test_copy_is_independent():
    chain = Chain()
    chain.add(A)
    other = chain.copy()
    other.add(B)
    assert names(chain) == ["A"]
    assert names(other) == ["A", "B"]


# -- running ------------------------------------------------------------------------------------
def test_first_added_runs_outermost():
    calls = []

    def recorder(name):
        def middleware(value, next):
            calls.append(f"{name} in")
            result = next()
            calls.append(f"{name} out")
            return result
        return middleware

    chain = Chain()
    first, second = recorder("first"), recorder("second")
    chain.add(second)
    chain.prepend(first)
    assert chain.invoke(lambda: calls.append("step") or "done", "value") == "done"
    assert calls == ["first in", "second in", "step", "second out", "first out"]


def test_a_class_with_call_a_class_with_dunder_call_and_a_function_all_work():
    seen = []

    class WithCall:
        def call(self, value, next):
            seen.append(("call", value))
            return next()

    class WithDunder:
        def __call__(self, value, next):
            seen.append(("dunder", value))
            return next()

    def function(value, next):
        seen.append(("function", value))
        return next()

    chain = Chain()
    chain.add(WithCall)
    chain.add(WithDunder)
    chain.add(function)
    assert chain.invoke(lambda: 42, "v") == 42
    assert seen == [("call", "v"), ("dunder", "v"), ("function", "v")]


def test_an_instance_with_a_call_method_works_too():
    class Stamp:
        def __init__(self, mark):
            self.mark = mark

        def call(self, job, next):
            job["mark"] = self.mark
            return next()

    job = {}
    chain = Chain()
    chain.add(Stamp("x"))
    chain.invoke(lambda: None, job)
    assert job == {"mark": "x"}


def test_classes_get_the_constructor_args_and_are_built_once():
    built = []

    class Tagger:
        def __init__(self, tag, *, times=1):
            built.append((tag, times))
            self.tag, self.times = tag, times

        def __call__(self, out, next):
            out.append(self.tag * self.times)
            return next()

    chain = Chain()
    chain.add(Tagger, "ab", times=2)
    out = []
    chain.invoke(lambda: None, out)
    chain.invoke(lambda: None, out)
    assert out == ["abab", "abab"]
    assert built == [("ab", 2)]


def test_constructor_args_for_something_that_is_not_a_class_are_refused():
    def function(value, next):
        return next()

    chain = Chain()
    chain.add(function)
    with pytest.raises(TypeError, match=r"only a middleware class takes constructor args"):
        chain.add(function, "arg")
    assert list(chain) == [function]


def test_editing_a_chain_rebuilds_it():
    chain = Chain()
    chain.add(A)
    chain.instances()
    chain.add(B)
    assert len(chain.instances()) == 2


def test_a_middleware_that_does_not_call_next_stops_the_step():
    ran = []
    chain = Chain()
    chain.add(lambda value, next: "stopped")
    assert chain.invoke(lambda: ran.append(1), "v") == "stopped"
    assert ran == []


def test_an_empty_chain_just_runs_the_step():
    assert Chain().invoke(lambda: "x", 1, 2, 3) == "x"


# -- client middleware on real pushes -----------------------------------------------------------
class Job(kiqpy.Worker, tags=["base"]):
    def perform(self, *args):
        pass


class AddTenant:
    def __call__(self, job_class, job, queue, redis, next):
        job["tenant"] = "acme"
        job["args"].append("extra")
        return next()


class Veto:
    def __call__(self, job_class, job, queue, redis, next):
        if job["args"][0] == "drop":
            return None
        return next()


def test_client_middleware_gets_the_class_job_queue_and_redis(config, r):
    seen = []

    def spy(job_class, job, queue, redis, next):
        seen.append((job_class, job["jid"], queue, redis is not None))
        return next()

    config.client_middleware.add(spy)
    jid = Job.set(queue="q").perform_async(1)
    kiqpy.enqueue("Other::Job", 2)
    assert seen == [(Job, jid, "q", True), ("Other::Job", seen[1][1], "default", True)]


def test_client_middleware_changes_are_what_lands_in_redis(config, r):
    config.client_middleware.add(AddTenant)
    Job.perform_async("a")
    [job] = queued_jobs(r)
    assert (job["tenant"], job["args"]) == ("acme", ["a", "extra"])


def test_a_middleware_may_return_a_new_job_map(config, r):
    def replace(job_class, job, queue, redis, next):
        next()
        return {**job, "queue": "elsewhere", "stamped": True}

    config.client_middleware.add(replace)
    Job.perform_async(1)
    [job] = queued_jobs(r, "elsewhere")
    assert job["stamped"] is True
    assert r.smembers("queues") == {b"elsewhere"}


def test_a_vetoed_push_returns_none_and_stores_nothing(config, r):
    config.client_middleware.add(Veto)
    assert Job.perform_async("drop") is None
    assert Job.perform_in(60, "drop") is None
    assert r.keys("*") == []
    assert Job.perform_async("keep") is not None


def test_a_vetoed_job_in_a_bulk_is_none_at_its_index(config, r):
    config.client_middleware.add(Veto)
    jids = Job.perform_bulk([["keep", 1], ["drop"], ["keep", 2]])
    assert jids[1] is None
    assert [j["jid"] for j in queued_jobs(r)] == [jids[0], jids[2]]


def test_a_bulk_where_every_job_is_vetoed_stores_nothing(config, r):
    config.client_middleware.add(Veto)
    assert Job.perform_bulk([["drop"], ["drop"]]) == [None, None]
    assert r.keys("*") == []


def test_a_middleware_that_puts_a_bad_arg_in_the_job_is_rejected_before_io(config, r):
    def bad(job_class, job, queue, redis, next):
        job["args"].append({"at": dt.datetime(2026, 1, 1)})
        return next()

    config.client_middleware.add(bad)
    with pytest.raises(ArgumentError, match=r'^args\[1\]\["at"\]: datetime is not serializable'):
        Job.perform_async(1)
    assert r.keys("*") == []


def test_a_middleware_that_puts_a_bad_field_in_the_job_is_rejected_before_io(config, r):
    def bad(job_class, job, queue, redis, next):
        job["meta"] = {"seen": {1, 2}}
        return next()

    config.client_middleware.add(bad)
    with pytest.raises(ArgumentError, match=r'^job\["meta"\]\["seen"\]: set is not serializable'):
        Job.perform_async(1)
    assert r.keys("*") == []


@pytest.mark.parametrize(("field", "value"), [("queue", ""), ("class", None), ("jid", 5)])
def test_a_middleware_that_breaks_a_required_field_is_rejected_before_io(config, r, field, value):
    def bad(job_class, job, queue, redis, next):
        job[field] = value
        return next()

    config.client_middleware.add(bad)
    with pytest.raises(ArgumentError, match=rf'^job\["{field}"\] must be a non-empty str'):
        Job.perform_async(1)
    assert r.keys("*") == []


def test_a_middleware_editing_tags_does_not_change_the_classs_options(config, r):
    # Given a middleware that appends to the job's tags in place
    def tag(job_class, job, queue, redis, next):
        job["tags"].append("seen")
        return next()

    config.client_middleware.add(tag)
    # When two jobs are pushed
    Job.perform_async(1)
    Job.perform_async(2)
    # Then each got one extra tag and the class still has its own
    assert [j["tags"] for j in queued_jobs(r)] == [["base", "seen"], ["base", "seen"]]
    assert Job.kiqpy_options_resolved["tags"] == ["base"]


def test_client_middleware_runs_in_fake_mode_too(config):
    config.client_middleware.add(AddTenant)
    with testing.fake():
        Job.perform_async("a")
        assert Job.jobs[0]["tenant"] == "acme"


def test_threads_running_a_chain_for_the_first_time_build_each_class_once():
    import threading

    built = []
    gate = threading.Barrier(8)

    class Slow:
        def __init__(self):
            built.append(self)
            time.sleep(0.05)  # a slow constructor widens the window the lock must close

        def __call__(self, job, next):
            return next()

    chain = Chain()
    chain.add(Slow)

    def run():
        gate.wait()
        chain.invoke(lambda: None, {})

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(built) == 1


def test_an_async_middleware_is_refused_when_added():
    # Its call would return a coroutine nobody awaits: the job would be skipped silently.
    class AsyncClass:
        async def __call__(self, worker, job, queue, next):
            return next()

    class AsyncCall:
        async def call(self, worker, job, queue, next):
            return next()

    async def async_function(worker, job, queue, next):
        return next()

    for middleware in (AsyncClass, AsyncCall, async_function, AsyncClass()):
        chain = Chain()
        with pytest.raises(TypeError, match="is an async middleware"):
            chain.add(middleware)
        assert len(chain) == 0


def test_plain_middleware_of_every_shape_are_still_accepted():
    import functools

    class Plain:
        def __call__(self, worker, job, queue, next):
            return next()

    class WithCall:
        def call(self, worker, job, queue, next):
            return next()

    def function(worker, job, queue, next, extra=None):
        return next()

    chain = Chain()
    for middleware in (Plain, WithCall, function, Plain(), functools.partial(function, extra=1)):
        chain.add(middleware)
    assert len(chain) == 5
    with pytest.raises(TypeError, match="is an async middleware"):
        async def coroutine(worker, job, queue, next):
            return next()
        chain.add(functools.partial(coroutine))
