"""The ``kiqpy`` command line: parsing, usage errors, env vars, the -C file, logging flags.

Parse-only cases run the command in-process with click's CliRunner and stop where the worker
would start (``kiqpy.cli.commands.serve`` is swapped for a recorder); the rest run the real command
in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

import kiqpy
from kiqpy.cli import commands as cli
from tests import app_jobs
from tests.conftest import wait_for
from tests.workers import ROOT, WorkerProcess, log_events, run_cli

ENV_NAMES = ("REDIS_URL", "QUEUE", "QUEUES")


# -- parse_queues ----------------------------------------------------------------------------
@pytest.mark.parametrize(("values", "expected"), [
    (["default"], (("default", 0),)),
    (["default,mail"], (("default", 0), ("mail", 0))),
    (["critical", "default, mail "], (("critical", 0), ("default", 0), ("mail", 0))),
    (["critical:3", "default:1"], (("critical", 3), ("default", 1))),
    (["a:3,b:1"], (("a", 3), ("b", 1))),
    (["a:2,b"], (("a", 2), ("b", 1))),  # once one queue has a weight, the others weigh 1
])
def test_parse_queues(values, expected):
    assert cli.parse_queues(values) == expected


@pytest.mark.parametrize(("values", "message"), [
    (["mail:x"], "bad weight in 'mail:x'"),
    (["mail:0"], "at least 1"),
    (["mail:-1"], "bad weight"),
    ([":3"], "has no queue name"),
    (["a,,b"], "empty queue name"),
    (["critical,2"], "critical:2"),
    (["critical:3,2"], "critical:2"),
])
def test_parse_queues_rejects_bad_input_with_a_helpful_message(values, message):
    with pytest.raises(click.BadParameter, match=message):
        cli.parse_queues(values)


# -- in-process parsing ------------------------------------------------------------------------
class Parsed:
    """What the command would have run with: the Config and the log setup."""

    def __init__(self) -> None:
        self.config: kiqpy.Config | None = None
        self.log: tuple[str, str] | None = None


@pytest.fixture
def invoke(monkeypatch, config, tmp_path):
    """``invoke(*args, env=...)`` runs the CLI in-process up to starting the worker; returns
    (click Result, Parsed). The environment starts without kiqpy's variables."""
    import os

    for name in list(os.environ):
        if name.startswith("KIQPY_") or name in ENV_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def run(*args: str, env: dict[str, str] | None = None):
        parsed = Parsed()

        def serve(load_app, options):
            parsed.config = load_app()
            parsed.options = options
            return 0

        monkeypatch.setattr(cli, "serve", serve)
        monkeypatch.setattr(cli.kiqpy_log, "setup",
                            lambda fmt, level, *a, **k: setattr(parsed, "log", (fmt, level)))
        result = CliRunner().invoke(cli.main, list(args), env=env)
        return result, parsed

    return run


def test_defaults(invoke, config):
    result, parsed = invoke()
    assert result.exit_code == 0, result.output
    cfg = parsed.config
    assert (cfg.concurrency, cfg.queues, cfg.timeout) == (10, (("default", 0),), 25.0)
    # No flag or env var: the default configuration's URL (here set by kiqpy.configure) stands.
    assert cfg.redis_url == config.redis_url
    assert parsed.log == ("auto", "info")


def test_worker_command_is_the_same_as_no_command(invoke):
    args = ["-c", "3", "-q", "a:2,b", "-t", "4", "-g", "blue", "--namespace", "ns"]
    plain, plain_parsed = invoke(*args)
    named, named_parsed = invoke("worker", *args)
    assert plain.exit_code == named.exit_code == 0, plain.output + named.output
    assert plain_parsed.config == named_parsed.config
    assert named_parsed.config.queues == (("a", 2), ("b", 1))
    assert (named_parsed.config.tag, named_parsed.config.namespace) == ("blue", "ns")


def test_every_setting_from_kiqpy_env_vars(invoke):
    result, parsed = invoke(env={
        "KIQPY_CONCURRENCY": "7", "KIQPY_QUEUES": "x:2,y", "KIQPY_TIMEOUT": "3.5",
        "KIQPY_TAG": "green", "KIQPY_REDIS_URL": "redis://127.0.0.1:9/3",
        "REDIS_URL": "redis://127.0.0.1:9/4", "KIQPY_NAMESPACE": "app",
        "KIQPY_SERIALIZER": "json", "KIQPY_PREFETCH": "4", "KIQPY_POLL_INTERVAL": "0.5",
        "KIQPY_SIDEKIQ_VERSION": "6", "KIQPY_HEARTBEAT_INTERVAL": "2", "KIQPY_PROCESS_TTL": "9",
        "KIQPY_LOG_FORMAT": "json", "KIQPY_LOG_LEVEL": "WARNING"})
    assert result.exit_code == 0, result.output
    cfg = parsed.config
    assert cfg.concurrency == 7
    assert cfg.queues == (("x", 2), ("y", 1))
    assert (cfg.timeout, cfg.tag, cfg.namespace, cfg.serializer) == (3.5, "green", "app", "json")
    assert cfg.sidekiq_version == "6"
    assert cfg.redis_url == "redis://127.0.0.1:9/3"  # KIQPY_REDIS_URL before REDIS_URL
    assert (cfg.prefetch, cfg.poll_interval_average) == (4, 0.5)
    assert (cfg.heartbeat_interval, cfg.process_ttl) == (2.0, 9.0)
    assert parsed.log == ("json", "warning")


