"""Every command the README tells a reader to type is run: here, by another test, or listed in
``NOT_RUNNABLE`` with the reason (issue 6).

``test_every_readme_command_is_run_somewhere`` extracts the commands from README.md (shell lines
of its fenced code blocks, the ``ExecStart=``/``ExecReload=`` lines of the systemd block, a
``run: ...`` comment in any block, and inline code spans that start with a command such as
``kiqpy``, ``make`` or ``redis-cli``) and fails on any command that is in none of ``RUN_HERE``,
``COVERED_ELSEWHERE`` and ``NOT_RUNNABLE``, or on a stale entry.

The tests below run the commands as written, with only these substitutions, so that they run
against the suite's private Redis instead of yours:

- ``myapp.jobs`` is the README's own ``myapp/jobs.py`` (from tests/test_docs.py), in a temp
  directory that is the working directory and on ``PYTHONPATH``; ``REDIS_URL`` (env) points at
  the test Redis;
- ``kiqpy`` (and ``/srv/myapp/.venv/bin/kiqpy``) is the ``kiqpy`` script next to this Python;
- ``redis-cli`` gets ``-u <test Redis URL>``; ``<identity>`` and ``$MAINPID`` are filled in
  (and ``host-1:4242``, in ``kiqpy process``, is a live worker's host:pid);
- ``kiqpy web`` gets a free ``--port`` and the test Redis for ``--redis-url``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import kiqpy
from kiqpy.payload import encode
from tests.conftest import wait_for
from tests.redis_server import free_port
from tests.test_docs import README, ROOT, _clean_env, block, write_files
from tests.workers import LoggedProcess, WorkerProcess, identity_of, in_a_terminal

FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", re.M | re.DOTALL)
SHELL_LANGS = {"sh", "bash", "shell", "console"}
ASSIGNMENT = re.compile(r"[A-Z_][A-Z0-9_]*=\S*")
# An inline code span is a command when its first word (after VAR=value) is one of these.
INLINE_PROGRAMS = {"kiqpy", "make", "redis-cli", "pip", "python", "docker", "kill", "systemctl"}

# -- the list ----------------------------------------------------------------------------------
# command -> the test in this file that runs it
RUN_HERE = {
    "kiqpy -r myapp.jobs -q critical,default,low": "test_worker_commands",
    "kiqpy -r myapp.jobs -q critical:1,default:1": "test_worker_commands",
    "kiqpy -r myapp.jobs -q critical:3,default:2,low:1": "test_worker_commands",
    "kiqpy -r myapp.jobs -q 'critical,*,!low'": "test_worker_commands",
    "COUNT=5 QUEUE='*' kiqpy -r myapp.jobs": "test_worker_commands",
    "kiqpy -r myapp.jobs -p auto -q critical,*": "test_worker_commands",
    "kiqpy -C kiqpy.toml": "test_worker_commands",
    "/srv/myapp/.venv/bin/kiqpy -r myapp.jobs -c 10 -q critical:3,default:1 -t 25":
        "test_systemd_exec_start_and_exec_reload",
    "/bin/kill -TSTP $MAINPID": "test_systemd_exec_start_and_exec_reload",
    "redis-cli SMEMBERS processes": "test_remote_signal_stats_and_check",
    "redis-cli LPUSH '<identity>-signals' quiet": "test_remote_signal_stats_and_check",
    "kiqpy stats": "test_kiqpy_stats_commands",
    "kiqpy stats queues": "test_kiqpy_stats_commands",
    "kiqpy stats --json": "test_kiqpy_stats_commands",
    "kiqpy check": "test_remote_signal_stats_and_check",
    "kiqpy check [-q default,mail]": "test_remote_signal_stats_and_check",
    "kiqpy web": "test_kiqpy_web_commands",
    "kiqpy web --port 8080 --redis-url redis://10.0.0.5:6379/0 --namespace myapp":
        "test_kiqpy_web_commands",
    "KIQPY_WEB_AUTH=admin:s3cret kiqpy web --host 0.0.0.0": "test_kiqpy_web_commands",
    "make help": "test_make_help",
    "kiqpy enqueue myapp.jobs.HardWorker '[\"bob\", 5]'": "test_admin_from_the_shell",
    "kiqpy enqueue HardWorker '[\"bob\", 5]' -r myapp.jobs --in 60": "test_admin_from_the_shell",
    "kiqpy retry 51d3c3c2ee1aa1b9c4f4b0a5": "test_admin_from_the_shell",
    "kiqpy kill --all --yes": "test_admin_from_the_shell",
    "kiqpy delete 51d3c3c2ee1aa1b9c4f4b0a5 --from dead": "test_admin_from_the_shell",
    "kiqpy clear queue mail": "test_admin_from_the_shell",
    "kiqpy process list": "test_admin_from_the_shell",
    "kiqpy process quiet host-1:4242": "test_admin_from_the_shell",
}

# command -> "path[::test_name] (why)": the test or script elsewhere that runs its equivalent
ADMIN = "tests/test_cli_admin.py::"
COVERED_ELSEWHERE = {
    "kiqpy --cluster":
        "tests/test_cluster.py::test_the_worker_flag_and_the_config_file_key_turn_cluster_on "
        "(the flag and the -C key on a real cluster's URL)",
    "kiqpy cancel JID":
        "tests/test_cancel.py::test_a_running_job_is_told_and_neither_retried_nor_dead "
        "(cancels a running job by its jid)",
    "kiqpy cancel":
        "tests/test_cancel.py::test_cancelling_an_unknown_or_finished_jid_says_so "
        "(an unknown jid: exit 1 and the reason)",
    "python -c 'import kiqpy.api; kiqpy.api.mark_deploy()'":
        "tests/test_metrics.py::test_the_readmes_mark_deploy_command_records_the_git_commit "
        "(runs it from the repo root against a private Redis)",
    "kiqpy periodic":
        "tests/test_periodic.py::test_kiqpy_periodic_lists_pauses_and_runs_entries "
        "(list, --json, pause, run against a published entry)",
    "kiqpy queue pause mail":
        "tests/test_queue_pause.py::test_the_queue_command_pauses_lists_and_unpauses "
        "(pause, list, --json and unpause through the command)",
    "kiqpy queue unpause mail":
        "tests/test_queue_pause.py::test_the_queue_command_pauses_lists_and_unpauses "
        "(pause, list, --json and unpause through the command)",
    "kiqpy queue list":
        "tests/test_queue_pause.py::test_the_queue_command_pauses_lists_and_unpauses "
        "(pause, list, --json and unpause through the command)",
    "kiqpy enqueue":
        ADMIN + "test_enqueue_pushes_a_class_by_name_without_importing_it "
                "(by name, --queue, --json)",
    "kiqpy enqueue CLASS [ARGS_JSON]":
        ADMIN + "test_enqueue_refuses_bad_input_with_a_usage_error "
                "(ARGS_JSON that is not a JSON array)",
    "kiqpy retry":
        ADMIN + "test_retry_takes_jids_from_the_retry_and_dead_sets_to_their_queues "
                "(JIDs from both sets)",
    "kiqpy retry JID...":
        ADMIN + "test_retry_takes_jids_from_the_retry_and_dead_sets_to_their_queues "
                "(JIDs from both sets)",
    "kiqpy retry --all":
        ADMIN + "test_retry_and_kill_all_move_a_whole_set "
                "(--all, --from dead)",
    "kiqpy kill":
        ADMIN + "test_kill_and_delete_find_the_set_that_holds_each_jid "
                "(kill from schedule and retry)",
    "kiqpy kill JID...":
        ADMIN + "test_kill_and_delete_find_the_set_that_holds_each_jid "
                "(kill from schedule and retry)",
    "kiqpy delete":
        ADMIN + "test_kill_and_delete_find_the_set_that_holds_each_jid "
                "(delete, with and without --from)",
    "kiqpy delete JID...":
        ADMIN + "test_kill_and_delete_find_the_set_that_holds_each_jid "
                "(delete, with and without --from)",
    "kiqpy clear":
        ADMIN + "test_clear_empties_a_set_or_a_queue "
                "(clear retry, clear queue NAME)",
    "kiqpy clear retry":
        ADMIN + "test_clear_empties_a_set_or_a_queue "
                "(clear retry, clear queue NAME)",
    "kiqpy clear dead":
        ADMIN + "test_on_a_terminal_a_destructive_command_asks_first "
                "(clear dead, answered y on a pty)",
    "kiqpy clear schedule":
        ADMIN + "test_clear_empties_a_set_or_a_queue "
                "(clear schedule)",
    "kiqpy clear queue NAME":
        ADMIN + "test_clear_empties_a_set_or_a_queue "
                "(clear queue mail keeps it paused)",
    "kiqpy process":
        ADMIN + "test_process_list_quiet_dump_and_stop_a_real_worker "
                "(list, quiet, dump, stop of a real worker)",
    "kiqpy process quiet ID":
        ADMIN + "test_process_list_quiet_dump_and_stop_a_real_worker "
                "(list, quiet, dump, stop of a real worker)",
    "kiqpy top":
        "tests/test_cli_top.py::test_top_shows_a_live_worker_and_its_keys_act_on_it "
        "(Textual's pilot drives the app against a real worker)",
    "kill -- -PGID":
        "tests/test_supervisor.py::test_ctrl_c_to_the_whole_group_drains_children_gracefully "
        "(signals a -p 2 supervisor's whole process group)",
    # The first job: both lines run as written, from the directory holding myapp/.
    "python -c 'from myapp.jobs import HardWorker; HardWorker.perform_async(\"bob\", 5)'":
        "tests/test_docs.py::test_first_job_runs_in_a_real_worker_as_the_readme_says "
        "(runs both first-job lines against a real worker)",
    "kiqpy -r myapp.jobs":
        "tests/test_docs.py::test_first_job_runs_in_a_real_worker_as_the_readme_says "
        "(runs both first-job lines against a real worker)",
    # make demo = install + `python examples/demo.py`; the install is what .ci/run's make test does.
    "make demo": "tests/test_demo.py::test_demo_runs_every_job_with_a_worker "
                 "(runs examples/demo.py, the target's recipe, worker included)",
    "kiqpy -r demo_jobs -q default,mail --namespace kiqpy-demo":
        "tests/test_demo.py::test_demo_runs_every_job_with_a_worker "
        "(the demo starts this worker and checks it exits 0)",
    # The suite cannot run the command that runs the suite; CI runs it (and make lint).
    "make test": ".ci/run (CI's entry point: make test, then make lint)",
    "make lint": ".ci/run (CI's entry point: make test, then make lint)",
    "make browser": ".ci/run (make test depends on the browser target)",
    "make sidekiq": ".ci/run (make test depends on the sidekiq target)",
    "pip install -e .": "tests/test_packaging.py::test_editable_install_imports_kiqpy_middleware_"
                        "outside_the_repo (an editable install, imported outside the repo)",
    "pip install -e '.[dev]'": ".ci/run (make test's install step runs exactly this)",
    "kiqpy worker": "tests/test_cli.py::test_worker_command_is_the_same_as_no_command "
                    "(kiqpy worker parses to the same settings as kiqpy)",
    "kiqpy -r examples.<name>.jobs": "tests/test_examples.py::test_readme_commands_name_existing_"
                                     "files_and_modules (each example README's commands)",
    "python -m examples.<name>...": "tests/test_examples.py::test_readme_commands_name_existing_"
                                    "files_and_modules (each example README's commands)",
    "kill -9": "tests/test_faults.py::test_kill_9_of_busy_workers_again_and_again_loses_nothing "
               "(SIGKILL of busy workers)",
    "kill -USR1": "tests/test_supervisor.py::test_pidfile_and_logfile_with_reopen_on_usr1 "
                  "(USR1 reopens --logfile)",
    "python manage.py kiqpy": "tests/test_contrib_django.py::test_push_inside_atomic_waits_for_"
                              "commit_and_the_worker_finds_the_row (the worker fixture)",
    "python manage.py kiqpy -c 10": "tests/test_contrib_examples.py::test_django_app_runs_as_its_"
                                    "readme_says (python manage.py kiqpy -c 2)",
    "python manage.py kiqpy --help": "tests/test_contrib_django.py::test_manage_py_kiqpy_help_"
                                     "lists_kiqpys_commands (its usage and commands)",
}

# command -> why it cannot run here
NOT_RUNNABLE = {
    "pip install 'kiqpy[django]'": "installs from PyPI (no network in tests); make test's "
                                   "'.[dev]' installs Django",
    "pip install 'kiqpy[flask]'": "installs from PyPI (no network in tests); make test's "
                                  "'.[dev]' installs Flask",

    "pip install 'kiqpy[asyncio]'": "installs from PyPI (no network in tests); uvloop, the "
                                    "extra's one package, is installed by make test's '.[dev]'",
    "pip install 'kiqpy[web]'": "installs from PyPI (no network in tests); the extra is "
                                "installed by make test's '.[dev]'",
    "pip install 'kiqpy[tui]'": "installs from PyPI (no network in tests); make test's '.[dev]' "
                                "install includes textual",
    "pip install -e '.[web]'": "reinstalls the package the suite runs from; make test's "
                               "'.[dev]' install includes the same extra",
    "make install": "every make test runs it first (test: install redis browser); rerunning "
                    "it here would reinstall the venv the suite runs from",
    "docker stop --time 35": "needs Docker; the TERM-and-wait it relies on is "
                             "tests/test_shutdown.py",
    "PYTEST_ARGS='-m \"not slow\"' make test": "runs the suite this test is part of",
    "make clean": "deletes the .venv the suite runs from",
    ".venv/bin/python bench/bench.py --quick": "a measurement, not a check, and it loads the "
                                               "machine; run by hand",
    "make bench": "a minutes-long measurement, not a check; bench/bench.py is run by hand",
    "make bench BENCH_ARGS=--cluster": "a measurement that starts a 3-master Redis Cluster, not "
                                       "a check; tests/test_cluster.py runs Cluster itself",
    "make bench-compare": "installs six other job systems and runs for about 13 minutes; its "
                          "harness is checked by tests/test_bench_compare.py (--quick --only "
                          "kiqpy)",
    "make soak": "300 s of chaos by design; its kind of faults is tests/test_faults.py",
    "make soak DURATION=60": "60 s of chaos; its kind of faults is tests/test_faults.py",
}


def _strip_comment(line: str) -> str:
    return re.sub(r"\s+#.*$", "", line).strip()


def _looks_like_command(line: str) -> bool:
    words = line.split()
    while words and ASSIGNMENT.fullmatch(words[0]):
        words = words[1:]
    return bool(words) and re.fullmatch(r"[a-z][a-z0-9_-]*", words[0]) is not None


def _program(span: str) -> str:
    try:
        words = shlex.split(span)
    except ValueError:
        return ""
    while words and re.match(r"[A-Z_][A-Z0-9_]*=", words[0]):
        words = words[1:]
    return os.path.basename(words[0]) if words else ""


def readme_commands(text: str = README) -> list[str]:
    """Every command README.md shows, once each, in order."""
    found: list[str] = []
    for lang, body in FENCE.findall(text):
        lines = [line.strip() for line in body.splitlines()]
        found += [m.group(1).strip() for line in lines
                  if (m := re.search(r"#.*\brun: (.+)$", line))]
        if lang == "ini":
            found += [line.split("=", 1)[1] for line in lines
                      if line.startswith(("ExecStart=", "ExecReload=", "ExecStop="))]
            continue
        commands = [_strip_comment(re.sub(r"^\$ ", "", line)) for line in lines]
        commands = [c for c in commands if c]
        if lang in SHELL_LANGS or (lang == "" and commands
                                   and all(_looks_like_command(c) for c in commands)):
            found += commands
    prose = FENCE.sub("", text)
    found += [span for span in re.findall(r"`([^`\n]+)`", prose)
              if " " in span.strip() and _program(span) in INLINE_PROGRAMS]
    return list(dict.fromkeys(found))


def test_the_extractor_finds_the_kinds_of_command_the_readme_has():
    sample = ("```sh\nmake demo   # a comment\n```\n```\nkiqpy web\n```\n"
              "```\nkiqpy.errors.OptionsError: x\n```\n```\nkiqpy/cli.py   the CLI\n```\n"
              "```toml\n# a.toml; run: kiqpy -C a.toml\nx = 1\n```\n"
              "```ini\n[Service]\nExecStart=/bin/kiqpy -r a\n```\n"
              "Run `redis-cli PING`, not `kiqpy.embed` or `QUEUE`.\n")
    assert readme_commands(sample) == ["make demo", "kiqpy web", "kiqpy -C a.toml",
                                       "/bin/kiqpy -r a", "redis-cli PING"]


def test_every_readme_command_is_run_somewhere():
    commands = readme_commands()
    assert "make demo" in commands and "kiqpy -C kiqpy.toml" in commands

    lists = {"RUN_HERE": RUN_HERE, "COVERED_ELSEWHERE": COVERED_ELSEWHERE,
             "NOT_RUNNABLE": NOT_RUNNABLE}
    uncovered = [c for c in commands if not any(c in entries for entries in lists.values())]
    assert not uncovered, (
        "README.md commands that nothing runs: " + "; ".join(map(repr, uncovered)) + ". Run each "
        "in tests/test_readme_commands.py (and add it to RUN_HERE), or add it to "
        "COVERED_ELSEWHERE with the test that runs it, or to NOT_RUNNABLE with the reason.")
    for name, entries in lists.items():
        stale = sorted(set(entries) - set(commands))
        assert not stale, f"{name} lists commands README.md no longer has: {stale}"
    doubled = set(RUN_HERE) & set(COVERED_ELSEWHERE) | set(NOT_RUNNABLE) & (
        set(RUN_HERE) | set(COVERED_ELSEWHERE))
    assert not doubled, f"listed twice: {doubled}"

    # Every test named exists.
    here = Path(__file__).read_text()
    for command, test in RUN_HERE.items():
        assert re.search(rf"^def {test}\(", here, re.M), f"{command!r}: no test {test} here"
    for command, where in COVERED_ELSEWHERE.items():
        match = re.fullmatch(r"(\S+?)(?:::(\w+))? \(.+\)", where)
        assert match, f"{command!r}: write 'path[::test_name] (why)', not {where!r}"
        path, test = ROOT / match.group(1), match.group(2)
        assert path.is_file(), f"{command!r}: {path} does not exist"
        if test:
            assert re.search(rf"^def {test}\(", path.read_text(), re.M), (
                f"{command!r}: {match.group(1)} has no test {test}")
    for command, reason in NOT_RUNNABLE.items():
        assert reason.strip(), f"{command!r}: say why it cannot run"


# -- running them ------------------------------------------------------------------------------
KIQPY = Path(sys.executable).parent / "kiqpy"


@pytest.fixture
def app_dir() -> Iterator[Path]:
    """A directory holding the README's myapp package and kiqpy.toml."""
    with tempfile.TemporaryDirectory(prefix="kiqpy-readme-") as name:
        path = Path(name)
        write_files(path, "first-job")
        (path / "kiqpy.toml").write_text(block("toml"))
        yield path


