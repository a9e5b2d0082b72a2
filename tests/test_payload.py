"""kiqpy.payload: the argument check, encode/decode in both serializers, and payload errors."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import enum
import json
import math
import re
import time

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiqpy.errors import ArgumentError, PayloadError
from kiqpy.payload import (
    MAX_DEPTH,
    check_args,
    decode,
    encode,
    epoch_seconds,
    new_jid,
    now_ms,
    validate,
)

HINT_ANY = "pass only str, int, float, bool, None, list and dict with str keys"


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


def without(field: str) -> dict[str, object]:
    return {k: v for k, v in job().items() if k != field}


def job(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"class": "app.Job", "args": [1, "two"], "queue": "default",
                               "jid": "0123456789abcdef01234567", "retry": True,
                               "created_at": 1_790_000_000_123, "enqueued_at": 1_790_000_000_456}
    base.update(fields)
    return base


# -- check_args ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([1, {"when": dt.datetime(2026, 1, 1)}],
         'args[1]["when"]: datetime is not serializable; pass an ISO string or epoch'),
        ([dt.date(2026, 1, 1)], "args[0]: date is not serializable; pass an ISO string"),
        ([dt.timedelta(seconds=5)],
         "args[0]: timedelta is not serializable; pass seconds as a number"),
        ([{"price": decimal.Decimal("1.10")}],
         'args[0]["price"]: Decimal is not serializable; pass a str (exact) or a float'),
        ([1, 2, {3}], "args[2]: set is not serializable; pass a list"),
        ([frozenset()], "args[0]: frozenset is not serializable; pass a list"),
        ([[1, (2, 3)]], "args[0][1]: tuple is not serializable; pass a list"),
        ([b"raw"], "args[0]: bytes is not serializable; pass a str (decode or base64 it)"),
        ([bytearray(b"raw")],
         "args[0]: bytearray is not serializable; pass a str (decode or base64 it)"),
        ([object()], f"args[0]: object is not serializable; {HINT_ANY}"),
        (["ok", {"deep": [Point(1)]}],
         f'args[1]["deep"][0]: Point is not serializable; {HINT_ANY}'),
        ([{1: "a"}], "args[0][1]: dict key of type int; keys must be str"),
        ([{"a": {None: 1}}], 'args[0]["a"][None]: dict key of type NoneType; keys must be str'),
        ([{("x", 1): 1}], "args[0][('x', 1)]: dict key of type tuple; keys must be str"),
        ([{'say "hi"': dt.datetime(2026, 1, 1)}],
         'args[0]["say \\"hi\\""]: datetime is not serializable; pass an ISO string or epoch'),
        ([2**64], "args[0]: int out of the 64-bit range; pass it as a str"),
        ([[-(2**63) - 1]], "args[0][0]: int out of the 64-bit range; pass it as a str"),
    ],
)
@pytest.mark.parametrize("serializer", ["msgpack", "json"])
def test_check_args_names_the_path_of_the_bad_value(args, message, serializer):
    with pytest.raises(ArgumentError) as info:
        check_args(args, serializer)
    assert str(info.value) == message


def test_argument_error_is_a_type_error_so_callers_can_catch_either():
    with pytest.raises(TypeError):
        check_args([object()])


@pytest.mark.parametrize("value", [2**64 - 1, -(2**63), 0, -1, 2**63])
def test_ints_at_the_64_bit_edges_are_accepted_and_survive_both_encodings(value):
    check_args([value])
    for serializer in ("msgpack", "json"):
        assert decode(encode(job(args=[value]), serializer))["args"] == [value]


@pytest.mark.parametrize(
    ("value", "shown"), [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")]
)
def test_nan_and_infinity_are_rejected_only_in_json_mode(value, shown):
    check_args([{"x": value}], "msgpack")
    with pytest.raises(ArgumentError) as info:
        check_args([{"x": value}], "json")
    assert str(info.value) == f'args[0]["x"]: {shown} is not valid JSON; use None or a str'


def test_nan_travels_in_msgpack_mode():
    decoded = decode(encode(job(args=[math.nan, math.inf]), "msgpack"))
    assert math.isnan(decoded["args"][0])
    assert decoded["args"][1] == math.inf


def nested(levels: int) -> list[object]:
    """``levels`` lists inside each other: nested(2) == [[]]."""
    value: list[object] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_nesting_up_to_the_limit_is_fine_and_one_level_more_is_rejected():
    # The args list itself counts as the first level.
    check_args(nested(MAX_DEPTH))
    with pytest.raises(ArgumentError) as info:
        check_args(nested(MAX_DEPTH + 1))
    path = "[0]" * MAX_DEPTH
    assert str(info.value) == f"args{path}: nested deeper than {MAX_DEPTH} levels"


def test_deep_dicts_count_as_nesting_too():
    value: object = "leaf"
    for _ in range(MAX_DEPTH + 5):
        value = {"k": value}
    with pytest.raises(ArgumentError, match=r"nested deeper than 100 levels"):
        check_args([value])


def test_args_themselves_must_be_a_list():
    with pytest.raises(ArgumentError, match=r"^args must be a list, got tuple$"):
        check_args((1, 2))


def test_every_native_value_is_accepted():
    check_args(["s", "ünïcødé ✓", 1, -2, 1.5, True, False, None, [], {},
                {"a": [1, {"b": None}]}, [[["x"]]]], "json")


@pytest.mark.parametrize("serializer", ["msgpack", "json"])
def test_strings_that_are_not_valid_utf8_text_are_rejected_before_encoding(serializer):
    # A lone surrogate (e.g. from a badly decoded file name) cannot be encoded as UTF-8; the
    # error must come from the check, with the path, not from the encoder at push time.
    with pytest.raises(ArgumentError) as info:
        check_args(["ok", {"name": "caf\udce9"}], serializer)
    assert str(info.value) == (
        'args[1]["name"]: str is not valid UTF-8 text (lone surrogate); fix its decoding')
    with pytest.raises(ArgumentError, match=r"^args\[0\]\[.*\]: dict key is not valid UTF-8 text"):
        check_args([{"\ud800": 1}], serializer)


def test_subclasses_of_native_types_are_rejected_by_their_type_name():
    # A subclass may not survive the round trip as itself (an IntEnum comes back a plain int,
    # numpy.float64 is a float subclass), so it is refused rather than silently changed.
    class Name(str):
        pass

    class Colour(enum.IntEnum):
        RED = 1

    class Price(float):
        pass

    for value, name in ((Name("bob"), "Name"), (Colour.RED, "Colour"), (Price(1.5), "Price")):
        with pytest.raises(ArgumentError, match=rf"^args\[0\]: {name} is not serializable"):
            check_args([value])


# -- encode / decode ----------------------------------------------------------------------------
ROUND_TRIP_ARGS = [
    "bob", "ünïcødé ✓ 🙂", 0, -7, 2**63 - 1, 3.25, True, False, None,
    [1, [2, [3]]], {"nested": {"list": [1, "a", None], "empty": {}}},
]


@pytest.mark.parametrize("serializer", ["msgpack", "json"])
def test_encode_decode_round_trip_keeps_every_field(serializer):
    original = job(args=ROUND_TRIP_ARGS, tags=["a", "b"], retry=3, custom_field={"kept": True})
    data = encode(original, serializer)
    assert isinstance(data, bytes)
    assert decode(data) == original


def test_json_payloads_are_compact_utf8_sidekiq_style_json():
    data = encode(job(args=["ünï"]), "json")
    text = data.decode("utf-8")
    assert text.startswith('{"class":"app.Job","args":["ünï"],')
    assert json.loads(text) == job(args=["ünï"])


def test_msgpack_payloads_are_a_msgpack_map():
    data = encode(job(), "msgpack")
    assert data[0] in range(0x80, 0x90) or data[0] in (0xDE, 0xDF)
    assert msgpack.unpackb(data, raw=False) == job()


def test_decode_detects_each_encoding_so_both_can_coexist():
    as_json, as_msgpack = encode(job(jid="a" * 24), "json"), encode(job(jid="b" * 24), "msgpack")
    assert [decode(d)["jid"] for d in (as_json, as_msgpack)] == ["a" * 24, "b" * 24]


def test_decode_accepts_json_written_by_other_tools_with_whitespace_and_float_times():
    # Given a payload as Ruby Sidekiq 7 would write it (float seconds, pretty-printed)
    text = ' {\n "class": "HardJob", "args": [1], "queue": "default",\n' \
           ' "jid": "0123456789abcdef01234567", "created_at": 1790000000.25, "retry": true}'
    decoded = decode(text.encode())
    assert decoded["class"] == "HardJob"
    assert epoch_seconds(decoded["created_at"]) == 1790000000.25


# -- decode errors ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty payload"),
        (b"\xc1\x00\x01garbage", "not a valid msgpack payload"),
        (encode(job(), "msgpack")[:-7], "not a valid msgpack payload"),
        (b'{"class": "X", "args": [1', "not a valid JSON payload"),
        (b"\xff\xfe{}", "not a valid msgpack payload"),
        (b"[1, 2]", "payload is a list, not a map"),
        (b'"just a string"', "payload is a str, not a map"),
        (b"42", "payload is an int, not a map"),
        (msgpack.packb([1, 2]), "payload is a list, not a map"),
        (msgpack.packb({1: "int key"}), "not a valid msgpack payload"),
        (encode(without("class"), "json"), "payload has no 'class'"),
        (encode(without("args")), "payload has no 'args'"),
        (encode(without("jid")), "payload has no 'jid'"),
        (encode(without("queue"), "json"), "payload has no 'queue'"),
        (encode(job(args="1, 2"), "json"), "payload 'args' is a str, not a list"),
        (encode(job(args={"a": 1})), "payload 'args' is a dict, not a list"),
        (encode(job(**{"class": 7})), "payload 'class' is an int, not a str"),
        (encode(job(queue="")), "payload 'queue' is empty"),
    ],
)
def test_decode_errors_say_what_is_wrong(data, reason):
    with pytest.raises(PayloadError) as info:
        decode(data)
    assert str(info.value).startswith(reason)


def test_payload_error_keeps_the_decoder_error_as_its_cause():
    with pytest.raises(PayloadError) as info:
        decode(b"{nope")
    assert isinstance(info.value.__cause__, ValueError)


@given(st.binary(max_size=64))
def test_decoding_random_bytes_raises_payload_error_or_returns_a_valid_job(data):
    try:
        decoded = decode(data)
    except PayloadError:
        return
    assert validate(decoded) is decoded


@given(st.binary(min_size=1, max_size=40))
def test_decoding_a_corrupted_payload_never_raises_anything_but_payload_error(tail):
    data = encode(job(), "msgpack")
    corrupted = data[: len(data) // 2] + tail
    with contextlib.suppress(PayloadError):
        decode(corrupted)


# -- small helpers ------------------------------------------------------------------------------
def test_new_jid_is_24_lowercase_hex_chars_and_unique():
    jids = {new_jid() for _ in range(2000)}
    assert len(jids) == 2000
    assert all(re.fullmatch(r"[0-9a-f]{24}", jid) for jid in jids)


def test_now_ms_is_an_int_of_epoch_milliseconds():
    before = time.time()
    value = now_ms()
    assert type(value) is int
    assert before * 1000 - 5 <= value <= time.time() * 1000 + 5


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1_790_000_000_123, 1_790_000_000.123),  # Sidekiq 8: epoch ms
        (1_790_000_000, 1_790_000_000.0),  # integer seconds
        (1_790_000_000.5, 1_790_000_000.5),  # Sidekiq <= 7: float seconds
        (0, 0.0),
        (None, None),
        ("1790000000", None),
        (True, None),
    ],
)
def test_epoch_seconds_reads_ms_ints_and_float_seconds(value, seconds):
    result = epoch_seconds(value)
    if seconds is None:
        assert result is None
    else:
        assert result == pytest.approx(seconds, abs=1e-6)
