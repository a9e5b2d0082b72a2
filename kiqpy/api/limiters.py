"""The rate limiters (:mod:`kiqpy.limiter`) that were used in the last day: kind, size, what
is in use now, and how often each was over its limit.

    for lim in Limiters():
        print(lim.name, lim.kind, lim.size, lim.in_use, lim.over)
    Limiters().find("stripe").over

Each limiter leaves a ``kiqpy:limiter:{<name>}:meta`` hash (kind, size, interval or lease,
calls let in, calls refused, time waited) that lives a day after its last use; the listing
finds them with SCAN, so it costs a pass over the keyspace (in batches of 500 keys), fine for a
dashboard page and not for a hot path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kiqpy.api.base import ApiObject, text

SCAN_COUNT = 500
# The most limiters a listing reads (a page of a dashboard, not an export).
MAX_LIMITERS = 1_000


@dataclass(frozen=True)
class LimiterInfo:
    """One limiter as Redis holds it.

    ``interval`` is seconds (bucket, leaky: the interval; window: the window), None for a
    concurrent limiter, whose ``lock_timeout`` is in seconds. ``in_use``: slots held
    (concurrent), calls in the current interval (bucket) or window (window), or 1 while the
    drip is busy (leaky). ``calls`` were let in and ``over`` refused (OverLimit) since the
    meta hash was made; ``wait_seconds`` is the time callers waited before being let in, in all.
    """

    name: str
    kind: str
    size: int
    interval: float | None
    lock_timeout: float | None
    in_use: int
    calls: int
    over: int
    wait_seconds: float

    @property
    def average_wait(self) -> float:
        """Seconds a caller that was let in waited, on average."""
        return self.wait_seconds / self.calls if self.calls else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "size": self.size,
                "interval": self.interval, "lock_timeout": self.lock_timeout,
                "in_use": self.in_use, "calls": self.calls, "over": self.over,
                "wait_seconds": self.wait_seconds}


class Limiters(ApiObject):
    """Every limiter used in the last day, sorted by name (at most :data:`MAX_LIMITERS`)."""

    def __iter__(self) -> Iterator[LimiterInfo]:
        return iter(self.all())

    def all(self) -> list[LimiterInfo]:
        names: set[str] = set()
        with self.io():
            for key in self.redis.scan_iter(self.keys.limiter_pattern("meta"), SCAN_COUNT):
                names.add(self.keys.limiter_name(text(key)))
                if len(names) >= MAX_LIMITERS:
                    break
        return self._read(sorted(names))

    def find(self, name: str) -> LimiterInfo | None:
        """The limiter ``name``, or None if it was not used in the last day."""
        found = self._read([name])
        return found[0] if found else None

    def _read(self, names: list[str]) -> list[LimiterInfo]:
        if not names:
            return []
        pipe = self.redis.pipeline(transaction=False)
        # TIME has no key: redis-py's cluster pipeline refuses it, so on Cluster it is asked
        # apart (any node: the clocks of one deployment agree within the lease margins).
        clock = None
        if self.keys.cluster:
            with self.io():
                clock = self.redis.time()
        if clock is None:
            pipe.time()
        for name in names:
            pipe.hgetall(self.keys.limiter(name, "meta"))
            pipe.zrange(self.keys.limiter(name, "slots"), 0, -1, withscores=True)
            pipe.hmget(self.keys.limiter(name, "bucket"), "start", "n")
            pipe.zrange(self.keys.limiter(name, "window"), 0, -1, withscores=True)
            pipe.get(self.keys.limiter(name, "leaky"))
        with self.io():
            replies = pipe.execute(raise_on_error=False)
        if clock is None:
            clock, replies = replies[0], replies[1:]
        seconds, micros = clock
        now = seconds * 1000 + micros / 1000  # Redis's clock, as the scripts use it
        found = []
        for index, name in enumerate(names):
            meta, slots, bucket, window, leaky = replies[5 * index: 5 + 5 * index]
            if not isinstance(meta, dict) or not meta:
                continue
            info = _info(name, {text(k): text(v) for k, v in meta.items()}, now,
                         slots, bucket, window, leaky)
            if info is not None:
                found.append(info)
        return found


def _info(name: str, meta: dict[str, str], now: float, slots: Any, bucket: Any, window: Any,
          leaky: Any) -> LimiterInfo | None:
    kind = meta.get("kind", "")
    interval_ms = _number(meta.get("interval_ms"))
    lease_ms = _number(meta.get("lock_timeout"))
    in_use = 0
    if kind == "concurrent" and isinstance(slots, list):
        in_use = sum(1 for _, expiry in slots if expiry > now)
    elif kind == "bucket" and isinstance(bucket, list) and interval_ms:
        start, count = bucket
        if start is not None and int(start) == math.floor(now / interval_ms):
            in_use = int(count or 0)
    elif kind == "window" and isinstance(window, list) and interval_ms:
        in_use = sum(1 for _, at in window if at > now - interval_ms)
    elif kind == "leaky" and isinstance(leaky, bytes):
        in_use = int(float(leaky) > now)
    elif kind not in ("concurrent", "bucket", "window", "leaky"):
        return None
    return LimiterInfo(
        name=name, kind=kind, size=int(_number(meta.get("size"))),
        interval=interval_ms / 1000 if kind != "concurrent" else None,
        lock_timeout=lease_ms / 1000 if kind == "concurrent" else None,
        in_use=in_use, calls=int(_number(meta.get("calls"))),
        over=int(_number(meta.get("over"))),
        wait_seconds=_number(meta.get("wait_ms")) / 1000)


def _number(value: str | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
