"""The duration histogram of the execution metrics, shared by the worker that counts
(:mod:`kiqpy.server.metrics`) and the data API that reads (:mod:`kiqpy.api.metrics`).

Buckets (upper bounds, milliseconds): 1, 2, 5, 10, 20, 50, 100, 200, 500 ms, 1, 2, 5, 10, 30,
60, 300 s, and one bucket for anything longer: finer than Sidekiq's (20 ms and up), because
most jobs take a few milliseconds. A percentile is the upper bound of the bucket it falls in.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000,
              300_000)
SIZE = len(BUCKETS_MS) + 1


def bucket(ms: float) -> int:
    """The index of the bucket a duration of ``ms`` milliseconds falls in."""
    return bisect.bisect_left(BUCKETS_MS, ms)


def percentile(counts: Sequence[int], fraction: float) -> float | None:
    """The upper bound, in seconds, of the bucket holding ``fraction`` of the counts (None
    when there are none; ``inf`` past the last bound)."""
    total = sum(counts)
    if not total:
        return None
    seen, index = 0, 0
    for index, count in enumerate(counts):  # noqa: B007 (the index is the answer)
        seen += count
        if seen >= fraction * total:
            break
    return BUCKETS_MS[index] / 1000 if index < len(BUCKETS_MS) else float("inf")
