"""``kiqpy stats`` (kiqpy/cli/stats.py): text tables for people, JSON for scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import kiqpy
from kiqpy.api import ProcessSet, Stats
from kiqpy.cli import main
from kiqpy.cli.stats import ago, table
from kiqpy.config import Config
from tests.workers import ROOT


def stats_cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["stats", *args], env=env, catch_exceptions=False)


@pytest.fixture
def busy_redis(config, r):
    """Queued, scheduled, retried and dead jobs, counters and one live process."""
    for n in range(3):
        kiqpy.enqueue("Record", n)
    kiqpy.enqueue("Record", "m", queue="mail")
    kiqpy.enqueue("Record", "later", delay=600)
    r.zadd("retry", {b"\xc1": 1.0})
    r.zadd("dead", {b"\xc1\xc1": 2.0})
    r.mset({"stat:processed": 1234, "stat:failed": 5})
    r.sadd("processes", "web1:42:abc")
    r.hset("web1:42:abc", mapping={
        "info": json.dumps({"hostname": "web1", "pid": 42, "tag": "app", "concurrency": 10,
                            "queues": ["default", "mail"], "started_at": time.time() - 3700}),
        "busy": 2, "beat": time.time(), "quiet": "true", "rss": 51200, "rtt_us": 90})
    return config


def test_json_output_parses_and_matches_the_api(busy_redis, redis_url):
    result = stats_cli("--json", "--redis-url", redis_url)

    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    expected = Stats().to_dict()
    # Latency grows while we look; everything else is a fixed count.
    assert data["overview"].pop("default_queue_latency") == pytest.approx(
        expected.pop("default_queue_latency"), abs=1.0)
    assert data["overview"] == expected
    assert data["overview"]["enqueued"] == 4 and data["overview"]["processed"] == 1234
    assert data["processes"] == [p.to_dict() for p in ProcessSet()]
    [process] = data["processes"]
    assert (process["busy"], process["quiet"], process["tag"]) == (2, True, "app")
    assert [(q["name"], q["size"]) for q in data["queues"]] == [("default", 3), ("mail", 1)]
    assert all(0 <= q["latency"] < 60 for q in data["queues"])


@pytest.mark.parametrize("section, keys", [
    ("overview", {"overview"}), ("processes", {"processes"}), ("queues", {"queues"}),
    ("all", {"overview", "processes", "queues"})])
def test_json_output_of_one_section(busy_redis, redis_url, section, keys):
    result = stats_cli(section, "--json", "--redis-url", redis_url)
    assert set(json.loads(result.output)) == keys


def test_text_output_shows_aligned_tables(busy_redis, redis_url):
    result = stats_cli("--redis-url", redis_url)

    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith(f"kiqpy {kiqpy.__version__} / Redis ")
    assert "---- Overview ----" in out and "  Processed: 1,234" in out
    assert "Enqueued: 4" in out and "Retries: 1" in out and "Dead: 1" in out
    assert "---- Processes (1) ----" in out and "---- Queues (2) ----" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("IDENTITY"))
    row = next(line for line in lines if line.startswith("web1:42:abc"))
    assert row.index("app") == header.index("TAG")
    assert "default,mail" in row and "50.0 MB" in row and "quiet" in row and "1h 1m" in row
    start = lines.index("---- Queues (2) ----")
    assert lines[start + 1:start + 4] == ["NAME     SIZE  LATENCY",
                                          "default     3     " + lines[start + 2][-4:],
                                          "mail        1     " + lines[start + 3][-4:]]


def test_one_text_section(busy_redis, redis_url):
    out = stats_cli("queues", "--redis-url", redis_url).output
    assert "---- Queues (2) ----" in out and "Overview" not in out and "Processes" not in out


def test_empty_sections_say_so(config, redis_url):
    out = stats_cli("--redis-url", redis_url).output
    assert "---- Processes (0) ----\n  (none)" in out and "---- Queues (0) ----\n  (none)" in out


def test_redis_url_and_namespace_come_from_the_environment(config, r, redis_url):
    kiqpy.Client(Config(redis_url=redis_url, namespace="app")).enqueue("Record", [], {})

    result = stats_cli("overview", "--json",
                       env={"KIQPY_REDIS_URL": redis_url, "KIQPY_NAMESPACE": "app"})
    assert json.loads(result.output)["overview"]["enqueued"] == 1
    result = stats_cli("overview", "--json", "--namespace", "", env={"REDIS_URL": redis_url,
                                                                     "KIQPY_REDIS_URL": ""})
    assert json.loads(result.output)["overview"]["enqueued"] == 0


def test_an_unreachable_redis_is_a_one_line_error(closed_url):
    result = CliRunner().invoke(main, ["stats", "--redis-url", closed_url])
    assert result.exit_code == 1
    assert "Error: cannot reach Redis at" in result.output and "Traceback" not in result.output


def test_a_bad_section_is_refused(config):
    result = CliRunner().invoke(main, ["stats", "workers"])
    assert result.exit_code == 2 and "'workers' is not one of" in result.output


def test_the_installed_command_runs(busy_redis, redis_url):
    env = {**os.environ, "REDIS_URL": redis_url}
    env.pop("KIQPY_REDIS_URL", None)
    done = subprocess.run([sys.executable, "-m", "kiqpy.cli", "stats", "--json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["overview"]["processed"] == 1234


# -- helpers -------------------------------------------------------------------------------------
def test_table_pads_columns_and_right_aligns_numbers():
    assert table(("NAME", "SIZE", "RSS"), [("default", 3, "1.0 MB"), ("a", 1200, "12.5 MB")],
                 right=("RSS",)) == [
        "NAME     SIZE      RSS", "default     3   1.0 MB", "a        1200  12.5 MB"]


@pytest.mark.parametrize("seconds, text", [(5, "5s"), (65, "1m 5s"), (3700, "1h 1m"),
                                           (90000, "1d 1h")])
def test_ago(seconds, text):
    assert ago(1000.0, now=1000.0 + seconds) == text
    assert ago(None) == "-"


def test_a_queue_key_that_is_not_a_list_is_reported_not_fatal(config, r, redis_url):
    # Given a known queue whose key something else made a string
    kiqpy.enqueue("Job", 1, queue="fine")
    r.sadd("queues", "odd")
    r.set("queue:odd", "not a list")
    env = {**os.environ, "REDIS_URL": redis_url}
    for args in (["stats", "queues"], ["stats", "queues", "--json"]):
        done = subprocess.run([sys.executable, "-m", "kiqpy.cli", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=30)
        # Then the command still shows every queue, and says what is wrong with that one
        assert done.returncode == 0, done.stderr
        assert "fine" in done.stdout and "queue:odd is not a list" in done.stdout
