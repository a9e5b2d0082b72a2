"""Per-push fields, as Sidekiq's ``Client.push`` takes them: a caller's jid, custom keys stored
in the job, and what happens to the fields kiqpy writes itself
(kiqpy/client/build.py split_push)."""

from __future__ import annotations

import math
import time

import pytest

import kiqpy
from kiqpy import testing
from kiqpy.config import Config
from kiqpy.errors import ArgumentError, OptionsError
from tests.conftest import queued_jobs, scheduled_jobs


class Report(kiqpy.Worker, queue="reports", retry=3):
    seen: list = []

    def perform(self, *args):
        Report.seen.append(kiqpy.current_job())


def test_push_stores_custom_keys_and_uses_the_callers_jid(config, r):
    jid = kiqpy.default_client().push({
        "class": "OtherApp::Job", "args": [1], "queue": "x", "jid": "my-own-jid",
        "tenant": "acme", "trace": {"id": "t-1", "spans": [1, 2]}})
    assert jid == "my-own-jid"
    [job] = queued_jobs(r, "x")
    assert (job["jid"], job["tenant"], job["trace"]) == (
        "my-own-jid", "acme", {"id": "t-1", "spans": [1, 2]})
    # Options still become the job's options, next to the custom keys.
    assert (job["class"], job["args"], job["queue"], job["retry"]) == (
        "OtherApp::Job", [1], "x", True)


def test_a_scheduled_push_keeps_its_fields_and_drops_a_callers_enqueued_at(config, r):
    # enqueued_at is kiqpy's to write when the job reaches its queue (Sidekiq drops it too).
    kiqpy.default_client().push({"class": Report, "args": [], "at": time.time() + 60,
                                 "jid": "later", "tenant": "acme", "enqueued_at": 1})
    [(job, _)] = scheduled_jobs(r)
    assert (job["jid"], job["tenant"], "enqueued_at" in job) == ("later", "acme", False)
    before = time.time_ns() // 1_000_000
    kiqpy.default_client().push({"class": Report, "args": [], "enqueued_at": 1})
    [now] = queued_jobs(r, "reports")
    assert now["enqueued_at"] >= before


def test_created_at_and_the_retry_state_pass_through_when_well_typed(config, r):
    # A job moved from another system keeps its history, as Sidekiq keeps it.
    kiqpy.default_client().push({
        "class": "OtherApp::Job", "args": [], "created_at": 1_700_000_000_000,
        "retry_count": 2, "failed_at": 1_700_000_000.5, "error_class": "IOError",
        "error_message": "disk"})
    [job] = queued_jobs(r)
    assert {k: job[k] for k in ("created_at", "retry_count", "failed_at", "error_class",
                                "error_message")} == {
        "created_at": 1_700_000_000_000, "retry_count": 2, "failed_at": 1_700_000_000.5,
        "error_class": "IOError", "error_message": "disk"}


BAD_FIELDS = [
    ({"jid": ""}, ArgumentError, r"^push\('X'\): jid='' must be a non-empty str$"),
    ({"jid": 12}, ArgumentError, r"^push\('X'\): jid=12 must be a non-empty str$"),
    ({"created_at": "today"}, ArgumentError, r"^push\('X'\): created_at='today' must be epoch"),
    ({"created_at": math.inf}, ArgumentError, r"^push\('X'\): created_at=inf must be epoch"),
    ({"retry_count": "2"}, ArgumentError, r"^push\('X'\): retry_count='2' must be an int >= 0"),
    ({"retry_count": True}, ArgumentError, r"^push\('X'\): retry_count=True must be an int"),
    ({"error_message": None}, ArgumentError, r"^push\('X'\): error_message=None must be a str"),
    ({"tenant": {"since": time}}, ArgumentError,
     r"^push\('X'\): job\[\"tenant\"\]\[\"since\"\]: module is not serializable"),
    ({"labels": [1, {2: "x"}]}, ArgumentError,
     r"^push\('X'\): job\[\"labels\"\]\[1\]\[2\]: dict key of type int; keys must be str"),
    ({7: "x"}, ArgumentError, r"^push\('X'\): job\[7\]: dict key of type int; keys must be str"),
    # Known options are still checked, whether declared yet or not.
    ({"retry": "yes"}, OptionsError, r"^push\('X'\): option retry='yes' must be"),
    ({"unique_for": "soon"}, OptionsError, r"^push\('X'\): option (unique_for='soon' must|'uni)"),
]


@pytest.mark.parametrize(("fields", "error", "message"), BAD_FIELDS)
def test_a_bad_field_fails_the_push_before_any_io(config, r, fields, error, message):
    with pytest.raises(error, match=message):
        kiqpy.default_client().push({"class": "X", "args": [], **fields})
    assert r.keys("*") == []


