"""The dashboard's Limits page (kiqpy/web/views_limits.py)."""

from __future__ import annotations

import pytest

from kiqpy import limiter
from tests.web_helpers import client_for, text


def test_the_limits_page_lists_each_limiter(config, r):
    lim = limiter.concurrent("erp<1>", 3, wait_timeout=0)
    with lim.within_limit():
        pass
    rate = limiter.bucket("stripe", 1, "minute")
    with rate.within_limit():
        pass
    with pytest.raises(limiter.OverLimit), rate.within_limit():
        pass  # pragma: no cover

    page = text(client_for(config).get("/limits"))

    assert '<a href="/limits" aria-current="page">Limits</a>' in page
    assert "<strong>erp&lt;1&gt;</strong>" in page and "at once (lease 30s)" in page
    row = page[page.index("<strong>stripe</strong>"):]
    row = row[:row.index("</tr>")]
    assert ">bucket<" in row and ">1m 0s<" in row and 'data-label="Over limit">1<' in row


def test_no_limiters_says_so(config, r):
    assert "No limiter was used in the last day." in text(client_for(config).get("/limits"))
