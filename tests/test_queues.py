"""Queue selection: names, weights and Resque-style patterns (kiqpy/queues.py)."""

import pytest

from kiqpy import queues
from kiqpy.errors import ConfigurationError


def test_plain_names_keep_their_order_and_have_no_weight():
    assert queues.parse(["default,mail", "low"]) == (("default", 0), ("mail", 0), ("low", 0))


def test_weights_and_unweighted_names_count_as_one():
    assert queues.parse(["critical:3,default"]) == (("critical", 3), ("default", 1))


@pytest.mark.parametrize("tokens, message", [
    (["critical,2"], "for a weight write critical:2"),
    (["mail:x"], "bad weight in 'mail:x'"),
    (["mail:0"], "bad weight"),
    ([""], "empty queue name"),
    (["!"], "has no queue name"),
    (["!low"], "exclusions need something to exclude from"),
    (["*,!low:2"], "an exclusion takes no weight"),
    (["mail_[ab"], "unbalanced"),
])
def test_bad_specs_say_what_is_wrong(tokens, message):
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace("*", r"\*")):
        queues.parse(tokens)


def test_star_takes_every_known_queue_alphabetically():
    spec = queues.parse(["*"])
    assert queues.dynamic(spec)
    assert queues.resolve(spec, ["mail", "default", "low"]) == (
        ("default", 0), ("low", 0), ("mail", 0))


def test_named_queue_first_then_the_rest():
    spec = queues.parse(["critical,*"])
    assert [n for n, _ in queues.resolve(spec, ["a", "critical", "z"])] == ["critical", "a", "z"]


def test_globs_and_exclusions():
    spec = queues.parse(["mail_*,*,!low,!tmp_*"])
    known = ["mail_b", "mail_a", "default", "low", "tmp_1", "zeta"]
    assert [n for n, _ in queues.resolve(spec, known)] == ["mail_a", "mail_b", "default", "zeta"]


def test_a_named_queue_is_listened_to_before_it_exists():
    spec = queues.parse(["default,mail"])
    assert not queues.dynamic(spec)
    assert queues.resolve(spec, []) == (("default", 0), ("mail", 0))


def test_weights_apply_to_every_queue_a_pattern_matches():
    spec = queues.parse(["critical:5,mail_*:2"])
    assert queues.resolve(spec, ["mail_a", "mail_b"]) == (
        ("critical", 5), ("mail_a", 2), ("mail_b", 2))
