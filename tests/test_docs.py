"""README.md stays true: its CLI reference, make targets, TOML example, quoted error messages
and code examples are checked against the real code here.

Marker convention: a code block the tests run is preceded by an HTML comment (invisible when
the README is rendered) naming the example and, where it is a file, the path to write it to::

    <!-- readme: first-job myapp/jobs.py -->
    ```python
    ...
    ```

Kinds: ``first-job`` (a file, and a ``shell`` block of commands), ``enqueue``, ``middleware``,
``testing`` and ``toml``.
"""

from __future__ import annotations

import dataclasses
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import kiqpy
from kiqpy import testing
from kiqpy.cli import commands as cli
from kiqpy.config import Config
from kiqpy.payload import decode
from tests.conftest import queued_jobs, scheduled_jobs, wait_for
from tests.workers import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
MARKED = re.compile(r"<!-- readme: (\S+)(?: (\S+))? -->\n```\w*\n(.*?)```", re.DOTALL)
LONG_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def blocks(kind: str) -> list[tuple[str | None, str]]:
    """(argument, code) of every README block marked ``<!-- readme: kind [argument] -->``."""
    found = [(arg, code) for name, arg, code in MARKED.findall(README) if name == kind]
    assert found, f"README.md has no block marked <!-- readme: {kind} ... -->"
    return [(arg or None, code) for arg, code in found]


def block(kind: str, argument: str | None = None) -> str:
    matches = [code for arg, code in blocks(kind) if arg == argument]
    assert len(matches) == 1, f"expected one README block <!-- readme: {kind} {argument} -->"
    return matches[0]


def section(title: str) -> str:
    """The README text under ``## title``, up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.DOTALL)
    assert match, f"README.md has no section '## {title}'"
    return match.group(1)


def write_files(directory: Path, kind: str) -> None:
    """Write every block of ``kind`` that names a file under ``directory``."""
    for path, code in blocks(kind):
        if path and path.endswith(".py"):
            target = directory / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A directory holding the README's ``myapp`` package (the first job, the middleware)."""
    write_files(tmp_path, "first-job")
    write_files(tmp_path, "middleware")
    return tmp_path


