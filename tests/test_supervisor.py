"""Running it like production: `-p N` under a supervisor, recycling, queue patterns, the
health port, `kiqpy check`, pidfile and logfile (kiqpy/server/supervisor.py, kiqpy/cli/serve.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import app_jobs
from tests.conftest import wait_for
from tests.redis_server import free_port
from tests.workers import ROOT, WorkerProcess, exit_within, http_get, log_events

pytestmark = pytest.mark.slow


def child_pids(r) -> set[int]:
    return {int(m.decode().split(":")[1]) for m in r.smembers("processes")
            if r.exists(m)}


def ran(r) -> set[int]:
    return {int(n) for n in r.smembers("test:seen")}


def test_three_processes_a_killed_child_is_replaced_and_its_job_recovered(config, r, redis_url):
    # Given a supervisor with three worker processes, each busy with a slow job
    with WorkerProcess(redis_url, "-p", "3", "-c", "1") as sup:
        wait_for(lambda: len(child_pids(r)) == 3, timeout=20, message="three identities")
        first = child_pids(r)
        assert sup.pid not in first
        for n in range(3):
            app_jobs.Tracked.perform_async(n, 1.5)
        wait_for(lambda: r.scard("test:began") == 3, message="all three to start")
        # When one child is killed with -9 mid-job
        victim = sorted(first)[0]
        os.kill(victim, signal.SIGKILL)
        # Then the supervisor starts a replacement, and the killed child's job runs again
        sup.wait_for_log("worker process died; restarting", timeout=10)
        wait_for(lambda: len(child_pids(r) - {victim}) == 3, timeout=20,
                 message="a replacement child")
        wait_for(lambda: ran(r) == {0, 1, 2}, timeout=20, message="every job to finish")
        wait_for(lambda: not list(r.scan_iter("*:inflight:*")), timeout=20,
                 message="no in-flight job left")
        # And TERM to the supervisor drains every child and exits 0
        sup.terminate()
        code, _ = exit_within(sup, 30)
        assert code == 0, sup.log()[-2000:]
    assert r.scard("processes") == 0


def test_term_drains_every_child_without_losing_a_job(config, r, redis_url):
    app_jobs.Tracked.perform_bulk([[n, 0.05] for n in range(60)])
    with WorkerProcess(redis_url, "-p", "2", "-c", "2", "-t", "5") as sup:
        wait_for(lambda: r.scard("test:seen") >= 5, timeout=20, message="work under way")
        sup.terminate()
        code, _ = exit_within(sup, 30)
        assert code == 0, sup.log()[-2000:]
    # Every job either ran or is back in its queue; none is stuck in flight
    queued = {int(job[0]) for job in _queued_args(r)}
    assert ran(r) | queued == set(range(60))
    assert not [k for k in r.scan_iter("*:inflight:*") if r.llen(k)]


def test_ctrl_c_to_the_whole_group_drains_children_gracefully(config, r, redis_url):
    # A terminal's Ctrl-C (and supervisord's stopasgroup) signals every process in the
    # foreground group. Each child must still see one stop signal, not the group's SIGINT
    # plus the supervisor's forwarded TERM, which would be a "second signal: exit now".
    app_jobs.Sleepy.perform_bulk([[f"g{n}", 1.5] for n in range(4)])
    with WorkerProcess(redis_url, "-p", "2", "-c", "2", "-t", "15", new_session=True) as sup:
        wait_for(lambda: all(r.get(f"test:started:g{n}") for n in range(4)), timeout=30,
                 message="four jobs running on two children")
        sup.signal_group(signal.SIGINT)
        code, _ = exit_within(sup, 30)
        assert code == 0, sup.log()[-3000:]
    assert all(r.get(f"test:finished:g{n}") for n in range(4)), sup.log()[-3000:]
    assert [e.get("clean") for e in log_events(sup) if e.get("event") == "stopped"] == [True] * 2
    assert "second stop signal" not in sup.log()
    assert not [k for k in r.scan_iter("*:inflight:*") if r.llen(k)]


def _queued_args(r):
    from kiqpy.payload import decode

    return [decode(p)["args"] for p in r.lrange("queue:default", 0, -1)]


def test_max_jobs_recycles_a_child_and_every_job_runs(config, r, redis_url):
    app_jobs.Tracked.perform_bulk([[n, 0] for n in range(30)])
    with WorkerProcess(redis_url, "--max-jobs", "8", "-c", "2") as sup:
        wait_for(lambda: ran(r) == set(range(30)), timeout=30, message="all 30 jobs")
        wait_for(lambda: sum(e.get("event") == "replacing worker process"
                             for e in log_events(sup)) >= 2, message="recycling")
        sup.terminate()
        assert exit_within(sup, 30)[0] == 0
    assert "reached --max-jobs" in sup.log()


def test_max_memory_quiets_and_replaces_a_child_and_every_job_runs(config, r, redis_url):
    # Every worker process is over 1 MB, so each is replaced about every 2 s, finishing its
    # running jobs first.
    app_jobs.Tracked.perform_bulk([[n, 0.02] for n in range(40)])
    with WorkerProcess(redis_url, "--max-memory", "1", "-c", "2") as sup:
        sup.wait_for_log("over its memory limit; recycling", timeout=15)
        wait_for(lambda: ran(r) == set(range(40)), timeout=40, message="all 40 jobs")
        sup.terminate()
        assert exit_within(sup, 30)[0] == 0


def test_star_picks_up_a_queue_created_after_start_and_exclusions_hold(config, r, redis_url):
    with WorkerProcess(redis_url, "-q", "*,!low") as worker:
        worker.wait_for_log('"starting"')
        app_jobs.Record.set(queue="brand_new").perform_async("new")
        app_jobs.Record.set(queue="low").perform_async("low")
        wait_for(lambda: r.llen("test:ran") == 1, timeout=15, message="the new queue's job")
        assert r.lrange("test:ran", 0, -1) == [b"('new',)"]
        assert r.llen("queue:low") == 1
        # Its heartbeat reports the queues it actually listens to
        identity = next(iter(r.smembers("processes")))
        wait_for(lambda: b"brand_new" in (r.hget(identity, "info") or b""),
                 message="the resolved queues in the process info")
        worker.terminate()
        assert exit_within(worker, 20)[0] == 0


@pytest.mark.parametrize("queue, message", [("!low", "exclusions need something"),
                                            ("mail_[a", "unbalanced")])
def test_bad_queue_patterns_are_usage_errors(redis_url, queue, message):
    done = subprocess.run([sys.executable, "-m", "kiqpy.cli", "-q", queue],
                          capture_output=True, text=True, timeout=30, cwd=ROOT,
                          env={**os.environ, "REDIS_URL": redis_url})
    assert done.returncode == 2
    assert message in done.stderr


@pytest.mark.parametrize("processes", ["1", "2"])
def test_health_port_answers_200_while_workers_beat(config, r, redis_url, processes):
    port = free_port()
    with WorkerProcess(redis_url, "-p", processes, "--health-port", str(port)) as worker:
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/health")[0] == 200, timeout=20,
                 message="health 200")
        worker.terminate()
        assert exit_within(worker, 20)[0] == 0


def test_kiqpy_check_exit_codes(config, r, redis_url):
    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kiqpy.cli", "check", *args],
                              capture_output=True, text=True, timeout=30, cwd=ROOT,
                              env={**os.environ, "REDIS_URL": redis_url})

    assert check().returncode == 1
    with WorkerProcess(redis_url, "-q", "default,mail") as worker:
        wait_for(lambda: check().returncode == 0, timeout=20, message="check to pass")
        assert check("-q", "mail").returncode == 0
        missing = check("-q", "mail,reports")
        assert missing.returncode == 1 and "reports" in missing.stdout
        # -q as the worker takes it: weights, and patterns over the queues Redis knows
        assert check("-q", "mail:3,default:1").returncode == 0
        app_jobs.Record.set(queue="mail").perform_async("x")
        assert check("-q", "*").returncode == 0
        app_jobs.Record.set(queue="reports").perform_async("x")
        star = check("-q", "*")
        assert star.returncode == 1 and "reports" in star.stdout
        assert check("-q", "*,!reports").returncode == 0
        assert check("-q", "mail_*").returncode == 0  # matches nothing known: nothing missing
        bad = check("-q", "critical,2")
        assert bad.returncode == 2 and "critical:2" in bad.stderr
        env_queue = subprocess.run([sys.executable, "-m", "kiqpy.cli", "check"],
                                   capture_output=True, text=True, timeout=30, cwd=ROOT,
                                   env={**os.environ, "REDIS_URL": redis_url,
                                        "QUEUE": "reports"})
        assert env_queue.returncode == 1 and "reports" in env_queue.stdout
        worker.terminate()
        exit_within(worker, 20)
    down = subprocess.run([sys.executable, "-m", "kiqpy.cli", "check", "--redis-url",
                           "redis://127.0.0.1:1/0"], capture_output=True, text=True, timeout=30,
                          cwd=ROOT)
    assert down.returncode == 1 and "cannot reach Redis" in down.stdout


def test_pidfile_and_logfile_with_reopen_on_usr1(config, r, redis_url, tmp_path):
    pidfile, logfile = tmp_path / "kiqpy.pid", tmp_path / "kiqpy.log"
    with WorkerProcess(redis_url, "--pidfile", str(pidfile), "--logfile", str(logfile)) as w:
        wait_for(lambda: pidfile.exists() and "starting" in _text(logfile), timeout=20,
                 message="pidfile and log")
        assert int(pidfile.read_text()) == w.pid
        # logrotate moves the file away, then sends USR1
        rotated = tmp_path / "kiqpy.log.1"
        logfile.rename(rotated)
        w.signal(signal.SIGUSR1)
        wait_for(logfile.exists, message="log reopened")
        app_jobs.Record.perform_async("after rotate")
        wait_for(lambda: '"done"' in _text(logfile), timeout=15, message="a line in the new log")
        w.terminate()
        assert exit_within(w, 20)[0] == 0
    assert not pidfile.exists()
    assert '"done"' not in rotated.read_text()


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "kiqpy.service"
    text = (ROOT / "examples/deploy/kiqpy.service").read_text()
    # verify wants the binary to exist and the user to be known on this machine
    unit.write_text(text.replace("/srv/app/.venv/bin/kiqpy", sys.executable)
                    .replace("User=app", "User=root"))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)
    problems = [line for line in done.stderr.splitlines() if "kiqpy.service" in line]
    assert done.returncode == 0 or not problems, done.stderr


def test_children_stop_when_the_supervisor_is_killed(config, r, redis_url):
    # Given a supervisor with two children
    with WorkerProcess(redis_url, "-p", "2") as sup:
        wait_for(lambda: len(child_pids(r)) == 2, timeout=20, message="two children")
        children = child_pids(r)
        # When the supervisor is killed with -9
        sup.kill9()
    # Then the children notice, stop gracefully and leave the registry
    wait_for(lambda: not any(_alive(pid) for pid in children), timeout=20,
             message="the orphaned children to exit")
    assert r.scard("processes") == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("preload", [True, False])
def test_preload_imports_the_app_once_in_the_supervisor(config, r, redis_url, preload):
    flags = ["--preload"] if preload else []
    with WorkerProcess(redis_url, "-p", "2", *flags, require="tests.app_preload") as sup:
        wait_for(lambda: len(child_pids(r)) == 2, timeout=20, message="two children")
        importers = {int(p) for p in r.lrange("test:imported_by", 0, -1)}
        if preload:
            # Only the supervisor imported it; the forked children share that import
            assert importers == {sup.pid}
        else:
            assert importers == child_pids(r)
        app_jobs.Record.perform_async("preloaded")
        wait_for(lambda: r.llen("test:ran") == 1, message="a job to run in a child")
        sup.terminate()
        assert exit_within(sup, 20)[0] == 0


def test_a_silent_health_client_does_not_stall_the_supervisor(config, r, redis_url):
    # Under -p the health server runs in the supervisor's own loop; a client that connects
    # and says nothing must not stop it from replacing a dead child or hearing TERM.
    import socket

    port = free_port()
    with WorkerProcess(redis_url, "-p", "2", "--health-port", str(port)) as sup:
        wait_for(lambda: len(child_pids(r)) == 2, timeout=20, message="two children")
        silent = socket.create_connection(("127.0.0.1", port))
        try:
            victim = min(child_pids(r))
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: sum(e.get("event") == "worker process started"
                                 for e in log_events(sup)) == 3,
                     timeout=15, message="a replacement while a health client is silent")
            assert http_get(f"http://127.0.0.1:{port}/health")[0] in (200, 503)
            sup.terminate()
            assert exit_within(sup, 30)[0] == 0
        finally:
            silent.close()


def test_a_quiet_supervisor_starts_replacements_quiet(config, r, redis_url):
    with WorkerProcess(redis_url, "-p", "2") as sup:
        wait_for(lambda: len(child_pids(r)) == 2, timeout=20, message="two children")
        sup.signal(signal.SIGTSTP)
        wait_for(lambda: all(r.hget(m, "quiet") == b"true" for m in r.smembers("processes")),
                 timeout=15, message="both children quiet")
        os.kill(min(child_pids(r)), signal.SIGKILL)
        wait_for(lambda: sum(e.get("event") == "worker process started"
                             for e in log_events(sup)) == 3,
                 timeout=15, message="the replacement child")
        wait_for(lambda: len([m for m in r.smembers("processes")
                              if r.hget(m, "quiet") == b"true"]) >= 2 and
                 all(r.hget(m, "quiet") != b"false" for m in r.smembers("processes")),
                 timeout=15, message="the replacement registered quiet")
        app_jobs.Record.perform_async("must wait")
        # Quiet children take nothing: the job stays queued however long we look
        wait_for(lambda: r.llen("queue:default") == 1, message="the job still queued")
        sup.terminate()
        assert exit_within(sup, 30)[0] == 0
    assert r.llen("queue:default") == 1 and r.llen("test:ran") == 0


def test_a_child_stopped_through_redis_is_not_replaced(config, r, redis_url):
    from kiqpy.api import ProcessSet

    with WorkerProcess(redis_url, "-p", "2") as sup:
        wait_for(lambda: len(child_pids(r)) == 2, timeout=20, message="two children")
        first = sorted(ProcessSet(config), key=lambda p: p.pid)[0]
        first.stop()  # what the dashboard's Stop does
        wait_for(lambda: any(e.get("event") == "worker process stopped through Redis; "
                             "not replacing it" for e in log_events(sup)),
                 timeout=20, message="the supervisor to let the child go")
        assert sum(e.get("event") == "worker process started" for e in log_events(sup)) == 2
        for process in ProcessSet(config):  # "Stop all": the supervisor exits 0 once none left
            process.stop()
        assert exit_within(sup, 30)[0] == 0
    assert "died; restarting" not in sup.log()


def test_memory_recycling_replaces_one_child_at_a_time(config, r, redis_url):
    # Every child is over 1 MB; recycling them all at once would leave no worker running.
    app_jobs.Tracked.perform_bulk([[n, 0.05] for n in range(60)])
    with WorkerProcess(redis_url, "-p", "2", "--max-memory", "1", "-c", "2") as sup:
        wait_for(lambda: sum(e.get("event") == "replacing worker process"
                             for e in log_events(sup)) >= 3, timeout=40, message="recycling")
        sup.terminate()
        assert exit_within(sup, 30)[0] == 0
    outstanding = 0
    for event in log_events(sup):
        if event.get("event") == "worker process over its memory limit; recycling":
            outstanding += 1
            assert outstanding == 1, "two children recycled at once"
        elif event.get("event") == "replacing worker process":
            outstanding -= 1


def test_queue_patterns_size_the_pool_for_every_waiter(config):
    from kiqpy.server.fetch import MAX_WAITERS
    from kiqpy.server.launcher import Launcher

    star = Launcher(config.replace(queues=(("*", 0),), concurrency=3))
    named = Launcher(config.replace(queues=(("a", 0), ("b", 0)), concurrency=3))
    assert star.redis.connection_pool.max_connections >= 3 + MAX_WAITERS
    assert named.redis.connection_pool.max_connections >= 3 + 2


def test_a_killed_childs_jobs_come_back_long_before_its_heartbeat_would_expire(config, r,
                                                                              redis_url):
    # The supervisor reaped the child, so it knows it is dead: it deletes the child's
    # heartbeat hash and a sibling recovers the jobs at its next beat, not after the 60 s TTL.
    with WorkerProcess(redis_url, "-p", "2", "-c", "1", "--heartbeat-interval", "0.5",
                       "--poll-interval", "0.2", "--process-ttl", "60", "-t", "1",
                       fast=False) as sup:
        wait_for(lambda: len(child_pids(r)) == 2, timeout=20, message="two children")
        app_jobs.Sleepy.perform_async("orphan", 30)
        wait_for(lambda: r.get("test:started:orphan"), message="the job to start")
        victim = int(r.get("test:started:orphan"))
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: int(r.get("test:starts:orphan") or 0) == 2, timeout=20,
                 message="the job to run again, within seconds of the kill")
        assert int(r.get("test:started:orphan")) != victim
        sup.terminate()
        assert exit_within(sup, 45)[0] == 0
