"""`make bench`: kiqpy's speed and cost figures (the targets in docs/architecture.md), on
this machine.

Starts its own redis-server and worker processes; prints one line per figure with its target.
Figures vary from run to run; nothing here asserts them.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.redis_server import RedisServer  # noqa: E402


def line(name: str, value: str, target: str) -> None:
    print(f"{name:<52} {value:>16}   target {target}", flush=True)


class Worker:
    def __init__(self, url: str, *args: str) -> None:
        env = {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kiqpy.cli", "-r", "bench.bench_jobs", "--log-format", "json",
             *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_registered(self, r: redis.Redis, count: int = 1) -> None:
        deadline = time.monotonic() + 30
        while r.scard("processes") < count:
            if time.monotonic() > deadline:
                raise SystemExit("worker did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def calibration(r: redis.Redis, n: int = 5000) -> None:
    """Raw redis-py LPUSH round trips: how fast this machine is right now (the reference
    2-vCPU box saw 7.9k/s). Compare the other figures with it when runs differ."""
    r.lpush("bench:raw", b"x")
    start = time.perf_counter()
    for _ in range(n):
        r.lpush("bench:raw", b"x")
    rate = n / (time.perf_counter() - start)
    line("calibration: raw redis-py LPUSH, unpipelined", f"{rate:,.0f}/s",
         "(machine speed; 7.9k/s on the reference box)")
    r.delete("bench:raw")


def enqueue_rates(url: str, r: redis.Redis, n_single: int, n_bulk: int) -> None:
    import kiqpy
    from bench.bench_jobs import Noop

    kiqpy.configure(redis_url=url)
    r.flushall()
    Noop.perform_async(0)  # connect, load the script
    start = time.perf_counter()
    for i in range(n_single):
        Noop.perform_async(i)
    elapsed = time.perf_counter() - start
    line("single enqueue (perform_async)", f"{n_single / elapsed:,.0f}/s", ">= 6k/s")
    r.flushall()
    args = [[i] for i in range(n_bulk)]
    start = time.perf_counter()
    Noop.perform_bulk(args)
    elapsed = time.perf_counter() - start
    plain = n_bulk / elapsed
    line("bulk enqueue (perform_bulk)", f"{plain:,.0f}/s", ">= 100k/s")
    r.flushall()
    # The same inside a batch: one batch_add.lua per 1,000 jobs on top of the push.
    batch = kiqpy.Batch(description="bench")
    start = time.perf_counter()
    with batch.jobs():
        Noop.perform_bulk(args)
    elapsed = time.perf_counter() - start
    line("bulk enqueue inside a batch (perform_bulk in batch.jobs())",
         f"{n_bulk / elapsed:,.0f}/s", f">= 0.8 x perform_bulk ({n_bulk / elapsed / plain:.0%})")
    r.flushall()


def redis_cpu(nodes: list[redis.Redis]) -> float:
    """CPU seconds the Redis servers have used so far (INFO cpu, user + system, all nodes)."""
    total = 0.0
    for node in nodes:
        info = node.info("cpu")
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


def cpu_line(cpu_seconds: float, n: int) -> float:
    """Report Redis CPU per job, and the jobs/s one Redis core could carry at that cost."""
    per_job_us = cpu_seconds / n * 1e6
    line("  Redis CPU per job (fetch, ack, heartbeats, INCR)", f"{per_job_us:.1f} us",
         f"(one Redis core: ~{1e6 / per_job_us:,.0f} jobs/s)")
    return per_job_us


def processing(url: str, r: redis.Redis, job: str, n: int, worker_args: list[str],
               label: str | None, target: str, processes: int = 1, arg: int = 0,
               batch: bool = False, cpu: bool = False) -> float:
    import kiqpy
    from bench import bench_jobs

    kiqpy.configure(redis_url=url)
    r.flushall()
    if batch:  # every job reports to the batch when it ends (one script call each)
        with kiqpy.Batch(description="bench").jobs():
            getattr(bench_jobs, job).perform_bulk([[arg or i] for i in range(n)])
    else:
        getattr(bench_jobs, job).perform_bulk([[arg or i] for i in range(n)])
    cpu_before = redis_cpu([r])
    workers = [Worker(url, *worker_args) for _ in range(processes)]
    # Time from the first job taken to the last job acked.
    while r.llen("queue:default") == n:
        time.sleep(0.0005)
    start = time.perf_counter()
    while r.llen("queue:default") > 0 or _inflight(r) > 0:
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    cpu_used = redis_cpu([r]) - cpu_before
    for worker in workers:
        worker.stop()
    if job.startswith("NoopIncr"):
        assert int(r.get("bench:count") or 0) >= n, "not every job ran"
    if label:
        line(label, f"{n / elapsed:,.0f} jobs/s", target)
    if cpu:
        cpu_line(cpu_used, n)
    return n / elapsed


def metrics_cost(url: str, r: redis.Redis, n: int, quiet: list[str], pairs: int) -> None:
    """Issue 13's yardstick: the INCR job with execution metrics on and off, run in pairs
    whose order alternates, so a noisy machine's drift cancels out; the cost is the median of
    the pairs' ratios."""
    on, off, ratios = [], [], []
    for i in range(pairs):
        runs = {}
        for metrics in (("on", "off") if i % 2 == 0 else ("off", "on")):
            extra = [] if metrics == "on" else ["--no-metrics"]
            runs[metrics] = processing(url, r, "NoopIncr", n, [*quiet, *extra], None, "")
        on.append(runs["on"])
        off.append(runs["off"])
        ratios.append(1 - runs["on"] / runs["off"])
    line(f"  metrics on / off, medians of {pairs} paired runs",
         f"{statistics.median(on):,.0f} / {statistics.median(off):,.0f} jobs/s", "(for reference)")
    line("  cost of the execution metrics (paired median)",
         f"{statistics.median(ratios):.1%}", "<= 5% of the metrics-off rate")


