"""One of several processes that poll the schedule and retry sets at the same instant, for
tests/test_faults.py: ``python -m tests.fault_poller <redis url>``.

Waits at a barrier in Redis (INCR ``fault:ready``, then BLPOP ``fault:go``), then calls
Scheduler.enqueue_due until nothing is due, and prints {"moved": n, "polls": n, "woke": t}.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import redis

from kiqpy.config import Config
from kiqpy.keys import Keys
from kiqpy.scripts import source
from kiqpy.server.outage import Outage
from kiqpy.server.scheduler import Scheduler
from tests.recording import RecordingLog


def main(url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=30)
    log = RecordingLog()
    keys = Keys()
    scheduler = Scheduler(Config(redis_url=url), client, keys, Outage(url, log), log,
                          threading.Event())
    for name in ("schedule", "reroute"):  # loaded now, so the first poll is not slower
        client.script_load(source(name))
    client.incr("fault:ready")
    client.blpop(["fault:go"], 30)
    woke = time.time()
    moved = polls = 0
    while True:
        moved += scheduler.enqueue_due()
        polls += 1
        now = time.time()
        if not any(client.zcount(key, "-inf", now) for key in (keys.schedule, keys.retry)):
            break
    print(json.dumps({"moved": moved, "polls": polls, "woke": woke}))


if __name__ == "__main__":
    main(sys.argv[1])