@pytest.mark.parametrize(("env", "queues"), [
    ({"QUEUE": "a,b"}, (("a", 0), ("b", 0))),
    ({"QUEUES": "a,b"}, (("a", 0), ("b", 0))),
    ({"QUEUES": "a:3 b:1"}, (("a", 3), ("b", 1))),  # click splits env lists on whitespace
])
def test_resque_queue_env_vars(invoke, env, queues):
    result, parsed = invoke(env=env)
    assert result.exit_code == 0, result.output
    assert parsed.config.queues == queues


def test_redis_url_env_var_and_flags_override_env(invoke):
    result, parsed = invoke("-c", "2", "-q", "flag", "--redis-url", "redis://127.0.0.1:9/1",
                            env={"REDIS_URL": "redis://127.0.0.1:9/5",
                                 "KIQPY_CONCURRENCY": "7", "QUEUE": "env"})
    assert result.exit_code == 0, result.output
    cfg = parsed.config
    assert (cfg.concurrency, cfg.queues, cfg.redis_url) == (2, (("flag", 0),),
                                                            "redis://127.0.0.1:9/1")
    result, parsed = invoke(env={"REDIS_URL": "redis://127.0.0.1:9/5"})
    assert parsed.config.redis_url == "redis://127.0.0.1:9/5"


def test_verbose_means_debug(invoke):
    assert invoke("-v", "--log-level", "error")[1].log == ("auto", "debug")
    assert invoke(env={"KIQPY_VERBOSE": "1"})[1].log == ("auto", "debug")


def test_config_file_values_are_used_when_no_flag_is_given(invoke, tmp_path):
    (tmp_path / "kiqpy.toml").write_text(
        '[kiqpy]\nconcurrency = 4\nqueues = ["critical:3", "default"]\ntimeout = 8\n'
        'tag = "from-file"\nheartbeat-interval = 1.5\nlog_level = "warning"\n'
        'sidekiq-version = 7\n')
    result, parsed = invoke("-C", "kiqpy.toml")
    assert result.exit_code == 0, result.output
    cfg = parsed.config
    assert (cfg.concurrency, cfg.timeout, cfg.tag) == (4, 8.0, "from-file")
    assert cfg.sidekiq_version == "7"  # a TOML int is taken too
    assert cfg.queues == (("critical", 3), ("default", 1))
    assert cfg.heartbeat_interval == 1.5
    assert parsed.log == ("auto", "warning")


def test_flags_override_the_config_file(invoke, tmp_path):
    (tmp_path / "kiqpy.toml").write_text('concurrency = 4\nqueue = "a,b"\ntag = "file"\n')
    result, parsed = invoke("-C", "kiqpy.toml", "-c", "9", "-q", "z")
    assert result.exit_code == 0, result.output
    cfg = parsed.config
    assert (cfg.concurrency, cfg.queues, cfg.tag) == (9, (("z", 0),), "file")


def test_config_file_queues_as_name_weight_pairs(invoke, tmp_path):
    (tmp_path / "kiqpy.toml").write_text('[kiqpy]\nqueues = [["a", 5], ["b", 1]]\n')
    result, parsed = invoke("-C", "kiqpy.toml")
    assert result.exit_code == 0, result.output
    assert parsed.config.queues == (("a", 5), ("b", 1))


@pytest.mark.parametrize(("args", "message"), [
    (["--bogus"], "No such option '--bogus'"),
    (["-c", "0"], "0 is not in the range x>=1"),
    (["-c", "many"], "'many' is not a valid integer"),
    (["-q", "mail:x"], "bad weight in 'mail:x'"),
    (["-q", "critical,2"], "for a weight write critical:2"),
    (["-t", "-1"], "--timeout"),
    (["--log-format", "xml"], "--log-format"),
    (["--redis-url", "http://example.com"], "bad Redis URL"),
])
def test_usage_errors_exit_2_with_a_message(invoke, args, message):
    result, parsed = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert parsed.config is None


