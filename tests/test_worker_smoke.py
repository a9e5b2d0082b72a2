import kiqpy
from tests import app_jobs
from tests.conftest import wait_for
from tests.workers import WorkerProcess


def test_worker_runs_jobs_and_stops_cleanly(config, r, redis_url):
    app_jobs.Record.perform_async("a", 1)
    app_jobs.Record.set(queue="mail").perform_async("b", 2)
    with WorkerProcess(redis_url, "-q", "default,mail") as worker:
        wait_for(lambda: r.llen("test:ran") == 2, message="two jobs to run")
        worker.terminate()
        assert worker.wait() == 0
    assert sorted(r.lrange("test:ran", 0, -1)) == [b"('a', 1)", b"('b', 2)"]
    assert r.scard("processes") == 0
    assert kiqpy.__version__
