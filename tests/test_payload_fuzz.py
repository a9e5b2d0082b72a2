"""Property-based tests of kiqpy.payload and of what reads payloads: round trips in both
serializers, and the decoder on hostile input, which may raise PayloadError and nothing else,
and returns only jobs kiqpy can write back (a failed job is re-encoded for the retry set, a
recovered one for its queue).

tests/test_payload.py has the examples, and two small properties (random bytes up to 64, a
corrupted tail); these go further: structured garbage in both encodings, mutations of real
payloads, deep nesting, and the scheduler's Lua decoder agreeing with Python's.
"""

from __future__ import annotations

import base64
import json
import math
import time

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kiqpy.api.jobs import JobRecord
from kiqpy.errors import PayloadError
from kiqpy.failures import MALFORMED_CLASS, malformed_job
from kiqpy.keys import Keys
from kiqpy.payload import (
    MAX_DEPTH,
    MAX_PAYLOAD_DEPTH,
    check_args,
    decode,
    encode,
    new_jid,
    serializer_of,
)
from kiqpy.server.outage import Outage
from kiqpy.server.scheduler import Scheduler
from tests.recording import RecordingLog
from tests.stamping import assert_moved

FAST = settings(max_examples=80, deadline=None)

# -- strategies ---------------------------------------------------------------------------------
# What a job's args may hold: msgpack/JSON-native values (check_args' rules).
scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
native = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=25)
names = st.text(min_size=1, max_size=30)


@st.composite
def jobs(draw) -> dict:
    job = {"class": draw(names), "args": draw(st.lists(native, max_size=5)),
           "queue": draw(names), "jid": new_jid(),
           "retry": draw(st.booleans() | st.integers(0, 25)),
           "created_at": draw(st.integers(0, 2**53))}
    job.update(draw(st.dictionaries(st.text(min_size=1, max_size=8).filter(
        lambda k: k not in job), native, max_size=3)))
    return job


# Anything msgpack can carry, including what a job may not: bytes, int keys, ext types.
packable_scalars = (scalars | st.binary(max_size=12) | st.floats()
                    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=6)))
packable_keys = st.text(max_size=6) | st.integers(0, 9) | st.binary(max_size=3)
packable = st.recursive(
    packable_scalars,
    lambda inner: (st.lists(inner, max_size=4)
                   | st.dictionaries(packable_keys, inner, max_size=4)),
    max_leaves=25)
# Maps that often look like jobs: the required fields, of the right types or not.
job_like = st.fixed_dictionaries(
    {}, optional={"class": packable_scalars, "args": packable, "queue": packable_scalars,
                  "jid": packable_scalars, "retry": packable_scalars}).map(dict) | packable
# JSON text with what json.dumps can be made to write: NaN, Infinity, lone surrogates.
json_text = (st.floats() | st.text(st.characters(codec=None), max_size=8) | scalars)
json_like = st.recursive(
    json_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=25)
json_jobs = st.fixed_dictionaries(
    {"class": st.just("Job"), "args": st.lists(json_like, max_size=4), "queue": st.just("q"),
     "jid": st.just("a" * 24)})


def decodes_to_a_writable_job(data: bytes) -> None:
    """The property every reader relies on: ``decode`` raises PayloadError, or returns a job
    that encodes again in the payload's own encoding and decodes to the same map."""
    try:
        job = decode(data)
    except PayloadError:
        return
    again = encode(job, serializer_of(data))
    assert _same(decode(again), job)