@pytest.mark.parametrize(("text", "message"), [
    ("concurrency = \n", "is not valid TOML"),
    ("[kiqpy]\nconcurrency = 0\n", "Invalid value for 'concurrency' in kiqpy.toml: 0 is not"),
    ("[kiqpy]\nconcurrency = \"lots\"\n", "'lots' is not a valid integer"),
    ("[kiqpy]\nconcurency = 5\n", "unknown key 'concurency' in kiqpy.toml; did you mean "
                                  "'concurrency'?"),
    ("[kiqpy]\nqueues = [\"a:x\"]\n", "bad weight in 'a:x'"),
    ("kiqpy = 3\n", "'kiqpy' must be a table"),
])
def test_a_bad_config_file_is_a_usage_error(invoke, tmp_path, text, message):
    (tmp_path / "kiqpy.toml").write_text(text)
    result, parsed = invoke("-C", "kiqpy.toml")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert parsed.config is None


def test_an_unreadable_config_file_is_a_usage_error(invoke, tmp_path):
    result, _ = invoke("-C", "missing.toml")
    assert result.exit_code == 2
    assert "cannot read missing.toml: No such file or directory" in result.output
    result, _ = invoke("-C", str(tmp_path))
    assert result.exit_code == 2
    assert "cannot read" in result.output


