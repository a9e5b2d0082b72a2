"""Batches and workflows as Redis holds them: progress, failures, callbacks, each workflow
step's state.

    status = BatchStatus(bid)
    status.total, status.pending, status.failures, status.complete, status.success
    for failure in status.failure_info: print(failure.jid, failure.error_message)
    for batch in BatchSet().page(1, 25): print(batch.bid, batch.description)

A batch's keys expire ``ttl`` seconds (30 days by default) after its last change; the listing
(``kiqpy:batches``) forgets entries whose batch has expired when it reads them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from kiqpy.api.base import ApiObject, Page, check_page, text
from kiqpy.config import Config


@dataclass(frozen=True)
class BatchFailure:
    """One item of a batch that failed and has not succeeded since (or was cancelled)."""

    jid: str
    job_class: str
    error_class: str
    error_message: str
    dead: bool


@dataclass(frozen=True)
class WorkflowStep:
    """One step of a workflow: ``state`` is waiting, enqueued, retrying, succeeded, dead or
    cancelled."""

    name: str
    state: str
    jid: str
    job_class: str
    deps: list[str]
    ignore_failure: bool
    order: int = 0  # its place in an order that respects the dependencies


class BatchStatus(ApiObject):
    """The state of batch ``bid``, read when the object is made (call :meth:`reload`).
    ``exists`` is False for a batch that never existed or expired."""

    def __init__(self, bid: str, config: Config | None = None,
                 redis_client: redis.Redis | None = None) -> None:
        super().__init__(config, redis_client)
        self.bid = bid
        self.reload()

    def reload(self) -> BatchStatus:
        """Read the batch again (one round trip)."""
        keys = self.keys
        with self.io():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(keys.batch(self.bid))
            pipe.scard(keys.batch(self.bid, "jids"))
            pipe.hlen(keys.batch(self.bid, "failed"))
            pipe.smembers(keys.batch(self.bid, "dead"))
            pipe.hgetall(keys.batch(self.bid, "steps"))
            pipe.hgetall(keys.batch(self.bid, "state"))
            meta, pending, failures, dead, steps, states = pipe.execute()
        meta = {text(k): text(v) for k, v in meta.items()}
        self.exists = bool(meta)
        self.description = meta.get("description", "")
        self.total = int(meta.get("total", 0))
        self.pending = int(pending)
        self.failures = int(failures)
        self.dead_jids = sorted(text(j) for j in dead)
        self.open_blocks = int(meta.get("open", 0))
        self.created_at = int(meta["created_at"]) / 1000 if "created_at" in meta else None
        self.complete_at = _seconds(meta.get("complete"))
        self.success_at = _seconds(meta.get("success"))
        self.death_at = _seconds(meta.get("death"))
        self.parent_bid = meta.get("parent") or None
        self.workflow = meta.get("workflow") or None
        self.ttl = int(meta.get("ttl", 0))
        self.callbacks: dict[str, list[list[Any]]] = json.loads(meta.get("callbacks") or "{}")
        state_of = {text(k): text(v) for k, v in states.items()}
        listed = []
        for raw_name, raw in steps.items():
            name = text(raw_name)
            step = json.loads(raw)
            listed.append(WorkflowStep(name, state_of.get(name, "?"), step["jid"],
                                       step["class"], step["deps"], step["ignore_failure"],
                                       int(step.get("order", 0))))
        #: name -> step, in an order that respects the dependencies.
        self.steps: dict[str, WorkflowStep] = {
            s.name: s for s in sorted(listed, key=lambda s: (s.order, s.name))}
        return self

    @property
    def complete(self) -> bool:
        """Every item ran at least once (the ``complete`` callbacks fired)."""
        return self.complete_at is not None

    @property
    def success(self) -> bool:
        """Every item succeeded (the ``success`` callbacks fired)."""
        return self.success_at is not None

    @property
    def done(self) -> int:
        """Items that succeeded."""
        return self.total - self.pending

    @property
    def failure_info(self) -> list[BatchFailure]:
        """The items that failed and have not succeeded since, with their last error (at most
        1,000, read on each access)."""
        dead = set(self.dead_jids)
        with self.io():
            rows = list(itertools.islice(
                self.redis.hscan_iter(self.keys.batch(self.bid, "failed"), count=1000), 1000))
        failures = []
        for raw_jid, raw in rows:
            jid = text(raw_jid)
            try:
                info = json.loads(raw)
            except ValueError:
                info = {}
            failures.append(BatchFailure(jid, str(info.get("class") or ""),
                                         str(info.get("error_class") or ""),
                                         str(info.get("error_message") or ""), jid in dead))
        return sorted(failures, key=lambda f: f.jid)

    def children(self) -> list[str]:
        """Bids of the batch's child batches still pending in it."""
        with self.io():
            members = self.redis.sscan_iter(self.keys.batch(self.bid, "jids"), match="b:*")
            return sorted(text(m)[2:] for m in members)

    def to_dict(self) -> dict[str, Any]:
        return {"bid": self.bid, "exists": self.exists, "description": self.description,
                "total": self.total, "pending": self.pending, "failures": self.failures,
                "created_at": self.created_at, "complete": self.complete,
                "success": self.success, "death": self.death_at is not None,
                "parent_bid": self.parent_bid, "workflow": self.workflow,
                "callbacks": self.callbacks,
                "steps": {n: s.state for n, s in self.steps.items()}}


def _seconds(ms: str | None) -> float | None:
    return int(ms) / 1000 if ms else None


class BatchSet(ApiObject):
    """Every batch that has not expired, newest first."""

    def __len__(self) -> int:
        with self.io():
            return int(self.redis.zcard(self.keys.batch_index))

    def page(self, number: int = 1, size: int = 25) -> Page[BatchStatus]:
        """One page of batches, newest first; expired ones are dropped from the listing as
        they are met (so a page may hold fewer than ``size``)."""
        check_page(number, size)
        start = (number - 1) * size
        with self.io():
            total = int(self.redis.zcard(self.keys.batch_index))
            raw: list[bytes] = self.redis.zrevrange(  # type: ignore[assignment]
                self.keys.batch_index, start, start + size - 1)
        bids = [text(b) for b in raw]
        entries = []
        for bid in bids:
            status = BatchStatus(bid, self.config, self.redis)
            if status.exists:
                entries.append(status)
            else:
                with self.io():
                    self.redis.zrem(self.keys.batch_index, bid)
        return Page(entries, total, number, size)

    def __iter__(self) -> Iterator[BatchStatus]:
        number = 1
        while True:
            page = self.page(number, 100)
            yield from page.entries
            if not page.has_next:
                return
            number += 1