def _same(a: object, b: object) -> bool:
    """Equality that counts NaN as equal to itself (msgpack carries NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


# -- round trips --------------------------------------------------------------------------------
@FAST
@given(jobs(), st.sampled_from(["msgpack", "json"]))
def test_any_job_of_native_values_survives_encode_and_decode(job, serializer):
    check_args(job["args"], serializer)  # what a push checks: these pass
    data = encode(job, serializer)
    assert serializer_of(data) == serializer
    assert decode(data) == job


@FAST
@given(jobs())
def test_both_encodings_decode_to_the_same_job(job):
    assert decode(encode(job, "msgpack")) == decode(encode(job, "json"))


# -- hostile input ------------------------------------------------------------------------------
@FAST
@given(st.binary(min_size=65, max_size=2048))
def test_longer_random_bytes_only_ever_raise_payload_error(data):
    decodes_to_a_writable_job(data)


@FAST
@given(job_like)
def test_any_msgpack_value_decodes_to_a_writable_job_or_payload_error(value):
    decodes_to_a_writable_job(msgpack.packb(value, use_bin_type=True))


@FAST
@given(json_jobs | json_like)
def test_any_json_text_decodes_to_a_writable_job_or_payload_error(value):
    # NaN, Infinity and lone surrogates (escaped as \\udXXX) are what json.dumps can write
    # and json.loads reads back, but a failed job's payload could not be written again.
    decodes_to_a_writable_job(json.dumps(value).encode())


@FAST
@given(jobs(), st.sampled_from(["msgpack", "json"]), st.data())
def test_a_damaged_payload_decodes_to_a_writable_job_or_payload_error(job, serializer, data):
    payload = bytearray(encode(job, serializer))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(payload)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "cut":
            payload = payload[:at]
        elif action == "insert":
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif at < len(payload):
            payload[at] ^= data.draw(st.integers(1, 255))
    decodes_to_a_writable_job(bytes(payload))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3 * MAX_PAYLOAD_DEPTH) | st.integers(1000, 20_000),
       st.sampled_from(["msgpack", "json"]))
def test_nesting_is_accepted_up_to_the_limit_and_refused_beyond(depth, serializer):
    # args = [[[...]]], `depth` lists deep: the payload is one level more (the job map)
    if serializer == "json":
        data = (b'{"class":"Job","queue":"q","jid":"%s","args":' % new_jid().encode()
                + b"[" * depth + b"]" * depth + b"}")
    else:
        data = (b"\x84" + msgpack.packb("class") + msgpack.packb("Job")
                + msgpack.packb("queue") + msgpack.packb("q") + msgpack.packb("jid")
                + msgpack.packb(new_jid()) + msgpack.packb("args")
                + b"\x91" * (depth - 1) + b"\x90")
    if depth + 1 <= MAX_PAYLOAD_DEPTH:
        decodes_to_a_writable_job(data)
        assert decode(data)["class"] == "Job"
    else:
        with pytest.raises(PayloadError, match=r"nested|recursion"):
            decode(data)


def test_what_kiqpy_pushes_at_its_deepest_is_read_back():
    deepest: list = []
    for _ in range(MAX_DEPTH - 2):
        deepest = [deepest]
    check_args([deepest])  # one level more is refused at push time
    for serializer in ("msgpack", "json"):
        job = {"class": "Job", "args": [deepest], "queue": "q", "jid": new_jid()}
        assert decode(encode(job, serializer)) == job


@FAST
@given(st.binary(max_size=256))
def test_a_dead_set_entry_can_stand_for_any_bytes(data):
    # Retrier.malformed and the scheduler keep bytes that are not a job this way.
    try:
        decode(data)
        reason = "test"
    except PayloadError as exc:
        reason = str(exc)
    entry = decode(encode(malformed_job("q", data, reason)))
    assert entry["class"] == MALFORMED_CLASS
    assert base64.b64decode(entry["original_payload"]) == data


@FAST
@given(st.binary(max_size=256) | job_like.map(lambda v: msgpack.packb(v, use_bin_type=True))
       | jobs().map(lambda j: encode(j)))
def test_the_data_api_reads_any_bytes_without_raising(data):
    record = JobRecord(data, "q")
    shown = (record.display_class, record.display_args, record.jid, record.queue,
             record.malformed, record.enqueued_at, record.created_at, record.failed_at,
             record.latency, record.error_class, record.error_message,
             record.error_backtrace, record.retry_count, record.tags, repr(record))
    assert shown
    assert (record.error is None) == (record.item != {})


@FAST
@given(st.dictionaries(st.sampled_from(["enqueued_at", "created_at", "failed_at",
                                        "retried_at", "at", "error_backtrace", "retry_count",
                                        "tags", "wrapped", "error_message"]),
                       packable, max_size=6))
def test_the_data_api_reads_any_field_values_without_raising(fields):
    job = {"class": "Job", "args": [], "queue": "q", "jid": new_jid(), **fields}
    record = JobRecord(encode(job))
    assert (record.display_class, record.display_args, record.enqueued_at, record.created_at,
            record.failed_at, record.retried_at, record.latency, record.error_backtrace,
            record.retry_count, record.tags, record.error_message, repr(record)) is not None


# -- Lua and Python agree -----------------------------------------------------------------------
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs(), st.sampled_from(["msgpack", "json"]))
def test_the_scheduler_queues_every_job_python_reads(config, r, job, serializer):
    # schedule.lua decodes members to find their queue; whatever it cannot read, Python
    # reroutes. Either way a job decode() accepts reaches its queue, never the dead set.
    assume("at" not in job)  # an old member's run time: Python's reroute drops it, Lua cannot
    r.flushdb()
    data = encode(job, serializer)
    r.zadd("schedule", {data: time.time() - 1})
    log = RecordingLog()
    scheduler = Scheduler(config, r, Keys(), Outage(config.redis_url, log), log, None)
    assert scheduler.enqueue_due() == 1
    # ... with a fresh enqueued_at added to its bytes (tests/stamping.py), every other byte kept
    [queued] = r.lrange(Keys().queue(job["queue"]), 0, -1)
    if "enqueued_at" in job:
        assert queued == data
    else:
        assert_moved(queued, data)
    assert r.zcard("dead") == 0