# -- the real command ----------------------------------------------------------------------------
def test_usage_errors_from_the_real_command(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("concurrency = = 3\n")
    results = run_cli(["--bogus"], ["worker", "-c", "0"], ["-q", "critical,2"],
                       ["-C", str(tmp_path / "nope.toml")], ["-C", str(bad)])
    for result in results:
        assert result.returncode == 2, result
        assert "Usage:" in result.stderr and "Error:" in result.stderr, result
        assert "Traceback" not in result.stderr, result
    assert "No such option '--bogus'" in results[0].stderr
    assert "0 is not in the range x>=1" in results[1].stderr
    assert "for a weight write critical:2" in results[2].stderr
    assert "cannot read" in results[3].stderr
    assert "is not valid TOML" in results[4].stderr


def test_version_flags_print_the_version():
    results = run_cli(["-V"], ["--version"], ["worker", "-V"])
    for result in results:
        assert result.returncode == 0, result
        assert result.stdout.strip() == f"kiqpy {kiqpy.__version__}"


def test_a_require_that_fails_to_import_exits_1_with_the_error(tmp_path, redis_url):
    broken = tmp_path / "broken_jobs.py"
    broken.write_text("raise RuntimeError('boom at import')\n")
    missing, failing = run_cli(["-r", "tests.no_such_module", "--redis-url", redis_url],
                                ["-r", str(broken), "--redis-url", redis_url])
    assert missing.returncode == 1, missing
    assert "cannot import 'tests.no_such_module'" in missing.stderr
    assert "ModuleNotFoundError" in missing.stderr
    assert failing.returncode == 1, failing
    assert "RuntimeError: boom at import" in failing.stderr


def test_no_job_classes_registered_is_a_warning(redis_url, r):
    with WorkerProcess(redis_url, require=None) as worker:
        worker.wait_for_log("no job classes registered")
        assert worker.process.poll() is None  # a warning, not an exit
    warning = [e for e in log_events(worker) if "no job classes" in e["event"]]
    assert warning[0]["level"] == "warning"
    assert "-r" in warning[0]["event"]


def test_a_require_by_file_path_works(config, r, redis_url):
    app_jobs.Record.perform_async("by path")
    with WorkerProcess(redis_url, require="tests/app_jobs.py"):
        wait_for(lambda: r.llen("test:ran") == 1, message="the job to run")


def test_json_log_lines_carry_the_job_context(config, r, redis_url):
    jid = app_jobs.Record.perform_async("json")
    with WorkerProcess(redis_url) as worker:  # WorkerProcess passes --log-format json
        wait_for(lambda: r.llen("test:ran") == 1, message="the job to run")
        worker.wait_for_log('"done"')
    lines = [line for line in worker.log().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is JSON
    start = next(e for e in events if e["event"] == "start")
    done = next(e for e in events if e["event"] == "done")
    for event in (start, done):
        assert (event["jid"], event["job_class"], event["queue"]) == (jid, "Record", "default")
        assert event["level"] == "info" and "timestamp" in event
    assert done["elapsed"] >= 0


def test_console_log_format(config, r, redis_url):
    app_jobs.Record.perform_async("console")
    with WorkerProcess(redis_url, "--log-format", "console") as worker:
        wait_for(lambda: r.llen("test:ran") == 1, message="the job to run")
        worker.wait_for_log("done")
    lines = [line for line in worker.log().splitlines() if line.strip()]
    assert not any(line.startswith("{") for line in lines), lines
    assert any("done" in line and "job_class=Record" in line for line in lines), lines


def test_auto_log_format_is_json_when_not_on_a_terminal(config, r, redis_url):
    with WorkerProcess(redis_url, "--log-format", "auto") as worker:
        worker.wait_for_log("starting")
    assert json.loads(worker.log().splitlines()[0])["event"] == "starting"


def test_log_level_warning_silences_the_per_job_lines(config, r, redis_url):
    app_jobs.Record.perform_async("quiet")
    with WorkerProcess(redis_url, "--log-level", "warning") as worker:
        wait_for(lambda: r.llen("test:ran") == 1, message="the job to run")
        # The job's ack is sent after it ran; once it is gone the "done" line would be out.
        wait_for(lambda: not r.keys("*:inflight:*"), message="the ack")
        worker.terminate()
        assert worker.wait(15) == 0
    events = {e["event"] for e in log_events(worker)}
    assert not events & {"start", "done", "starting", "stopped"}, events


def test_a_file_under_the_working_directory_keeps_its_dotted_job_names(tmp_path, r, redis_url):
    # `-r myapp/jobs.py` must register myapp.jobs.Hello, the name the app pushes under when it
    # does `from myapp.jobs import Hello`, not jobs.Hello (which would fail as unknown).
    app = tmp_path / "myapp"
    app.mkdir()
    (app / "jobs.py").write_text(
        "import os, redis, kiqpy\n"
        "class Hello(kiqpy.Worker):\n"
        "    def perform(self, who):\n"
        "        redis.Redis.from_url(os.environ['REDIS_URL']).rpush('test:hello', who)\n")
    kiqpy.enqueue("myapp.jobs.Hello", "world")
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "kiqpy.cli", "-r", "myapp/jobs.py",
                             "--log-format", "json"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: r.llen("test:hello") == 1, timeout=20, message="myapp.jobs.Hello")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert r.lrange("test:hello", 0, -1) == [b"world"]
    assert "UnknownJob" not in out


def test_an_import_failure_logs_its_traceback_to_the_logfile(tmp_path, redis_url):
    broken = tmp_path / "broken_jobs.py"
    broken.write_text("def deep():\n    raise RuntimeError('boom at import')\n\ndeep()\n")
    logfile = tmp_path / "kiqpy.log"
    [result] = run_cli(["-r", str(broken), "--redis-url", redis_url, "--logfile", str(logfile)])
    assert result.returncode == 1
    logged = logfile.read_text()
    assert "cannot import" in logged and "boom at import" in logged
    assert "broken_jobs.py" in logged and "line 2" in logged  # the traceback, with file and line


def test_a_file_named_like_another_module_is_refused_not_shadowed(tmp_path, redis_url):
    (tmp_path / "json.py").write_text("raise SystemExit('should never run')\n")
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    # The console script, as users run it (python -m would put the directory on sys.path
    # first and shadow json for the interpreter itself).
    script = os.path.join(os.path.dirname(sys.executable), "kiqpy")
    result = subprocess.run([script, "-r", "./json.py"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "imports as 'json', but that name is another module" in result.stderr


# -- rough edges a new user hit ------------------------------------------------------------
def test_top_level_help_shows_the_worker_options():
    result = CliRunner().invoke(cli.main, ["--help"])
    assert result.exit_code == 0
    assert "Worker options (kiqpy [OPTIONS] is kiqpy worker [OPTIONS])" in result.output
    for flag in ("-r, --require", "-c, --concurrency", "-q, --queue", "-p, --processes"):
        assert flag in result.output
    assert "Commands:" in result.output and "stats" in result.output


def test_a_require_path_that_does_not_exist_is_a_usage_error_that_says_so(tmp_path):
    [result] = run_cli(["-r", str(tmp_path / "nofile.py")])
    assert result.returncode == 2
    assert "nofile.py: no such file or folder" in result.stderr
    assert "No module named" not in result.stderr


def test_an_import_failure_prints_a_readable_traceback_in_console_format(tmp_path, redis_url):
    broken = tmp_path / "broken_jobs.py"
    broken.write_text("def deep():\n    raise RuntimeError('boom at import')\n\ndeep()\n")
    [result] = run_cli(["-r", str(broken), "--redis-url", redis_url, "--log-format", "console"])
    assert result.returncode == 1
    # A traceback of real lines, not one string with literal "\n" in it
    assert "\\n" not in result.stderr
    lines = result.stderr.splitlines()
    assert "Traceback (most recent call last):" in lines
    assert any(line.strip().startswith('File "') and "broken_jobs.py" in line
               and "line 2" in line for line in lines)
    assert "RuntimeError: boom at import" in lines
