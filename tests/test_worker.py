"""kiqpy.client.worker and kiqpy.client.options: class options, the registry, set(), and the
enqueue methods."""

from __future__ import annotations

import datetime as dt
import math
import re
import time

import pytest

import kiqpy
from kiqpy.client import options as options_module
from kiqpy.client.registry import lookup
from kiqpy.errors import ArgumentError, ConfigurationError, OptionsError, UnknownJobError
from tests.conftest import queued_jobs, scheduled_jobs

queued = queued_jobs
scheduled = scheduled_jobs


class HardJob(kiqpy.Worker, queue="mail", retry=5):
    def perform(self, name, count):
        return name * count


class DictJob(kiqpy.Worker):
    kiqpy_options = {"queue": "reports", "tags": ["nightly"], "backtrace": 20}

    def perform(self):
        pass


class PlainJob(kiqpy.Worker):
    def perform(self, *args):
        return args


class ChildJob(HardJob, retry=False, tags=["child"]):
    pass


class RubyJob(kiqpy.Worker, name="OtherApp::HardJob", queue="ruby"):
    def perform(self, *args):
        pass


class RubyChild(RubyJob):
    pass


# -- options at class definition ----------------------------------------------------------------
def test_class_keywords_and_kiqpy_options_dict_both_set_options():
    assert HardJob.kiqpy_options_resolved == {"queue": "mail", "retry": 5}
    assert DictJob.kiqpy_options_resolved == {"queue": "reports", "tags": ["nightly"],
                                              "backtrace": 20}


def test_class_keywords_win_over_the_dict():
    class Both(kiqpy.Worker, queue="from-keyword"):
        kiqpy_options = {"queue": "from-dict", "retry": 2}

    assert Both.kiqpy_options_resolved == {"queue": "from-keyword", "retry": 2}


def test_subclasses_inherit_options_and_override_some():
    assert ChildJob.kiqpy_options_resolved == {"queue": "mail", "retry": False, "tags": ["child"]}
    assert HardJob.kiqpy_options_resolved == {"queue": "mail", "retry": 5}


def test_subclass_with_its_own_dict_inherits_the_rest():
    class Parent(kiqpy.Worker):
        kiqpy_options = {"queue": "p", "retry": 3}

    class Child(Parent):
        kiqpy_options = {"retry": 1}

    assert Child.kiqpy_options_resolved == {"queue": "p", "retry": 1}


def test_defaults_land_in_the_payload(config, r):
    PlainJob.perform_async()
    [job] = queued(r)
    assert (job["queue"], job["retry"]) == ("default", True)
    assert PlainJob.kiqpy_options_resolved == {}


def test_timedelta_options_are_normalized_to_seconds():
    class Slow(kiqpy.Worker, retry_for=dt.timedelta(hours=2), tags=("a", "b")):
        pass

    assert Slow.kiqpy_options_resolved == {"retry_for": 7200.0, "tags": ["a", "b"]}


def test_unknown_option_suggests_the_closest_known_one():
    with pytest.raises(OptionsError) as info:
        class Typo(kiqpy.Worker, qeue="mail"):
            pass
    message = str(info.value)
    assert message.startswith("test_unknown_option_suggests_the_closest_known_one.<locals>.Typo: "
                              "unknown option 'qeue'; did you mean 'queue'? Known options: ")
    assert "retry_queue" in message


def test_unknown_option_without_a_close_match_lists_the_known_ones():
    with pytest.raises(OptionsError) as info:
        class Odd(kiqpy.Worker):
            kiqpy_options = {"zzzzzz": 1}
    assert re.search(r"Odd: unknown option 'zzzzzz'\. Known options: backtrace, "
                     r"concurrency_key, concurrency_limit, dead, .*queue", str(info.value))


