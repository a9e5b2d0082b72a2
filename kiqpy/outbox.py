"""Redis Cluster only: moving a job from the ``{kiqpy}`` slot (the ``schedule``, ``retry`` and
``dead`` sets, a periodic tick) to its queue, which lives in the slot of ``{<queue>}``.

No script can touch both slots, so a move is two steps with the outbox in between::

    schedule/retry/dead --claim.lua (atomic, one slot)--> outbox
    outbox --SADD queues, push.lua--> queue:{<q>}   then   ZREM outbox

Claiming is atomic, so a member is claimed by one mover however many try (exactly once while
nobody dies). A mover killed between its push and its ZREM leaves the entry in the outbox, and
:meth:`Outbox.redrive` (every scheduler poll) pushes entries older than ``STALE_SECONDS``
again: a job may then be queued twice, never lost. On a single node none of this is used:
schedule.lua, move_to_queue.lua and periodic_tick.lua move in one script.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from kiqpy.config import Config
from kiqpy.errors import PayloadError
from kiqpy.failures import malformed_job
from kiqpy.keys import Keys
from kiqpy.payload import decode, encode, queued_copy
from kiqpy.scripts import Scripts

# A mover pushes what it claimed within milliseconds; an entry this old belongs to a mover that
# died (or stalled that long: then the job is queued twice, which at-least-once allows).
STALE_SECONDS = 60.0


class Outbox:
    """Claims members into the outbox and delivers outbox entries to their queues."""

    def __init__(self, config: Config, client: redis.Redis, keys: Keys,
                 scripts: Scripts | None = None) -> None:
        self.config, self.redis, self.keys = config, client, keys
        self.scripts = scripts or Scripts(client)

    def claim_due(self, source: str, now: float, limit: int) -> list[bytes]:
        """Claim up to ``limit`` members of ``source`` scored at or before ``now``."""
        claimed: list[bytes] = self.scripts.claim(
            keys=[source, self.keys.outbox], args=["due", repr(now), limit, repr(time.time())])
        return claimed

    def claim(self, source: str, member: bytes, replacement: bytes | None = None
              ) -> bytes | None:
        """Claim one member of ``source`` (the outbox gets ``replacement`` in its place, when
        given); None if it is no longer there (another mover was first)."""
        args: list[Any] = ["member", member, 0, repr(time.time())]
        if replacement is not None:
            args.append(replacement)
        claimed = self.scripts.claim(keys=[source, self.keys.outbox], args=args)
        return bytes(claimed[0]) if claimed else None

    def deliver(self, entry: bytes, source: str = "outbox") -> bool:
        """Push one outbox entry to its queue with a fresh ``enqueued_at``, then remove it from
        the outbox. An entry that is not a job goes to the dead set with the reason (atomic:
        both in this slot). True if it was queued."""
        try:
            job = decode(entry)
        except PayloadError as exc:
            now = time.time()
            record = encode(malformed_job("unknown", entry, f"in {source}: {exc}"))
            self.scripts.move_to_dead(
                keys=[self.keys.outbox, self.keys.dead],
                args=[entry, record, repr(now), repr(now - self.config.dead_timeout),
                      self.config.dead_max_jobs])
            return False
        queue = job["queue"]
        payload = queued_copy(job, entry, self.config.sidekiq_version)
        # The name first: a queue listed with no job yet is harmless, a job in an unlisted
        # queue would be invisible to workers listening by pattern.
        self.redis.sadd(self.keys.queues, queue)
        self.scripts.call(self.scripts.push, [self.keys.queue(queue)], [queue, payload])
        self.redis.zrem(self.keys.outbox, entry)
        return True

    def move(self, source: str, member: bytes, replacement: bytes | None = None) -> bool:
        """Claim and deliver one member of ``source``; False if another mover had it."""
        entry = self.claim(source, member, replacement)
        return entry is not None and self.deliver(entry, source)

    def redrive(self, now: float | None = None) -> int:
        """Deliver the entries that movers left in the outbox more than ``STALE_SECONDS``
        ago (they died between claim and delivery). Returns how many were queued."""
        stale = (time.time() if now is None else now) - STALE_SECONDS
        moved = 0
        while True:
            entries = self.claim_due(self.keys.outbox, stale, 100)
            moved += sum(self.deliver(bytes(entry)) for entry in entries)
            if len(entries) < 100:
                return moved