@pytest.fixture
def imported_app(app_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``myapp`` importable in this process; forgotten again after the test."""
    monkeypatch.syspath_prepend(str(app_dir))
    yield app_dir
    for name in [n for n in sys.modules if n == "myapp" or n.startswith("myapp.")]:
        del sys.modules[name]


# -- the CLI reference -------------------------------------------------------------------------
def worker_options() -> list[click.Option]:
    return [p for p in cli.worker.params if isinstance(p, click.Option)]


def subsection(title: str) -> str:
    """The README text under ``### title``, up to the next ``##`` or ``###`` heading."""
    match = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^###? |\Z)", README, re.M | re.DOTALL)
    assert match, f"README.md has no section '### {title}'"
    return match.group(1)


def worker_reference() -> str:
    """The worker's part of the CLI reference: up to its first ``###`` subsection."""
    return section("CLI reference").split("\n### ", 1)[0]


# command (as typed after `kiqpy`), its click command, the README text holding its flag table
CLI_TABLES = {
    "worker": (cli.worker, worker_reference),
    "web": (cli.web, lambda: section("The dashboard")),
    "check": (cli.check, lambda: subsection("`kiqpy check`")),
    "stats": (cli.stats, lambda: subsection("`kiqpy stats`")),
    **{name: (cli.main.commands[name], lambda name=name: subsection(f"`kiqpy {name}`"))
       for name in ("enqueue", "retry", "kill", "delete", "clear", "process", "top")},
}


def _table_options(text: str) -> set[str]:
    """Long options named in the first column of the flag table rows (``| `-...``) of text."""
    rows = [row.split("|")[1] for row in text.splitlines() if row.startswith("| `-")]
    return {o for row in rows for o in LONG_OPTION.findall(row)}


@pytest.mark.parametrize("name", CLI_TABLES)
def test_cli_reference_names_every_long_option_of_the_help(name):
    _command, reference = CLI_TABLES[name]
    result = CliRunner().invoke(cli.main, [name, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    in_help = set(LONG_OPTION.findall(result.output))
    assert "--help" in in_help and len(in_help) > 1
    documented = _table_options(reference())
    missing = sorted(o for o in in_help if o not in documented)
    assert not missing, f"README's table for kiqpy {name} does not have rows for {missing}"


@pytest.mark.parametrize("name", CLI_TABLES)
def test_cli_reference_names_only_options_that_exist(name):
    command, reference = CLI_TABLES[name]
    documented = _table_options(reference())
    params = [*command.params, *cli.main.params]
    real = {o for p in params for o in (*p.opts, *p.secondary_opts)
            if o.startswith("--")} | {"--help"}
    assert documented, f"no option rows found in the table for kiqpy {name}"
    assert not documented - real, (
        f"README documents options kiqpy {name} lacks: {documented - real}")


@pytest.mark.parametrize("name", CLI_TABLES)
def test_cli_reference_names_every_short_option_and_environment_variable(name):
    command, reference = CLI_TABLES[name]
    text = reference()
    rows = [row for row in text.splitlines() if row.startswith("| `-")]
    options = [p for p in command.params if isinstance(p, click.Option)]
    for option in options:
        # the row of this option names its short form (if any) and every variable it reads
        [row] = [r for r in rows if f"`{option.opts[-1]}`" in r.split("|")[1]] or [""]
        assert row, f"kiqpy {name}: no table row for {option.opts[-1]}"
        for short in [o for o in option.opts if not o.startswith("--")]:
            assert f"`{short}`" in row.split("|")[1], f"kiqpy {name}: {short} not in {row}"
        envvars = [option.envvar] if isinstance(option.envvar, str) else option.envvar or []
        missing = [v for v in envvars if f"`{v}`" not in row]
        assert not missing, f"kiqpy {name}: the {option.opts[-1]} row lacks {missing}"


def test_cli_reference_names_every_environment_variable():
    reference = section("CLI reference")
    envvars = {v for p in worker_options() if p.envvar
               for v in ([p.envvar] if isinstance(p.envvar, str) else p.envvar)}
    assert "KIQPY_CONCURRENCY" in envvars
    missing = sorted(v for v in envvars if f"`{v}`" not in reference)
    assert not missing, f"README's CLI reference does not mention {missing}"


def test_stats_reference_names_its_sections_and_json_keys(r, redis_url):
    from kiqpy.api import Stats
    from kiqpy.cli.stats import SECTIONS

    text = subsection("`kiqpy stats`")
    [argument] = [p for p in cli.stats.params if isinstance(p, click.Argument)]
    assert set(argument.type.choices) == set(SECTIONS)  # type: ignore[attr-defined]
    assert all(f"`{s}`" in text for s in SECTIONS), SECTIONS
    keys = Stats(Config(redis_url=redis_url), r).to_dict()
    missing = [k for k in keys if f"`{k}`" not in text]
    assert "processed" in keys and not missing, f"kiqpy stats --json keys not named: {missing}"


# -- make targets ------------------------------------------------------------------------------
def test_every_make_target_in_the_readme_exists():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    targets = set(re.findall(r"^\s+([a-zA-Z][\w-]*)\s", done.stdout, re.M))
    assert {"help", "test", "demo"} <= targets
    # `make X` inside code spans and code blocks, where the README tells the reader to type it.
    code = " ".join(re.findall(r"```.*?```|`[^`\n]+`", README, re.DOTALL))
    named = set(re.findall(r"(?<![\w-])make ([a-zA-Z][\w-]*)", code))
    assert {"demo", "test", "help"} <= named
    assert not named - targets, f"README names make targets that do not exist: {named - targets}"


# -- the TOML example --------------------------------------------------------------------------
def test_toml_example_is_read_by_the_cli_and_makes_a_valid_config(tmp_path, monkeypatch):
    for option in worker_options():
        for var in [option.envvar] if isinstance(option.envvar, str) else option.envvar or []:
            monkeypatch.delenv(var, raising=False)
    path = tmp_path / "kiqpy.toml"
    path.write_text(block("toml"))

    # Given the file as the CLI reads it, every key is one that _settings maps to an option
    values = cli.load_config_file(str(path))
    accepted = {{"requires": "require"}.get(p.name, p.name) for p in worker_options()
                if p.name not in ("config_file", "verbose")}
    assert values and set(values) <= accepted, f"unknown keys: {set(values) - accepted}"

    # When the worker command parses `-C file` (no worker is started)
    ctx = cli.worker.make_context("worker", ["-C", str(path)])
    settings = cli._settings(ctx, dict(ctx.params))

    # Then each value from the file arrives, and Config accepts the result
    renamed = {"require": "requires", "poll_interval": "poll_interval_average"}
    for key, value in values.items():
        got = settings[renamed.get(key, key)]
        if key == "queues":
            value = cli.parse_queues(value)
        assert (list(got) if isinstance(value, list) else got) == value, key
    fields = {f.name for f in dataclasses.fields(Config)}
    assert set(settings) - fields <= {"requires", "log_format", "log_level", "verbose",
                                      "logfile", "log_flush", *cli._PROCESS_KEYS}
    Config(**{k: v for k, v in settings.items() if k in fields})


# -- quoted messages ---------------------------------------------------------------------------
def test_quoted_option_errors_are_the_real_ones():
    with pytest.raises(kiqpy.OptionsError) as caught:
        type("HardWorker", (kiqpy.Worker,), {"kiqpy_options": {"retyr": 3}})
    # The list of known options grows with bundled middleware, so the README shortens it.
    head, known = str(caught.value).split("Known options: ")
    assert known.startswith("backtrace, concurrency_key, ")
    shortened = f"{head}Known options: backtrace, concurrency_key, ...\n"
    assert f"kiqpy.errors.OptionsError: {shortened}" in README

    with pytest.raises(kiqpy.OptionsError) as caught:
        type("HardWorker", (kiqpy.Worker,), {"kiqpy_options": {"retry": "yes"}})
    assert f"kiqpy.errors.OptionsError: {caught.value}\n" in README


def test_quoted_argument_errors_are_the_real_ones():
    import datetime as dt

    job = type("Report", (kiqpy.Worker,), {"perform": lambda self, *args: None})
    with testing.fake():
        for args in ((1, {"when": dt.datetime(2024, 1, 1)}), ({1: "a"}, None)):
            with pytest.raises(kiqpy.ArgumentError) as caught:
                job.perform_async(*args)
            assert f"kiqpy.errors.ArgumentError: {caught.value}\n" in README


def test_quoted_queue_weight_error_is_the_real_one():
    result = CliRunner().invoke(cli.main, ["-q", "critical,2"])
    assert result.exit_code == 2
    error = next(line for line in result.output.splitlines() if line.startswith("Error:"))
    assert f"{error}\n" in section("Queues and weights")


# -- runnable examples -------------------------------------------------------------------------
@pytest.mark.slow
def test_first_job_runs_in_a_real_worker_as_the_readme_says(r, redis_url, app_dir):
    # Given the README's job module and its two commands, run from the app's directory
    commands = [shlex.split(line) for line in block("first-job", "shell").splitlines()
                if line.strip()]
    assert [c[0] for c in commands] == ["python", "kiqpy"]
    enqueue, worker_command = commands
    env = {"REDIS_URL": redis_url, "PYTHONPATH": str(app_dir)}

    # When the first command enqueues
    done = subprocess.run([sys.executable, *enqueue[1:]], cwd=app_dir, capture_output=True,
                          text=True, timeout=60, env={**_clean_env(), **env})
    assert done.returncode == 0, done.stderr
    [job] = queued_jobs(r)
    assert job["class"] == "myapp.jobs.HardWorker" and job["args"] == ["bob", 5]

    # And the second runs the worker (-r given to WorkerProcess, the rest as written)
    argv = worker_command[1:]
    at = argv.index("-r")
    require = argv[at + 1]
    rest = argv[:at] + argv[at + 2:]
    with WorkerProcess(redis_url, *rest, require=require, env=env) as worker:
        # Then the job runs, printing what the README says it prints
        worker.wait_for_log("working hard for bob, 5 times")
        wait_for(lambda: r.llen("queue:default") == 0 and not r.exists("retry"),
                 message="the queue to empty")
        worker.terminate()
        assert worker.wait() == 0
    assert "working hard for bob, 5 times" in README


def test_enqueue_examples_run_against_redis(config, r, imported_app):
    # When the README's enqueue block runs as written
    namespace = runpy.run_path(str(_written(imported_app, "enqueue.py", block("enqueue"))))

    # Then every kind of push landed where the README says
    assert re.fullmatch(r"[0-9a-f]{24}", namespace["jid"])
    assert len(namespace["jids"]) == 2 and all(namespace["jids"])
    default = queued_jobs(r, "default")
    assert [j["args"] for j in default] == [["bob", 5], ["a", 1], ["b", 2], ["a", 1], ["b", 2]]
    assert [j["args"] for j in queued_jobs(r, "critical")] == [["bob", 5]]
    assert queued_jobs(r, "critical")[0]["retry"] is False
    assert [(j["class"], j["args"]) for j in queued_jobs(r, "x")] == [("OtherApp::Job", [1, 2])]
    assert len(scheduled_jobs(r)) == 5


def test_middleware_example_stamps_jobs_on_push(config, r, imported_app):
    runpy.run_path(str(imported_app / "myapp" / "middleware.py"))
    assert len(config.client_middleware) == 1 and len(config.server_middleware) == 1

    kiqpy.enqueue("myapp.jobs.HardWorker", "bob", 5)

    [job] = queued_jobs(r)
    assert re.fullmatch(r"[0-9a-f]{32}", job["request_id"])


@pytest.mark.slow
def test_middleware_example_runs_in_a_real_worker(r, redis_url, app_dir):
    env = {"REDIS_URL": redis_url, "PYTHONPATH": str(app_dir)}
    push = ("import myapp.middleware; from myapp.jobs import HardWorker; "
            "HardWorker.perform_async('bob', 5)")
    done = subprocess.run([sys.executable, "-c", push], cwd=app_dir, capture_output=True,
                          text=True, timeout=60, env={**_clean_env(), **env})
    assert done.returncode == 0, done.stderr
    request_id = decode(r.lindex("queue:default", -1))["request_id"]

    with WorkerProcess(redis_url, "-r", "myapp.middleware", require="myapp.jobs",
                       env=env) as worker:
        worker.wait_for_log("working hard for bob, 5 times")
        wait_for(lambda: r.llen("queue:default") == 0, message="the queue to empty")
        worker.terminate()
        assert worker.wait() == 0
        log = worker.log()
    assert re.search(rf"myapp.jobs.HardWorker took [0-9.]+ s \(request {request_id}\)", log)


@pytest.mark.slow
def test_testing_example_passes_under_pytest(app_dir):
    [(name, code)] = blocks("testing")
    assert name
    (app_dir / name).write_text(code)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name],
        cwd=app_dir, capture_output=True, text=True, timeout=120, env=_clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


def _written(directory: Path, name: str, code: str) -> Path:
    path = directory / name
    path.write_text(code)
    return path


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items()
            if k not in ("REDIS_URL", "KIQPY_REDIS_URL", "KIQPY_NAMESPACE", "KIQPY_SERIALIZER",
                         "PYTEST_ADDOPTS", "PYTHONPATH")}