def test_a_json_client_refuses_a_field_json_cannot_hold(r, redis_url):
    client = kiqpy.Client(Config(redis_url=redis_url, serializer="json"))
    with pytest.raises(ArgumentError, match=r"^push\('X'\): job\[\"ratio\"\]: nan is not valid"):
        client.push({"class": "X", "args": [], "ratio": math.nan})
    client.close()
    assert r.keys("*") == []


def test_push_bulk_copies_fields_into_every_job_and_refuses_one_jid_for_many(config, r):
    client = kiqpy.default_client()
    jids = client.push_bulk({"class": "X", "args": [[1], [2]], "tenant": {"name": "acme"}})
    jobs = queued_jobs(r)
    assert [j["jid"] for j in jobs] == jids and len(set(jids)) == 2
    assert [j["tenant"] for j in jobs] == [{"name": "acme"}] * 2
    with pytest.raises(ArgumentError, match=r"^a jid names one job; got 2 arg lists$"):
        client.push_bulk({"class": "X", "args": [[1], [2]], "jid": "one"})
    assert client.push_bulk({"class": "X", "args": [[3]], "jid": "one"}) == ["one"]


def test_enqueue_and_set_take_custom_fields_too(config, r):
    kiqpy.enqueue("OtherApp::Job", 1, tenant="acme", jid="by-name")
    tenant = Report.set(tenant="globex", trace={"id": "t"})
    tenant.set(queue="urgent").perform_async(2)
    tenant.perform_in(60, 3)
    assert [(j["jid"], j["tenant"]) for j in queued_jobs(r)] == [("by-name", "acme")]
    [urgent] = queued_jobs(r, "urgent")
    assert (urgent["args"], urgent["tenant"], urgent["trace"]) == ([2], "globex", {"id": "t"})
    [(later, _)] = scheduled_jobs(r)
    assert (later["queue"], later["tenant"]) == ("reports", "globex")


@pytest.mark.parametrize("call, typo, option", [
    (lambda: Report.set(qeue="urgent"), "qeue", "queue"),
    (lambda: Report.set(retyr=3), "retyr", "retry"),
    (lambda: kiqpy.enqueue("X", 1, retry_queu="slow"), "retry_queu", "retry_queue"),
    (lambda: kiqpy.default_client().push({"class": "X", "args": [], "tag": ["a"]}), "tag",
     "tags"),
])
def test_a_field_named_like_a_misspelt_option_is_refused(config, r, call, typo, option):
    # Custom fields pass through, but not one a typo away from an option: `qeue="urgent"`
    # stored as a field would send the job to the default queue without a word.
    with pytest.raises(OptionsError, match=f"unknown option '{typo}'; did you mean '{option}'"):
        call()
    assert r.llen("queue:default") == 0 and r.llen("queue:urgent") == 0


@pytest.mark.parametrize("field", ["queued", "names", "tags_extra", "retry_for_billing",
                                   "queues"])
def test_a_field_that_extends_an_option_name_is_a_custom_field(config, r, field):
    # A suffix makes a name of its own (`queued`, `names`), not a typo of the option
    kiqpy.default_client().push({"class": "X", "args": [], field: "v"})
    Report.set(**{field: "w"}).perform_async()
    [pushed] = queued_jobs(r)
    [report] = queued_jobs(r, "reports")
    assert (pushed[field], pushed["queue"]) == ("v", "default")
    assert (report[field], report["queue"]) == ("w", "reports")


@pytest.mark.parametrize("call", [lambda: Report.set(at=time.time()),
                                  lambda: Report.set(args=[1]),
                                  lambda: kiqpy.enqueue("X", **{"class": "Y"})])
def test_the_call_gives_class_args_and_run_time_not_a_field(call):
    with pytest.raises(ArgumentError, match=r"is not a field to set; the job class, args and "
                                            r"run time come from the call"):
        call()


def test_fields_reach_client_middleware_and_the_job_in_testing_modes(config):
    # Given a client middleware that reads a custom field
    seen = []
    config.client_middleware.add(lambda cls, job, queue, redis, next: seen.append(
        job.get("tenant")) or next())
    # When jobs with fields are pushed in fake and inline mode
    with testing.fake():
        Report.set(tenant="acme", jid="fake-1").perform_async()
        assert [(j["jid"], j["tenant"]) for j in Report.jobs] == [("fake-1", "acme")]
    Report.seen.clear()
    with testing.inline():
        kiqpy.enqueue(Report, tenant="initech")
    # Then the middleware and the running job saw them
    assert seen == ["acme", "initech"]
    assert Report.seen[0]["tenant"] == "initech"