def test_option_of_a_bundled_middleware_says_what_to_import(monkeypatch):
    # Given the unique-jobs middleware has not been imported (so its option is not declared)
    monkeypatch.delitem(options_module._DECLARED, "unique_for", raising=False)
    # When a class uses its option
    with pytest.raises(OptionsError) as info:
        class Once(kiqpy.Worker, unique_for=60):
            pass
    # Then the error names the module that would accept it
    assert str(info.value).endswith(
        "Once: option 'unique_for' belongs to kiqpy_middleware.unique; import it (and add its "
        "middleware) before defining this class")


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("retry", "yes", "must be True, False or a number of retries (int >= 0)"),
        ("retry", -1, "must be True, False or a number of retries (int >= 0)"),
        ("retry", 2.5, "must be True, False or a number of retries (int >= 0)"),
        ("queue", "", "must be a non-empty str"),
        ("queue", "  ", "must be a non-empty str"),
        ("queue", 5, "must be a non-empty str"),
        ("retry_queue", None, "must be a non-empty str"),
        ("retry_for", -1, "must be a positive number of seconds or a timedelta"),
        ("retry_for", 0, "must be a positive number of seconds or a timedelta"),
        ("retry_for", True, "must be a positive number of seconds or a timedelta"),
        ("retry_for", math.inf, "must be a positive number of seconds or a timedelta"),
        ("retry_for", math.nan, "must be a positive number of seconds or a timedelta"),
        ("backtrace", 0, "must be True, False or a number of lines (int > 0)"),
        ("backtrace", "all", "must be True, False or a number of lines (int > 0)"),
        ("dead", "no", "must be True or False"),
        ("tags", "x", "must be a list of str"),
        ("tags", ["ok", 1], "must be a list of str"),
        ("name", "", "must be a non-empty str"),
    ],
)
def test_wrong_option_types_are_rejected_at_class_definition(option, value, reason):
    with pytest.raises(OptionsError) as info:
        class Bad(kiqpy.Worker, **{option: value}):
            pass
    assert str(info.value).endswith(f"Bad: option {option}={value!r} {reason}")


def test_options_error_is_a_configuration_error_and_a_value_error():
    assert issubclass(OptionsError, ConfigurationError)
    assert issubclass(OptionsError, ValueError)


def test_kiqpy_options_must_be_a_dict():
    with pytest.raises(OptionsError, match=r"Listed: kiqpy_options must be a dict, got list"):
        class Listed(kiqpy.Worker):
            kiqpy_options = ["queue", "mail"]  # type: ignore[assignment]


def test_an_async_perform_is_marked_and_an_async_generator_refused():
    # An async perform runs on the worker's event loop; an async generator could never run.
    class AsyncJob(kiqpy.Worker):
        async def perform(self):
            pass

    class Child(AsyncJob):
        pass

    assert AsyncJob.kiqpy_async and Child.kiqpy_async and not HardJob.kiqpy_async
    with pytest.raises(ConfigurationError, match=r"AsyncGen.perform is an async generator"):
        class AsyncGen(kiqpy.Worker):
            async def perform(self):
                yield 1


# -- names and the registry ---------------------------------------------------------------------
def test_default_name_is_module_and_qualname_and_is_registered():
    assert HardJob.kiqpy_job_name == "tests.test_worker.HardJob"
    assert lookup("tests.test_worker.HardJob") is HardJob
    assert kiqpy.registered()["tests.test_worker.ChildJob"] is ChildJob


def test_name_option_overrides_the_registered_name(config, r):
    assert RubyJob.kiqpy_job_name == "OtherApp::HardJob"
    assert lookup("OtherApp::HardJob") is RubyJob
    RubyJob.perform_async(1)
    assert queued(r, "ruby")[0]["class"] == "OtherApp::HardJob"


def test_name_is_not_inherited_and_not_copied_into_the_payload(config, r):
    assert RubyChild.kiqpy_job_name == "tests.test_worker.RubyChild"
    assert RubyChild.kiqpy_options_resolved == {"queue": "ruby"}
    RubyChild.perform_async()
    assert "name" not in queued(r, "ruby")[0]


def test_lookup_of_an_unknown_name_explains_itself():
    with pytest.raises(UnknownJobError) as info:
        lookup("nobody.Defined")
    assert str(info.value) == ("no job class registered as 'nobody.Defined' in this process "
                               "(is the module that defines it imported with -r?)")


def test_registered_returns_a_copy():
    snapshot = kiqpy.registered()
    snapshot.clear()
    assert "tests.test_worker.HardJob" in kiqpy.registered()


# -- set() --------------------------------------------------------------------------------------
def test_set_overrides_options_for_one_push_only(config, r):
    HardJob.set(queue="critical", retry=False).perform_async("bob", 5)
    HardJob.perform_async("ann", 1)
    [one] = queued(r, "critical")
    assert (one["args"], one["retry"]) == (["bob", 5], False)
    [two] = queued(r, "mail")
    assert (two["args"], two["retry"]) == (["ann", 1], 5)
    assert HardJob.kiqpy_options_resolved == {"queue": "mail", "retry": 5}


