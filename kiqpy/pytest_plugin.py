"""pytest fixtures for testing applications' jobs (installed as a pytest plugin with kiqpy).

    def test_signup_sends_mail(kiqpy_fake):
        signup("bob@example.com")
        assert MailJob.jobs[0]["args"] == ["bob@example.com"]
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kiqpy import testing


@pytest.fixture
def kiqpy_fake() -> Iterator[testing.FakeClient]:
    """Fake mode for one test: pushes land in memory (``Job.jobs``, ``drain()``...)."""
    with testing.fake() as client:
        yield client


@pytest.fixture
def kiqpy_inline() -> Iterator[testing.InlineClient]:
    """Inline mode for one test: pushes run at once in the test's thread."""
    with testing.inline() as client:
        yield client
