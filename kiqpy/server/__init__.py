"""One worker process: fetching, running, retrying and scheduling jobs, and telling the others
it is alive. Installs no signal handlers (``kiqpy.cli`` does), so it can run embedded.

    launcher.py    wires the parts below; the shutdown order
    fetch.py       reliable fetch into this process's in-flight list, and acks
    manager.py     the pool of processor threads and what each is running
    processor.py   one job's life: decode, log, server chain, perform, ack
    retry.py       failures: error handlers, the retry set with backoff, the dead set
    scheduler.py   due scheduled jobs and retries -> their queues
    heartbeat.py   the process registry, counters, remote commands
    recovery.py    the in-flight jobs of dead processes back to their queues; poison pills
    outage.py      living through Redis outages: log once, back off, retry
    supervisor.py  ``kiqpy -p N``: a parent that keeps N worker processes running
"""