def test_set_can_be_chained_and_kept(config, r):
    critical = HardJob.set(queue="critical")
    critical.set(tags=["vip"]).perform_async("a", 1)
    critical.perform_in(60, "b", 2)
    assert queued(r, "critical")[0]["tags"] == ["vip"]
    [(job, _)] = scheduled(r)
    assert (job["queue"], "tags" in job) == ("critical", False)


def test_set_validates_like_the_class():
    with pytest.raises(OptionsError) as info:
        HardJob.set(retry="yes")
    assert str(info.value) == ("HardJob.set(): option retry='yes' must be True, False or a "
                               "number of retries (int >= 0)")
    # Other keys are custom job fields, as in Sidekiq (tests/test_push_fields.py)
    with pytest.raises(ArgumentError, match=r"^HardJob.set\(\): jid=5 must be a non-empty str"):
        HardJob.set(jid=5)


def test_set_rejects_name_because_it_would_be_silently_ignored():
    with pytest.raises(OptionsError) as info:
        HardJob.set(name="Other")
    assert str(info.value) == ("HardJob.set(): option 'name' is fixed when the class is defined "
                               "(class Job(kiqpy.Worker, name=...))")


# -- perform_async / perform_in / perform_at ----------------------------------------------------
def test_perform_async_returns_the_jid_of_the_stored_job(config, r):
    jid = HardJob.perform_async("bob", 5)
    assert re.fullmatch(r"[0-9a-f]{24}", jid)
    assert queued(r, "mail")[0]["jid"] == jid


def test_perform_async_works_from_an_instance_too(config, r):
    HardJob().perform_async("x", 1)
    assert len(queued(r, "mail")) == 1


@pytest.mark.parametrize("delay", [300, 300.0, dt.timedelta(minutes=5)])
def test_perform_in_schedules_at_now_plus_the_delay(config, r, delay):
    before = time.time()
    jid = HardJob.perform_in(delay, "bob", 5)
    [(job, score)] = scheduled(r)
    assert job["jid"] == jid
    assert before + 300 <= score <= time.time() + 300
    assert "at" not in job and "enqueued_at" not in job  # the score is the run time
    assert r.llen("queue:mail") == 0


@pytest.mark.parametrize("delay", [0, -5, dt.timedelta(seconds=-1)])
def test_perform_in_with_no_delay_enqueues_now(config, r, delay):
    HardJob.perform_in(delay, "bob", 5)
    assert r.zcard("schedule") == 0
    assert "at" not in queued(r, "mail")[0]


@pytest.mark.parametrize("delay", ["10", None, True, math.inf, math.nan])
def test_perform_in_rejects_a_delay_that_is_not_a_finite_number(config, r, delay):
    with pytest.raises(ArgumentError, match=r"^perform_in takes a finite number of seconds or "
                                            r"a timedelta, got "):
        HardJob.perform_in(delay, "bob", 5)
    assert r.keys("*") == []


def test_perform_at_takes_an_aware_datetime(config, r):
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    HardJob.perform_at(when, "bob", 5)
    [(_, score)] = scheduled(r)
    assert score == pytest.approx(when.timestamp(), abs=1e-3)


def test_perform_at_takes_a_naive_datetime_as_local_time(config, r):
    when = dt.datetime.now() + dt.timedelta(hours=1)
    HardJob.perform_at(when, "bob", 5)
    [(_, score)] = scheduled(r)
    assert score == pytest.approx(time.time() + 3600, abs=2)


def test_perform_at_takes_epoch_seconds(config, r):
    when = time.time() + 90.5
    HardJob.perform_at(when, "bob", 5)
    [(job, score)] = scheduled(r)
    assert score == pytest.approx(when, abs=1e-3)
    assert "at" not in job


@pytest.mark.parametrize("when", [time.time() - 3600, dt.datetime(2001, 1, 1)])
def test_perform_at_a_past_time_enqueues_now(config, r, when):
    jid = HardJob.perform_at(when, "bob", 5)
    assert r.zcard("schedule") == 0
    assert queued(r, "mail")[0]["jid"] == jid


