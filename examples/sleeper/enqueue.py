"""Enqueue Sleeper jobs (run from the repo root, with REDIS_URL set):

    python -m examples.sleeper.enqueue                        # one job that sleeps 5 s
    python -m examples.sleeper.enqueue --count 20 --seconds 3
"""

from __future__ import annotations

import argparse

import kiqpy
from examples.sleeper.jobs import Sleeper
from kiqpy.connection import safe_url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Enqueue Sleeper jobs.")
    parser.add_argument("--count", type=int, default=1, help="how many jobs (default 1)")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="how long each job sleeps (default 5)")
    options = parser.parse_args(argv)
    if options.count == 1:
        jids = [Sleeper.perform_async(options.seconds)]
    else:
        # One round trip for the whole batch instead of one per job.
        jids = Sleeper.perform_bulk([[options.seconds]] * options.count)
    print(f"Redis: {safe_url(kiqpy.default_config().redis_url)}")
    for jid in jids:
        print(f"enqueued Sleeper({options.seconds}) jid {jid}")


if __name__ == "__main__":
    main()
