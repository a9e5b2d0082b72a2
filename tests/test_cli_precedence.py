"""Where a worker's settings come from, lowest first: built-in defaults < ``kiqpy.configure()``
in a ``-r`` module < the ``-C`` file < environment variables < flags
(kiqpy/cli/commands.py _settings).
Each test runs a real ``kiqpy`` worker and reads what it announces in its heartbeat."""

from __future__ import annotations

from kiqpy.api import ProcessSet
from kiqpy.config import Config
from tests.conftest import wait_for
from tests.workers import WorkerProcess


def announced(redis_url: str, namespace: str, worker: WorkerProcess):
    """The worker's process entry, once its heartbeat is in ``namespace``."""
    def find():
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited:\n{worker.log()[-3000:]}")
        return next((p for p in ProcessSet(Config(redis_url=redis_url, namespace=namespace))
                     if p.pid == worker.pid), None)
    return wait_for(find, timeout=20, message=f"a heartbeat in namespace {namespace!r}")


def stop(worker: WorkerProcess) -> None:
    worker.terminate()
    assert worker.wait() == 0


def test_values_an_app_module_configures_are_not_reset_by_cli_defaults(r, redis_url):
    # Given a -r module that calls kiqpy.configure(concurrency=3, tag="app", queues=appq,
    # namespace="appns"), and no file, env var or flag for those
    with WorkerProcess(redis_url, require="tests.app_configure") as worker:
        # Then the worker runs with the app's values
        process = announced(redis_url, "appns", worker)
        assert (process.concurrency, process.tag, process.queues) == (3, "app", ["appq"])
        stop(worker)


def test_file_beats_app_code_env_beats_file_and_flags_beat_env(r, redis_url, tmp_path):
    # Given the same app module, a -C file, environment variables and flags that overlap:
    #   concurrency: app 3, file 4, env 5          -> 5 (env)
    #   tag:         app "app", file "file"        -> "file"
    #   queues:      app, file, env, flag          -> the flag's
    #   namespace:   app "appns", flag "flagns"    -> "flagns"
    config_file = tmp_path / "kiqpy.toml"
    config_file.write_text('[kiqpy]\nconcurrency = 4\ntag = "file"\nqueues = ["fileq"]\n')
    env = {"KIQPY_CONCURRENCY": "5", "KIQPY_QUEUES": "envq"}
    with WorkerProcess(redis_url, "-C", str(config_file), "-q", "flagq", "--namespace", "flagns",
                       env=env, require="tests.app_configure") as worker:
        # Then each setting comes from the highest-ranked source that sets it
        process = announced(redis_url, "flagns", worker)
        assert (process.concurrency, process.tag, process.queues) == (5, "file", ["flagq"])
        assert r.keys("appns:*") == []
        stop(worker)