@pytest.mark.parametrize("when", ["tomorrow", dt.date(2030, 1, 1), None, math.inf])
def test_perform_at_rejects_what_is_not_a_time(config, r, when):
    with pytest.raises(ArgumentError, match=r"^perform_at takes a datetime or finite epoch "
                                            r"seconds, got "):
        HardJob.perform_at(when, "bob", 5)


def test_the_mixin_itself_is_not_a_job_class(config, r):
    # It has no registered name; the push would store a job with class "" no worker can run.
    with pytest.raises(ArgumentError, match=r"^kiqpy.Worker itself is not a job class"):
        kiqpy.Worker.perform_async(1)
    assert r.keys("*") == []


def test_bad_args_fail_before_any_io(config, r):
    with pytest.raises(ArgumentError, match=r'args\[1\]\["when"\]: datetime is not serializable'):
        HardJob.perform_async("bob", {"when": dt.datetime.now()})
    assert r.keys("*") == []


# -- perform_bulk -------------------------------------------------------------------------------
def test_perform_bulk_returns_jids_in_the_order_of_the_arg_lists(config, r):
    jids = PlainJob.perform_bulk([["a", 1], ["b", 2], ("c", 3)])
    jobs = queued(r)
    assert [j["jid"] for j in jobs] == jids
    assert [j["args"] for j in jobs] == [["a", 1], ["b", 2], ["c", 3]]
    assert len(set(jids)) == 3


def test_perform_bulk_of_2500_jobs_lands_in_three_round_trips(config, r):
    # Given Redis command statistics reset
    r.config_resetstat()
    # When 2,500 jobs are pushed with a batch size of 1,000
    jids = PlainJob.perform_bulk(([i] for i in range(2500)), batch_size=1000)
    # Then every job is in the queue, in order, each with its jid, from three script calls
    jobs = queued(r)
    assert len(jobs) == len(jids) == 2500
    assert [j["args"] for j in jobs] == [[i] for i in range(2500)]
    assert [j["jid"] for j in jobs] == jids
    assert r.info("commandstats")["cmdstat_evalsha"]["calls"] == 3
    assert r.smembers("queues") == {b"default"}


def test_perform_bulk_with_at_schedules_every_job_at_that_time(config, r):
    when = time.time() + 600
    jids = PlainJob.perform_bulk([[1], [2], [3]], at=when)
    entries = scheduled(r)
    assert sorted(j["jid"] for j, _ in entries) == sorted(jids)
    assert [s for _, s in entries] == pytest.approx([when] * 3, abs=1e-3)
    assert r.exists("queue:default") == 0


def test_perform_bulk_with_a_past_at_enqueues_now(config, r):
    PlainJob.perform_bulk([[1], [2]], at=dt.datetime(2001, 1, 1))
    assert len(queued(r)) == 2
    assert r.zcard("schedule") == 0


def test_perform_bulk_through_set_uses_its_options(config, r):
    PlainJob.set(queue="bulk").perform_bulk([[1], [2]])
    assert [j["queue"] for j in queued(r, "bulk")] == ["bulk", "bulk"]


def test_perform_bulk_of_nothing_does_nothing(config, r):
    assert PlainJob.perform_bulk([]) == []
    assert r.keys("*") == []


@pytest.mark.parametrize("size", [0, -1, "10", 2.5])
def test_perform_bulk_rejects_a_bad_batch_size(config, r, size):
    with pytest.raises(ArgumentError, match=r"^batch_size must be an int of at least 1, got "):
        PlainJob.perform_bulk([[1]], batch_size=size)


def test_perform_bulk_names_an_item_that_is_not_a_list(config, r):
    with pytest.raises(ArgumentError) as info:
        PlainJob.perform_bulk([[1], "oops"])
    assert str(info.value) == ("perform_bulk item 1: each item must be a list of args, got str")
    assert r.keys("*") == []


def test_perform_bulk_checks_every_item_before_pushing_any(config, r):
    # Given 1,500 arg lists whose last one cannot be serialized
    arg_lists = [[i] for i in range(1499)] + [[{"when": dt.date(2026, 1, 1)}]]
    # When they are pushed in batches of 1,000
    with pytest.raises(ArgumentError) as info:
        PlainJob.perform_bulk(arg_lists, batch_size=1000)
    # Then the error names the item and the path, and not even the first batch was stored
    assert str(info.value) == ('perform_bulk item 1499: args[0]["when"]: date is not '
                               "serializable; pass an ISO string")
    assert r.keys("*") == []
