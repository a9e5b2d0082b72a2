"""What the worker tells batches and result readers about a job's outcome, and the sweep that
finishes deliveries a dead process left behind.

Only jobs that carry a ``bid`` (or ask for their result) come here: the processor and the
retrier check one or two dict keys first, so other jobs pay nothing. Everything is written
before the job is acked, so a worker killed in between runs the job again, and the repeated
report (idempotent: a jid counts once) hands out what the first one could not deliver.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import redis

from kiqpy.client.batch import CLAIM_MS, report
from kiqpy.client.push import Client
from kiqpy.client.results import encode_failure, result_ttl, wants_result
from kiqpy.config import Config
from kiqpy.errors import KiqpyError
from kiqpy.failures import error_class, error_message
from kiqpy.keys import Keys
from kiqpy.payload import Job
from kiqpy.server.outage import Outage

#: Outcomes of Retrier.failed that end a job for good (its result becomes a failure).
FINAL = frozenset({"dead", "discarded", "cancelled"})

#: The most job successes one batch_report.lua call carries.
MAX_GROUP = 500


class _Success:
    """One job's success waiting for a group report (see :meth:`Outcomes._grouped`)."""

    __slots__ = ("bid", "done", "error", "jid", "step")

    def __init__(self, bid: str, jid: str, step: str) -> None:
        self.bid, self.jid, self.step = bid, jid, step
        self.done = threading.Event()
        self.error: BaseException | None = None


class Outcomes:
    """Reports a finished job to its batch and stores its result. Shared by the processor
    threads of one worker (no per-job state on ``self``); Redis writes retry through outages
    and give up (returning None: the job is not acked) only on a forced shutdown."""

    def __init__(self, config: Config, client: redis.Redis, keys: Keys, outage: Outage,
                 give_up: threading.Event, log: Any) -> None:
        self.keys, self.redis, self.outage, self.give_up = keys, client, outage, give_up
        self.log = log
        self._config = config
        self._pusher: Client | None = None
        # Group reports: successes waiting for the thread that is reporting (the leader).
        self._lock = threading.Lock()
        self._waiting: list[_Success] = []
        self._leading = False

    @property
    def pusher(self) -> Client:
        """The client that pushes callbacks and workflow steps (on the worker's Redis)."""
        if self._pusher is None:
            self._pusher = Client(self._config, redis_client=self.redis)
        return self._pusher

    def succeeded(self, job: Job, stored: bytes | None) -> str | None:
        """The job succeeded: store its result (first, so a workflow step started because of
        it can read it), then report to its batch. "done", or None if interrupted."""
        def write() -> bool:
            if stored is not None:
                self._store(job["jid"], stored, result_ttl(job))
            bid = job.get("bid")
            if isinstance(bid, str):
                self._grouped(_Success(bid, job["jid"], _step(job)))
            return True
        return None if self.outage.retry(write, "batch", self.give_up) is None else "done"

    def _grouped(self, mine: _Success) -> None:
        """Report a success together with those other processor threads are reporting at the
        same moment (group commit): the first thread in becomes the leader and sends every
        waiting success, one script call per batch (up to MAX_GROUP jobs), until none is
        left; the others wait for theirs. Each thread returns only once its own job's report
        is in Redis, so the ack still follows the report. An error reaches every thread whose
        job was in the failed call, and each retries its own (Outage.retry)."""
        with self._lock:
            self._waiting.append(mine)
            lead = not self._leading
            self._leading = True
        if lead:
            while True:
                with self._lock:
                    group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
                    if not group:
                        self._leading = False
                        break
                try:
                    self._send(group)
                except BaseException as exc:
                    for one in group:
                        one.error = exc
                finally:
                    for one in group:
                        one.done.set()
        mine.done.wait()
        if mine.error is not None:
            raise mine.error

    def _send(self, group: list[_Success]) -> None:
        by_batch: dict[str, list[str]] = {}
        for one in group:
            by_batch.setdefault(one.bid, []).extend((one.jid, one.step))
        for bid, pairs in by_batch.items():
            try:
                report(self.pusher, bid, "success", more=pairs)
            except KiqpyError as exc:
                self.log.error("batch delivery failed; the sweep will retry it", bid=bid,
                               error=str(exc))

    def failed(self, job: Job, exc: BaseException, outcome: str) -> str | None:
        """The job failed with ``outcome`` (Retrier.failed's): its first failure makes it count
        as run for ``complete``; the dead set is a death. Returns ``outcome``, or None."""
        def write() -> bool:
            final = outcome in FINAL
            if final and wants_result(job):
                self._store(job["jid"], encode_failure(error_class(exc), error_message(exc)),
                            result_ttl(job))
            bid = job.get("bid")
            if isinstance(bid, str):
                info = json.dumps({"class": job.get("class"), "error_class": error_class(exc),
                                   "error_message": error_message(exc)[:500]})
                kind = "death" if outcome == "dead" else "failure"
                self._report(bid, kind, job["jid"], info, _step(job))
            return True
        return None if self.outage.retry(write, "batch", self.give_up) is None else outcome

    def _report(self, bid: str, kind: str, jid: str, info: str, step: str) -> None:
        try:
            report(self.pusher, bid, kind, jid, info, step)
        except KiqpyError as exc:
            # A callback or step that cannot be pushed (a client middleware refusing it, a
            # bad argument): the entry stays in the outbox, and the sweep tries again later.
            self.log.error("batch delivery failed; the sweep will retry it", bid=bid,
                           error=str(exc))

    def _store(self, jid: str, data: bytes, ttl: int) -> None:
        key = self.keys.result(jid)
        pipe = self.redis.pipeline(transaction=True)  # one key: one slot
        pipe.delete(key)
        pipe.rpush(key, data)
        pipe.expire(key, ttl)
        pipe.execute()

    def sweep(self, limit: int = 20) -> int:
        """Deliver outbox entries whose claim ran out (their reporter died, or a jobs() block's
        process did): for each batch marked in ``Keys.batch_outbox`` and due, take and deliver
        what is due. Returns how many batches it looked at. Called by the scheduler."""
        due = self.redis.zrangebyscore(self.keys.batch_outbox, "-inf", time.time(), start=0,
                                       num=limit)
        for raw in due:
            bid = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                reply = report(self.pusher, bid, "sweep")
            except KiqpyError as exc:
                self.log.error("batch delivery failed; will retry", bid=bid, error=str(exc))
                continue
            if reply is None or int(reply[7]) == len(reply[8:]) // 2:
                self.redis.zrem(self.keys.batch_outbox, bid)  # nothing left, or it is gone
            else:  # entries someone else holds: look again when their claim ends
                self.redis.zadd(self.keys.batch_outbox, {bid: time.time() + CLAIM_MS / 1000})
        return len(due)


def _step(job: Job) -> str:
    step = job.get("wf_step")
    return step if isinstance(step, str) else ""


def tracked(job: dict[str, Any]) -> bool:
    """Whether the outcome of ``job`` goes to :class:`Outcomes`."""
    return "bid" in job or wants_result(job)
