"""The ``kiqpy`` CLI honours ``KIQPY_REQUIRE`` (several modules, separated by spaces) and
``KIQPY_CONFIG`` (the ``-C`` file) as documented in the README's CLI reference; checked with
real worker processes started without ``-r`` or ``-C``."""

from __future__ import annotations

from tests import app_jobs
from tests import app_retry_hooks as hooks
from tests.conftest import wait_for
from tests.workers import WorkerProcess


def test_kiqpy_require_imports_each_module_it_names(config, r, redis_url):
    # Given a job from each of two modules, and no -r flag
    app_jobs.Record.perform_async("from env")
    jid = hooks.KillNow.perform_async()
    env = {"KIQPY_REQUIRE": "tests.app_jobs tests.app_retry_hooks"}
    # When a worker starts with KIQPY_REQUIRE naming both
    with WorkerProcess(redis_url, env=env, require=None) as worker:
        # Then both classes are known: one ran, the other's hook killed it (an unknown class
        # would have been retried instead)
        wait_for(lambda: r.lrange("test:ran", 0, -1) == [repr(("from env",)).encode()]
                 and r.zcard("dead") == 1, timeout=20, message="both jobs to run")
        worker.terminate()
        assert worker.wait() == 0
    assert jid.encode() in r.zrange("dead", 0, -1)[0]
    assert r.zcard("retry") == 0


def test_kiqpy_config_names_the_config_file(config, r, redis_url, tmp_path):
    # Given a TOML file that requires the jobs and listens to a queue of its own, and no -r
    # or -C flag
    toml = tmp_path / "kiqpy.toml"
    toml.write_text('[kiqpy]\nrequire = ["tests.app_jobs"]\nqueues = ["from_file"]\n')
    app_jobs.Record.set(queue="from_file").perform_async("via file")
    # When a worker starts with KIQPY_CONFIG pointing at it
    with WorkerProcess(redis_url, env={"KIQPY_CONFIG": str(toml)}, require=None) as worker:
        # Then it loaded the jobs and served the file's queue
        wait_for(lambda: r.lrange("test:ran", 0, -1) == [repr(("via file",)).encode()],
                 timeout=20, message="the job on the file's queue to run")
        worker.terminate()
        assert worker.wait() == 0
