"""pytest fixtures for testing applications' jobs (installed as a pytest plugin with kiqpy).

    def test_signup_sends_mail(kiqpy_fake):
        signup("bob@example.com")
        assert MailJob.jobs[0]["args"] == ["bob@example.com"]

Each fixture yields its mode's client; jobs the mode runs go through its
``server_middleware`` chain (empty until you add to it)::

    def test_jobs_run_with_tenant(kiqpy_inline):
        kiqpy_inline.server_middleware.add(TenantMiddleware)

Both work in async tests too (``@pytest.mark.anyio`` or pytest-asyncio): push with the async
client and run fake jobs with ``await Job.adrain()`` / ``aperform_one()``; inline mode awaits
an ``async def perform`` on the test's loop::

    @pytest.mark.anyio
    async def test_feed_is_fetched(kiqpy_fake):
        await FetchFeed.aperform_async("https://example.com/feed")
        assert await FetchFeed.adrain() == 1
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kiqpy import testing


@pytest.fixture
def kiqpy_fake() -> Iterator[testing.FakeClient]:
    """Fake mode for one test: pushes land in memory (``Job.jobs``, ``drain()``...); fake
    jobs run through ``kiqpy_fake.server_middleware``."""
    with testing.fake() as client:
        yield client


@pytest.fixture
def kiqpy_inline() -> Iterator[testing.InlineClient]:
    """Inline mode for one test: pushes run at once in the test's thread, through
    ``kiqpy_inline.server_middleware``."""
    with testing.inline() as client:
        yield client
