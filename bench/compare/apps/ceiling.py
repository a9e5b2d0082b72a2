"""The Python ceiling: THREADS threads doing nothing but redis-py INCRs, each on its own
connection, N in all. Runs in kiqpy's venv; prints {"seconds": wall, "cpu": process CPU}.

    python ceiling.py N THREADS
"""

from __future__ import annotations

import json
import sys
import threading
import time

import redis
from common import redis_url


def main() -> None:
    n, threads = int(sys.argv[1]), int(sys.argv[2])
    clients = [redis.Redis.from_url(redis_url()) for _ in range(threads)]
    for client in clients:
        client.ping()  # connect before the clock starts
    go = threading.Barrier(threads + 1)

    def loop(client: redis.Redis, count: int) -> None:
        go.wait()
        for _ in range(count):
            client.incr("bench:ceiling")

    workers = [threading.Thread(target=loop, args=(client, n // threads + (k < n % threads)),
                                name=f"ceiling-{k}") for k, client in enumerate(clients)]
    for worker in workers:
        worker.start()
    go.wait()
    start, cpu = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.join()
    print(json.dumps({"seconds": time.perf_counter() - start,
                      "cpu": time.process_time() - cpu}))


if __name__ == "__main__":
    main()
