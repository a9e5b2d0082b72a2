"""Tests of the middleware example, with kiqpy's testing modes (no Redis, no worker):

    python -m pytest examples/middleware -q

Each test builds its own configuration with the two middleware, so it does not depend on what
importing ``jobs.py`` did to the default one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kiqpy
import kiqpy.testing
from examples.middleware.jobs import BuildReport, EmailReport
from examples.middleware.tenancy import (
    RestoreTenant,
    StampTenant,
    current_tenant,
    request_context,
)


@pytest.fixture
def config() -> kiqpy.Config:
    config = kiqpy.Config()
    config.client_middleware.add(StampTenant)
    config.server_middleware.add(RestoreTenant)
    return config


@pytest.fixture(autouse=True)
def out_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDDLEWARE_OUT", str(tmp_path))


def recorded(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "reports.log").read_text().splitlines()]


def test_a_job_pushed_during_a_request_carries_its_tenant(config):
    with kiqpy.testing.fake(config), request_context("acme", "req-1"):
        BuildReport.perform_async("sales")
        job = BuildReport.jobs[0]
    assert (job["tenant"], job["request_id"]) == ("acme", "req-1")
    assert job["args"] == ["sales"]  # the tenant is not an argument


def test_a_job_pushed_outside_a_request_has_no_tenant(config):
    with kiqpy.testing.fake(config):
        BuildReport.perform_async("sales")
        assert "tenant" not in BuildReport.jobs[0]


def test_the_job_runs_as_its_tenant_and_so_do_the_jobs_it_pushes(config, tmp_path):
    # Inline mode runs each push at once, through the server chain we give it.
    with kiqpy.testing.inline(config, server_middleware=config.server_middleware), \
            request_context("acme", "req-1"):
        BuildReport.perform_async("sales")
    assert recorded(tmp_path) == [
        {"job": "BuildReport", "report": "sales", "tenant": "acme", "request_id": "req-1"},
        {"job": "EmailReport", "report": "sales", "tenant": "acme", "request_id": "req-1"},
    ]


def test_the_tenant_is_reset_after_the_job(config, tmp_path):
    with kiqpy.testing.inline(config, server_middleware=config.server_middleware):
        with request_context("acme"):
            BuildReport.perform_async("sales")
        assert current_tenant.get() is None
        EmailReport.perform_async("stock")  # pushed outside any request
    assert [line["tenant"] for line in recorded(tmp_path)] == ["acme", "acme", None]