def _argv_env(command: str, redis_url: str, app_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The command as argv and env, with this file's substitutions (see the docstring)."""
    assert command in readme_commands(), f"not a README command: {command!r}"
    words = shlex.split(command)
    env = {**_clean_env(), "REDIS_URL": redis_url, "PYTHONPATH": str(app_dir),
           "PYTHONUNBUFFERED": "1"}
    while re.match(r"[A-Z_][A-Z0-9_]*=", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    if os.path.basename(words[0]) == "kiqpy":
        if not KIQPY.exists():
            pytest.skip(f"no kiqpy script next to {sys.executable}")
        words[0] = str(KIQPY)
    return words, env


class Started(LoggedProcess):
    """A README command running in the background, output to a file."""

    def __init__(self, command: str, redis_url: str, app_dir: Path) -> None:
        argv, env = _argv_env(command, redis_url, app_dir)
        super().__init__(argv, app_dir, env, app_dir / f"out-{time.monotonic_ns()}.log")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 30 s after TERM:\n{self.log()[-3000:]}") from None


def _run_a_job_then_stop(worker: Started, r: redis.Redis, queue: str, processes: int,
                         namespace: str = "", info: dict[str, object] | None = None) -> None:
    """With a HardWorker job waiting on ``queue``: it runs, ``processes`` processes register,
    and TERM stops them all with exit status 0."""
    prefix = f"{namespace}:" if namespace else ""

    def check() -> bool:
        if worker.process.poll() is not None:
            raise AssertionError(f"exited with {worker.process.returncode}:\n{worker.log()}")
        return (r.scard(f"{prefix}processes") == processes
                and "working hard for bob, 5 times" in worker.log()
                and r.llen(f"{prefix}queue:{queue}") == 0)

    wait_for(check, timeout=20, interval=0.05,
             message=f"{processes} process(es) and the job on {queue!r}")
    for member in r.smembers(f"{prefix}processes"):
        identity = member.decode() if isinstance(member, bytes) else member
        found = json.loads(r.hget(f"{prefix}{identity}", "info") or "{}")
        assert {k: found.get(k) for k in info or {}} == (info or {}), found
    assert worker.stop() == 0, worker.log()[-3000:]
    assert r.scard(f"{prefix}processes") == 0


def _push(redis_url: str, queue: str, namespace: str = "") -> None:
    client = kiqpy.Client(kiqpy.Config(redis_url=redis_url, namespace=namespace))
    client.push({"class": "myapp.jobs.HardWorker", "args": ["bob", 5], "queue": queue})


WORKER_COMMANDS = [
    # command, the queue its job goes to, processes it runs, namespace
    ("kiqpy -r myapp.jobs -q critical,default,low", "low", 1, ""),
    ("kiqpy -r myapp.jobs -q critical:1,default:1", "default", 1, ""),
    ("kiqpy -r myapp.jobs -q critical:3,default:2,low:1", "low", 1, ""),
    ("kiqpy -r myapp.jobs -q 'critical,*,!low'", "mail", 1, ""),
    ("COUNT=5 QUEUE='*' kiqpy -r myapp.jobs", "mail", 5, ""),
    ("kiqpy -r myapp.jobs -p auto -q critical,*", "mail", os.cpu_count() or 1, ""),
    ("kiqpy -C kiqpy.toml", "mail", 1, "myapp"),
]
# what each process's heartbeat must say, beyond running the job
INFO: dict[str, dict[str, object]] = {"kiqpy -C kiqpy.toml": {"tag": "batch", "concurrency": 25},
        "kiqpy -r myapp.jobs -p auto -q critical,*": {"concurrency": 10}}


@pytest.mark.slow
@pytest.mark.parametrize(("command", "queue", "processes", "namespace"), WORKER_COMMANDS,
                         ids=[c[0] for c in WORKER_COMMANDS])
def test_worker_commands(r, redis_url, app_dir, command, queue, processes, namespace):
    # Given a job waiting on a queue the command listens to
    _push(redis_url, queue, namespace)

    # When the README's command runs, then it runs the job in as many processes as it says,
    # and TERM stops it cleanly
    with Started(command, redis_url, app_dir) as worker:
        _run_a_job_then_stop(worker, r, queue, processes, namespace, INFO.get(command))


@pytest.mark.slow
def test_systemd_exec_start_and_exec_reload(r, redis_url, app_dir):
    unit = block_lines("ini")
    start = unit["ExecStart"]
    reload = unit["ExecReload"]
    _push(redis_url, "critical")
    with Started(start, redis_url, app_dir) as worker:
        wait_for(lambda: "working hard for bob, 5 times" in worker.log()
                 and r.scard("processes") == 1, timeout=15, message="the job to run")
        [identity] = [m.decode() for m in r.smembers("processes")]
        # ExecReload, as systemd runs it: TSTP quiets the worker
        done = subprocess.run(["sh", "-c", reload], capture_output=True, text=True, timeout=10,
                              env={**os.environ, "MAINPID": str(worker.process.pid)})
        assert done.returncode == 0, done.stderr
        wait_for(lambda: "no new jobs will be fetched" in worker.log(), timeout=10,
                 message="the worker to go quiet")
        assert identity in worker.log()
        assert worker.stop() == 0


def block_lines(lang: str) -> dict[str, str]:
    """``key=value`` lines of the README's one fenced block in ``lang``."""
    [body] = [body for found, body in FENCE.findall(README) if found == lang]
    return dict(line.strip().split("=", 1) for line in body.splitlines() if "=" in line)


ADMIN_JID = "51d3c3c2ee1aa1b9c4f4b0a5"


def _failed(r: redis.Redis, jid: str = ADMIN_JID) -> None:
    """The README's HardWorker job, failed once, in the retry set."""
    job = {"class": "myapp.jobs.HardWorker", "args": ["bob", 5], "queue": "default", "jid": jid,
           "retry": True, "retry_count": 0, "error_class": "ValueError", "error_message": "x"}
    r.zadd("retry", {encode(job): time.time() + 3600})


@pytest.mark.slow
def test_admin_from_the_shell(r, redis_url, app_dir):
    # kiqpy enqueue: by name as given, then checked against myapp.jobs and scheduled
    done = _run("kiqpy enqueue myapp.jobs.HardWorker '[\"bob\", 5]'", redis_url, app_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("enqueued myapp.jobs.HardWorker on default: jid ")
    done = _run("kiqpy enqueue HardWorker '[\"bob\", 5]' -r myapp.jobs --in 60", redis_url,
                app_dir)
    assert done.returncode == 0, done.stderr
    assert "scheduled myapp.jobs.HardWorker on default for " in done.stdout
    assert (r.llen("queue:default"), r.zcard("schedule")) == (1, 1)

    # retry JID: to its queue; kill --all --yes: the retry set to the dead set; delete JID
    _failed(r)
    done = _run(f"kiqpy retry {ADMIN_JID}", redis_url, app_dir)
    assert done.stdout == f"retried {ADMIN_JID} (from retry)\n", done.stderr
    assert r.llen("queue:default") == 2
    _failed(r)
    done = _run("kiqpy kill --all --yes", redis_url, app_dir)
    assert (done.stdout, r.zcard("retry"), r.zcard("dead")) == (
        "killed 1 jobs (from retry)\n", 0, 1), done.stderr
    done = _run(f"kiqpy delete {ADMIN_JID} --from dead", redis_url, app_dir)
    assert done.returncode == 2 and "pass --yes" in done.stderr  # no terminal here
    argv, env = _argv_env(f"kiqpy delete {ADMIN_JID} --from dead", redis_url, app_dir)
    status, text = in_a_terminal(argv, env, app_dir, "y")
    assert status == 0 and f"deleted {ADMIN_JID} (from dead)" in text and not r.zcard("dead")

    # clear queue mail, on a terminal
    client = kiqpy.Client(kiqpy.Config(redis_url=redis_url))
    for n in range(2):
        client.push({"class": "myapp.jobs.HardWorker", "args": ["bob", n], "queue": "mail"})
    argv, env = _argv_env("kiqpy clear queue mail", redis_url, app_dir)
    status, text = in_a_terminal(argv, env, app_dir, "y")
    assert "Delete all 2 jobs of the queue mail. Continue? [y/N]" in text
    assert status == 0 and "cleared the queue mail: 2 jobs deleted" in text
    assert not r.exists("queue:mail")

    # process list, and process quiet with a host:pid prefix
    with WorkerProcess(redis_url) as worker:
        identity = identity_of(worker)
        wait_for(lambda: r.exists(identity), message="the first heartbeat")
        done = _run("kiqpy process list", redis_url, app_dir)
        assert done.stdout.splitlines()[1].startswith(identity), done.stdout
        host_pid = identity.rsplit(":", 1)[0]
        argv, env = _argv_env("kiqpy process quiet host-1:4242", redis_url, app_dir)
        done = subprocess.run([host_pid if w == "host-1:4242" else w for w in argv],
                              cwd=app_dir, env=env, capture_output=True, text=True, timeout=30)
        assert done.stdout.startswith(f"asked {identity} to quiet"), done.stderr
        wait_for(lambda: r.hget(identity, "quiet") == b"true", message="the worker to quiet")


@pytest.mark.slow
def test_remote_signal_stats_and_check(r, redis_url, app_dir):
    redis_cli = shutil.which("redis-cli")
    env = {"PYTHONPATH": str(app_dir)}
    with WorkerProcess(redis_url, "-q", "default,mail", require="myapp.jobs",
                       env=env) as worker:
        identity = identity_of(worker)
        wait_for(lambda: r.sismember("processes", identity), message="the heartbeat")

        # kiqpy stats shows the process; kiqpy check [-q default,mail], in both forms, passes
        stats = _run("kiqpy stats", redis_url, app_dir)
        assert stats.returncode == 0, stats.stderr
        assert identity.split(":")[0] in stats.stdout
        done = _run("kiqpy check", redis_url, app_dir)
        assert done.returncode == 0 and done.stdout.startswith("ok: "), done.stdout + done.stderr
        for args in ([], ["-q", "default,mail"]):
            done = _run("kiqpy check [-q default,mail]", redis_url, app_dir, args)
            assert done.returncode == 0, done.stdout + done.stderr
        assert _run("kiqpy check [-q default,mail]", redis_url, app_dir,
                    ["-q", "low"]).returncode == 1

        if redis_cli is None:
            pytest.skip("redis-cli is not installed")
        # redis-cli SMEMBERS processes names it; LPUSH '<identity>-signals' quiet quiets it
        members = _redis_cli("redis-cli SMEMBERS processes", redis_url)
        assert identity in members.splitlines()
        command = "redis-cli LPUSH '<identity>-signals' quiet"
        assert _redis_cli(command.replace("<identity>", identity), redis_url,
                          original=command).strip() == "1"
        wait_for(lambda: r.hget(identity, "quiet") == b"true", timeout=10,
                 message="the worker to go quiet")
        done = _run("kiqpy check [-q default,mail]", redis_url, app_dir, [])
        assert done.returncode == 1, done.stdout + done.stderr
        worker.terminate()
        assert worker.wait() == 0


def _stats_shape(output: str) -> list[str]:
    """What ``kiqpy stats`` prints, less the values: section titles (counts blanked), overview
    labels and table headers, with runs of spaces squeezed."""
    shape = []
    for line in output.splitlines():
        if line.startswith("---- "):
            shape.append(re.sub(r"\(\d+\)", "(N)", line))
        elif re.fullmatch(r"\s*[A-Z][a-z]+: .*", line):
            shape.append(line.split(":")[0].strip() + ":")
        elif re.fullmatch(r"[A-Z]+(\s+[A-Z]+)+", line):
            shape.append(" ".join(line.split()))
    return shape


@pytest.mark.slow
def test_kiqpy_stats_commands(r, redis_url, app_dir):
    # Given the README's example: jobs waiting on two queues, and one worker
    # (-q critical,default -g web-1 -c 5) busy with one job
    client = kiqpy.Client(kiqpy.Config(redis_url=redis_url))
    for queue, count in (("mail", 12), ("low", 1)):
        for n in range(count):
            client.push({"class": "Count", "args": [n], "queue": queue})
    client.push({"class": "Sleepy", "args": ["stats", 30]})
    with WorkerProcess(redis_url, "-q", "critical,default", "-g", "web-1", "-c", "5") as worker:
        identity = identity_of(worker)
        wait_for(lambda: r.get("test:started:stats") and r.hget(identity, "busy") == b"1",
                 message="the worker to be busy")

        # When kiqpy stats runs, then it prints the three parts the README shows, shaped alike
        done = _run("kiqpy stats", redis_url, app_dir)
        assert done.returncode == 0, done.stderr
        assert _stats_shape(done.stdout) == _stats_shape(block("stats-output"))
        assert re.search(rf"^{re.escape(identity)}\s+web-1\s+critical,default\s+1\s+5\s",
                         done.stdout, re.M), done.stdout
        assert re.search(r"^mail\s+12\s", done.stdout, re.M), done.stdout

        # kiqpy stats queues prints that part alone
        done = _run("kiqpy stats queues", redis_url, app_dir)
        assert done.returncode == 0, done.stderr
        assert [s for s in _stats_shape(done.stdout) if s.startswith("----")] == [
            "---- Queues (N) ----"]

        # kiqpy stats --json: the same data, under the keys the README names
        done = _run("kiqpy stats --json", redis_url, app_dir)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert set(data) == {"overview", "processes", "queues"}
        assert data["overview"]["enqueued"] == 13 and data["overview"]["workers_size"] == 1
        assert [p["identity"] for p in data["processes"]] == [identity]
        assert {q["name"]: q["size"] for q in data["queues"]} == {"mail": 12, "low": 1,
                                                                  "default": 0}
        worker.kill9()


def _run(command: str, redis_url: str, app_dir: Path, args: list[str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (``args`` replacing an optional ``[...]`` part) to its end."""
    if args is not None:
        argv, env = _argv_env(command, redis_url, app_dir)
        argv = [w for w in argv if not (w.startswith("[") or w.endswith("]"))] + args
    else:
        argv, env = _argv_env(command, redis_url, app_dir)
    return subprocess.run(argv, cwd=app_dir, env=env, capture_output=True, text=True,
                          timeout=30)


def _redis_cli(command: str, redis_url: str, original: str | None = None) -> str:
    assert (original or command) in readme_commands()
    words = shlex.split(command)
    assert words[0] == "redis-cli"
    done = subprocess.run(["redis-cli", "-u", redis_url, *words[1:]], capture_output=True,
                          text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    return done.stdout


WEB_COMMANDS = [
    "kiqpy web",
    "kiqpy web --port 8080 --redis-url redis://10.0.0.5:6379/0 --namespace myapp",
    "KIQPY_WEB_AUTH=admin:s3cret kiqpy web --host 0.0.0.0",
]


@pytest.mark.slow
def test_kiqpy_web_commands(r, redis_url, app_dir):
    pytest.importorskip("waitress")
    from tests.test_web import _fetch

    for command in WEB_COMMANDS:
        port = free_port()
        argv, env = _argv_env(command, redis_url, app_dir)
        if "--port" in argv:
            del argv[argv.index("--port"):argv.index("--port") + 2]
        argv = [redis_url if w.startswith("redis://10.") else w for w in argv]
        argv += ["--port", str(port)]
        with subprocess.Popen(argv, cwd=app_dir, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT) as server:
            try:
                base = f"http://127.0.0.1:{port}"
                health = base + "/health"
                assert wait_for(lambda: _fetch(health), message=command) == 200  # noqa: B023
                if "KIQPY_WEB_AUTH" in command:
                    assert _fetch(base + "/") == 401
                    assert _fetch(base + "/", auth=("admin", "s3cret")) == 200
                else:
                    assert _fetch(base + "/") == 200
            finally:
                server.terminate()
                server.communicate(timeout=10)


def test_make_help():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^\s+demo\s", done.stdout, re.M)