def limiter_cost(url: str, r: redis.Redis, n: int, quiet: list[str], plain: float) -> None:
    """Issue 15's figure: what a ``within_limit`` block costs, per call from one thread for
    each kind, and per job for the INCR job inside a roomy concurrent limiter."""
    import kiqpy
    from kiqpy import limiter

    kiqpy.configure(redis_url=url)
    calls = max(n // 5, 1000)
    for name, lim in (("concurrent", limiter.concurrent("bench:c", 10**6, wait_timeout=0)),
                      ("bucket", limiter.bucket("bench:b", 10**9, "second")),
                      ("window", limiter.window("bench:w", 10**9, 1)),
                      ("leaky", limiter.leaky("bench:l", 10**9, "second"))):
        with lim.within_limit():
            pass
        start = time.perf_counter()
        for _ in range(calls):
            with lim.within_limit():
                pass
        took = (time.perf_counter() - start) / calls
        line(f"within_limit block, {name}, one thread", f"{took * 1e6:,.0f} us/block",
             "(for reference: 1 script, concurrent 2)")
    limited = processing(url, r, "NoopIncrLimited", n, quiet,
                         "processing no-op+INCR in a concurrent block, -c 10",
                         "(for reference)")
    line("  cost of the within_limit block per job", f"{1 - limited / plain:.0%}",
         "(for reference)")

def async_figures(url: str, r: redis.Redis, n: int, sync_noop: float | None) -> None:
    """The asyncio figures of issue 18: sleeping jobs side by side on one event loop, the
    no-op rate of async jobs (next to the sync no-op), and the async client's push rate."""
    quiet = ["-c", "10", "--log-level", "warning"]
    rate = processing(url, r, "ASleep", 1000, [*quiet, "--async-concurrency", "500"],
                      "  1,000 x asyncio.sleep(1), --async-concurrency 500", "(as jobs/s)",
                      arg=1)
    line("async: 1,000 x asyncio.sleep(1), --async-concurrency 500", f"{1000 / rate:.2f} s",
         "< 3 s (2 s is the floor: two rounds of 500)")
    noop = processing(url, r, "ANoop", n, [*quiet, "--async-concurrency", "100"],
                      "async: processing pure no-op, --async-concurrency 100", "(for reference)")
    if sync_noop:
        line("  against the sync pure no-op (-c 10) of this run", f"{noop / sync_noop:.0%}",
             "(for reference)")
    processing(url, r, "NoopIncrAsync", n, [*quiet, "--async-concurrency", "100"],
               "async: no-op+INCR through kiqpy.aredis()", "(next to the sync INCR job)")
    line("async: aperform_async, 100 tasks on one loop", f"{_apush_rate(url, r, n):,.0f}/s",
         "(for reference; single enqueue above is the sync client)")


def _apush_rate(url: str, r: redis.Redis, n: int, tasks: int = 100) -> float:
    import asyncio

    import kiqpy
    from bench.bench_jobs import Noop

    kiqpy.configure(redis_url=url)
    r.flushall()
    each = max(1, n // tasks)

    async def pusher() -> None:
        for i in range(each):
            await Noop.aperform_async(i)

    async def main() -> float:
        await Noop.aperform_async(0)  # connect, load the script
        start = time.perf_counter()
        await asyncio.gather(*(pusher() for _ in range(tasks)))
        return time.perf_counter() - start

    try:
        import uvloop

        elapsed = uvloop.run(main())
    except ImportError:
        elapsed = asyncio.run(main())
    assert r.llen("queue:default") == each * tasks + 1, "not every push landed"
    r.flushall()
    return each * tasks / elapsed


def cluster_processing(n: int, queue_count: int, job: str = "NoopIncr") -> tuple[float, float]:
    """The processing figure (no-op + INCR, -c 10, logs off) on a local 3-master Redis
    Cluster, the jobs spread over ``queue_count`` queues on different shards; returns
    (jobs/s, Redis CPU microseconds per job summed over the masters)."""
    import redis.cluster

    import kiqpy
    from kiqpy.keys import Keys
    from tests.topologies import ClusterTopology

    keys = Keys(cluster=True)
    with ClusterTopology() as topo:
        rc = redis.cluster.RedisCluster(host="127.0.0.1", port=topo.ports[0])
        nodes = [redis.Redis(port=port) for port in topo.ports]
        names: dict[str, str] = {}
        index = 0
        while len(names) < queue_count:
            name = f"q{index}"
            names.setdefault(rc.get_node_from_key(keys.queue(name)).name, name)
            index += 1
        queues = list(names.values())
        kiqpy.configure(redis_url=topo.url)
        client = kiqpy.Client()
        for number, name in enumerate(queues):
            share = range(number, n, queue_count)
            client.push_bulk({"class": f"bench.{job}", "queue": name,
                              "args": [[i] for i in share]})
        client.close()

        def queued() -> int:
            return sum(int(rc.llen(keys.queue(name))) for name in queues)

        def held() -> int:
            return sum(node.llen(key) for node in nodes for key in node.scan_iter("*:inflight:*"))

        # The masters' own upkeep (cron, cluster bus pings) costs CPU with no jobs at all:
        # measured for a second and taken out, so the figure is the jobs' cost.
        idle_start, idle_cpu = time.perf_counter(), redis_cpu(nodes)
        time.sleep(1.0)
        idle_rate = (redis_cpu(nodes) - idle_cpu) / (time.perf_counter() - idle_start)
        cpu_before = redis_cpu(nodes)
        worker = Worker(topo.url, "-c", "10", "-q", ",".join(queues), "--log-level", "warning")
        while queued() == n:
            time.sleep(0.0005)
        start = time.perf_counter()
        while queued() > 0 or held() > 0:
            time.sleep(0.005)
        elapsed = time.perf_counter() - start
        cpu_used = redis_cpu(nodes) - cpu_before - idle_rate * elapsed
        worker.stop()
        if job == "NoopIncr":
            assert int(rc.get("bench:count") or 0) >= n, "not every job ran"
        rc.close()
        for node in nodes:
            node.close()
    rate = n / elapsed
    line(f"  Redis Cluster, 3 masters, {queue_count} queue(s) on {queue_count} shard(s)"
         + (", pure no-op" if job == "Noop" else ""),
         f"{rate:,.0f} jobs/s", "(next to the single-node figure)")
    return rate, cpu_line(cpu_used, n)


def cluster_figures(url: str, r: redis.Redis, n: int) -> None:
    """`make bench --cluster`: the processing figure on one node and on a 3-shard cluster,
    with the Redis CPU each job costs (docs/architecture.md, "Scale")."""
    processing(url, r, "NoopIncr", n, ["-c", "10", "--log-level", "warning"],
               "processing no-op+INCR, -c 10, logs off, one node", "(single node)", cpu=True)
    processing(url, r, "Noop", n, ["-c", "10", "--log-level", "warning"],
               "processing pure no-op (kiqpy's own Redis cost), one node", "(single node)",
               cpu=True)
    for queue_count in (1, 3):
        cluster_processing(n, queue_count)
    cluster_processing(n, 1, "Noop")


def ceiling(url: str, r: redis.Redis, n: int, threads: int = 10,
            through_kiqpy: bool = False) -> float:
    """Issue 21's yardstick: ``threads`` threads doing nothing but INCR, each on its own
    connection (a ``redis.Redis`` per thread, or ``kiqpy.redis()``'s per-thread client): the
    most a ``-c 10`` worker could do if its jobs cost nothing but their one INCR."""
    import threading

    import kiqpy

    kiqpy.configure(redis_url=url)
    per_thread = n // threads
    ready = threading.Barrier(threads + 1)

    def run() -> None:
        if through_kiqpy:
            with kiqpy.redis() as conn:
                client = conn
        else:
            client = redis.Redis.from_url(url)
        client.incr("bench:ceiling")
        ready.wait()
        for _ in range(per_thread):
            client.incr("bench:ceiling")

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    rate = per_thread * threads / (time.perf_counter() - start)
    label = ("  the same through kiqpy.redis()" if through_kiqpy else
             f"threaded redis-py ceiling: {threads} threads, INCR only")
    line(label, f"{rate:,.0f}/s", "(yardstick)")
    return rate


def processes(url: str, r: redis.Redis, n: int) -> None:
    """Issue 5: what a second process buys, for CPU-bound and for no-op jobs."""
    for job, label, count in (("Burn", "CPU-bound job (~3 ms of Python)", max(n // 20, 500)),
                              ("Noop", "no-op job", n)):
        for procs in ("1", "2"):
            processing(url, r, job, count, ["-c", "10", "-p", procs, "--log-level", "warning"],
                       f"{label}, -p {procs}", "-p 2 > -p 1", arg=30_000 if job == "Burn" else 0)
    # Issue 21's -p figure, with what bounds it on a small machine: the worker processes and
    # redis-server share the cores, so the sum of their CPU per job caps the rate.
    rates, redis_us = {}, {}
    for procs in ("1", "2"):
        before = _redis_cpu(r)
        rates[procs] = processing(url, r, "NoopIncr", n,
                                  ["-c", "10", "-p", procs, "--log-level", "warning"],
                                  f"no-op+INCR job, -p {procs}", "(for reference)")
        redis_us[procs] = (_redis_cpu(r) - before) / n * 1e6
    line("  -p 2 against -p 1, no-op+INCR job", f"{rates['2'] / rates['1']:.2f}x",
         f">= 1.6x (cores here: {os.cpu_count()})")
    line("  redis-server CPU per job, -p 1 / -p 2",
         f"{redis_us['1']:.0f} / {redis_us['2']:.0f} us", "(what Redis costs per INCR job)")


def _redis_cpu(r: redis.Redis) -> float:
    """CPU seconds redis-server has used so far (user + system)."""
    cpu = r.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _inflight(r: redis.Redis) -> int:
    return sum(r.llen(key) for key in r.scan_iter("*:inflight:*"))


def latency(url: str, r: redis.Redis, samples: int) -> None:
    import kiqpy
    from bench.bench_jobs import Stamp

    kiqpy.configure(redis_url=url)
    r.flushall()
    worker = Worker(url, "-q", "first,second,third", "--log-level", "warning")
    worker.wait_registered(r)
    time.sleep(1.0)  # let the waiters reach their BLMOVE
    for queue in ("first", "third"):
        r.delete("bench:latency")
        for _ in range(samples):
            Stamp.set(queue=queue).perform_async(time.time())
            deadline = time.monotonic() + 5
            while r.llen("bench:latency") < _ + 1 and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(0.01)  # idle again
        values = sorted(float(v) * 1000 for v in r.lrange("bench:latency", 0, -1))
        p50 = statistics.median(values)
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        line(f"push-to-start latency, queue {queue!r} of 3", f"p50 {p50:.2f} p99 {p99:.2f} ms",
             "p50 <= 2 ms, p99 <= 10 ms")
    worker.stop()


def idle_cost(url: str, r: redis.Redis, seconds: float) -> None:
    r.flushall()
    worker = Worker(url, "-q", "default,mail,low", "--log-level", "warning")
    worker.wait_registered(r)
    time.sleep(2.0)
    before = _commands(r)
    time.sleep(seconds)
    after = _commands(r)
    worker.stop()
    # Our own two INFO calls are not the worker's.
    rate = (after - before - 1) / seconds
    line("idle worker, Redis commands per second (3 queues)", f"{rate:.1f}/s", "<= 20/s")


def _commands(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return sum(v["calls"] for v in stats.values())


def memory(url: str, r: redis.Redis) -> None:
    r.flushall()
    worker = Worker(url, "-c", "25", "--log-level", "warning")
    worker.wait_registered(r)
    time.sleep(1.0)
    rss_kb = 0
    with open(f"/proc/{worker.proc.pid}/status") as status:
        for row in status:
            if row.startswith("VmRSS:"):
                rss_kb = int(row.split()[1])
    worker.stop()
    # redis-py imports opentelemetry's metrics API whenever it is installed (as in the dev
    # venv, for kiqpy's tracing middleware): the worker then carries it too.
    otel = importlib.util.find_spec("opentelemetry") is not None
    line("worker RSS at -c 25", f"{rss_kb / 1024:.1f} MB",
         "<= 40 MB" + (" (opentelemetry installed: redis-py imports it)" if otel else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=50_000, help="jobs per processing run")
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--throughput", action="store_true",
                        help="only the ceiling and the processing figures")
    parser.add_argument("--asyncio", action="store_true",
                        help="only the async figures (with the sync no-op to compare)")
    parser.add_argument("--cluster", action="store_true",
                        help="only the processing figure, on one node and on a local 3-shard "
                             "Redis Cluster, with the Redis CPU per job")
    args = parser.parse_args()
    n = 5_000 if args.quick else args.jobs
    server = RedisServer().start()
    url = server.url
    r = redis.Redis.from_url(url)
    try:
        print(f"kiqpy benchmark: redis-server {r.info()['redis_version']}, "
              f"{os.cpu_count()} cores, Python {sys.version.split()[0]}\n")
        calibration(r)
        if args.asyncio:
            sync_noop = processing(url, r, "Noop", n, ["-c", "10", "--log-level", "warning"],
                                   "processing pure no-op, -c 10, logs off", ">= 25k jobs/s")
            async_figures(url, r, n, sync_noop)
            return
        if args.cluster:
            cluster_figures(url, r, n)
            return
        if not args.throughput:
            enqueue_rates(url, r, n_single=min(n, 20_000), n_bulk=n * 2)
        quiet = ["-c", "10", "--log-level", "warning"]
        top = ceiling(url, r, n)
        top_kiqpy = ceiling(url, r, n, through_kiqpy=True)
        off = processing(url, r, "NoopIncr", n, quiet, "processing no-op+INCR, -c 10, logs off",
                         ">= 9k jobs/s", cpu=True)
        line("  as a share of the threaded redis-py ceiling", f"{off / top:.0%}",
             f">= 90% (of kiqpy.redis()'s: {off / top_kiqpy:.0%})")
        metrics_cost(url, r, n, quiet, pairs=3 if args.quick else 5)
        processing(url, r, "NoopIncrOwnClient", n, quiet,
                   "  the same, INCR on the app's own redis.Redis", "(for reference)")
        on = processing(url, r, "NoopIncr", n, ["-c", "10", "--log-level", "info"],
                        "processing no-op+INCR, -c 10, logs on", "(for reference)")
        line("  cost of the per-job log lines", f"{1 - on / off:.0%}", "<= 25% of logs-off rate")
        sync_noop = processing(url, r, "Noop", n, quiet, "processing pure no-op, -c 10, logs off",
                               ">= 25k jobs/s")
        processing(url, r, "Noop", n, quiet, "  the same, every job in one batch",
                   "(for reference: the cost of batch reports)", batch=True)
        if args.throughput:
            return
        limiter_cost(url, r, n, quiet, off)

        async_figures(url, r, n, sync_noop)
        latency(url, r, samples=50 if args.quick else 200)
        idle_cost(url, r, seconds=5 if args.quick else 10)
        memory(url, r)
        processes(url, r, n)
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
