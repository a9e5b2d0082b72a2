"""`make bench-compare`: the same job on kiqpy, Ruby Sidekiq and the Python queues, side by side.

One private redis-server, one system at a time, the same job everywhere (a no-op that INCRs the
counter ``bench:count``), each system at its documented defaults except a concurrency of 10.

    __main__.py   flags, the order of runs, the header and the table (python -m bench.compare)
    runner.py     the measurements: one worker run, one enqueue loop, the Python ceiling
    procs.py      CPU and RSS of a worker's process tree, read from /proc
    systems/      one module per system: how to start its worker and its enqueue loop
    apps/         the job and enqueue code each system runs, in its own interpreter
"""
