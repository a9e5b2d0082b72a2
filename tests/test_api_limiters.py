"""kiqpy.api.Limiters: every limiter used lately, with its kind, size, use and refusals."""

from __future__ import annotations

import pytest

from kiqpy import limiter
from kiqpy.api import Limiters
from kiqpy.config import Config


def over(lim: limiter.Limiter) -> None:
    with pytest.raises(limiter.OverLimit), lim.within_limit():
        pass  # pragma: no cover


def test_each_limiter_with_its_kind_size_use_and_refusals(config, r):
    erp = limiter.concurrent("erp", 2, wait_timeout=0, lock_timeout=30)
    with erp.within_limit(), erp.within_limit():
        over(erp)
        over(erp)
        held = Limiters().find("erp")
    stripe = limiter.bucket("stripe", 1, "hour")
    with stripe.within_limit():
        pass
    over(stripe)
    mail = limiter.window("mail:example.com", 3, 60)
    for _ in range(2):
        with mail.within_limit():
            pass
    with limiter.leaky("push", 1, "minute").within_limit():
        pass

    found = {lim.name: lim for lim in Limiters()}

    assert sorted(found) == ["erp", "mail:example.com", "push", "stripe"]
    assert held is not None and (held.kind, held.size, held.in_use) == ("concurrent", 2, 2)
    assert held.lock_timeout == 30 and held.interval is None and held.over == 2
    assert found["erp"].in_use == 0 and found["erp"].calls == 2
    assert (found["stripe"].kind, found["stripe"].interval, found["stripe"].in_use,
            found["stripe"].over) == ("bucket", 3600, 1, 1)
    assert (found["mail:example.com"].in_use, found["mail:example.com"].calls) == (2, 2)
    assert found["mail:example.com"].interval == 60
    assert (found["push"].kind, found["push"].in_use, found["push"].size) == ("leaky", 1, 1)
    assert found["push"].to_dict()["interval"] == 60


def test_nothing_used_nothing_listed_and_unknown_names_are_none(config, r):
    assert Limiters().all() == [] and Limiters().find("nope") is None


def test_a_namespace_sees_only_its_own_limiters(r, redis_url):
    app = Config(redis_url=redis_url, namespace="app")
    with limiter.window("ns", 1, 60, config=app).within_limit():
        pass
    with limiter.window("plain", 1, 60, config=Config(redis_url=redis_url)).within_limit():
        pass
    assert [lim.name for lim in Limiters(app)] == ["ns"]
