"""What the worker tells batches and result readers about a job's outcome, and the sweep that
finishes deliveries a dead process left behind.

Only jobs that carry a ``bid`` (or ask for their result) come here: the processor and the
retrier check one or two dict keys first, so other jobs pay nothing. Everything is written
before the job is acked, so a worker killed in between runs the job again, and the repeated
report (idempotent: a jid counts once) hands out what the first one could not deliver.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from kiqpy.client.batch import CLAIM_MS, report
from kiqpy.client.push import Client
from kiqpy.client.results import encode_failure, result_ttl, wants_result
from kiqpy.config import Config
from kiqpy.connection import REDIS_DOWN
from kiqpy.failures import error_class, error_message
from kiqpy.keys import Keys
from kiqpy.payload import Job
from kiqpy.server.outage import Outage

#: Outcomes of Retrier.failed that end a job for good (its result becomes a failure).
FINAL = frozenset({"dead", "discarded", "cancelled"})

#: The most job successes one batch_report.lua call carries.
MAX_GROUP = 500

#: What Outcomes.succeeded returns when the reporter thread took the job: it reports, then
#: acks (the processor must not ack it).
HANDED_OVER = "handed over"

#: (job, encoded result or None, queue, payload, seconds the job took)
Handed = tuple[Job, bytes | None, str, bytes, float]


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
        # The worker's kiqpy.batch-reports thread, once started (Launcher): successes are
        # handed to it; without it (a Retrier used alone) they are reported here and now.
        self.reporter: Reporter | None = None

    @property
    def pusher(self) -> Client:
        """The client that pushes callbacks and workflow steps (on the worker's Redis)."""
        if self._pusher is None:
            self._pusher = Client(self._config, redis_client=self.redis)
        return self._pusher

    def succeeded(self, job: Job, stored: bytes | None,
                  unit: tuple[str, bytes, float] | None = None) -> str | None:
        """The job succeeded: store its result (first, so a workflow step started because of
        it can read it), then report to its batch. With the reporter thread running and
        ``unit`` (queue, payload, seconds) given, the job is handed to it, which reports
        several jobs in one call and then acks them: returns :data:`HANDED_OVER`. Otherwise
        "done" once written, or None if interrupted by a forced shutdown."""
        if self.reporter is not None and unit is not None and self.reporter.running:
            self.reporter.put((job, stored, *unit))
            return HANDED_OVER
        ok = self.outage.retry(lambda: self.write_successes([(job, stored)]), "batch",
                               self.give_up)
        return None if ok is None else "done"

    def write_successes(self, done: list[tuple[Job, bytes | None]]) -> bool:
        """Store the results, then report the successes, one call per batch."""
        for job, stored in done:
            if stored is not None:  # one MULTI per result: each key is its own slot
                self._store(job["jid"], stored, result_ttl(job))
        by_batch: dict[str, list[str]] = {}
        for job, _ in done:
            bid = job.get("bid")
            if isinstance(bid, str):
                by_batch.setdefault(bid, []).extend((job["jid"], _step(job)))
        for bid, pairs in by_batch.items():
            try:
                report(self.pusher, bid, "success", more=pairs)
            except REDIS_DOWN:
                raise  # the caller's outage retry writes the report again
            except Exception as exc:
                # A callback or step that cannot be pushed (a client middleware refusing it, a
                # bad argument): the entry stays in the outbox, and the sweep tries again.
                self.log.error("batch delivery failed; the sweep will retry it", bid=bid,
                               error=str(exc))
        return True

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
        except REDIS_DOWN:
            raise  # the caller's outage retry writes the report again
        except Exception as exc:
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
            except REDIS_DOWN:
                raise  # the scheduler's poll handles an outage
            except Exception as exc:
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


class Reporter:
    """Loop (thread ``kiqpy.batch-reports``): take the successful jobs of batches (and jobs
    whose result is kept) that processor threads hand over, store their results and report
    them, one ``batch_report.lua`` call per batch for up to MAX_GROUP jobs, then ack them
    (``Fetcher.done``): a job is acked only after its report is in Redis. Processors go on
    with their next job meanwhile, so a busy worker sends one call for many jobs. Owns its
    queue. Exits on :meth:`close` (shutdown, after the processors stopped), once what is
    queued is reported; on a forced shutdown (``give_up``) what it holds is released un-acked,
    so it is requeued (and reported again by its next run: reports are idempotent)."""

    _STOP = object()

    def __init__(self, outcomes: Outcomes, done: Callable[[str, bytes, float], None],
                 release: Callable[[str, bytes], None], outage: Outage,
                 give_up: threading.Event) -> None:
        self.outcomes, self.done, self.release = outcomes, done, release
        self.outage, self.give_up = outage, give_up
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.running = False
        self._finished = threading.Event()

    def put(self, handed: Handed) -> None:
        self._queue.put(handed)

    def start(self, spawn: Callable[[str, Callable[[], None]], Any]) -> None:
        """Start the thread (``Launcher.spawn``); jobs are handed over from then on."""
        self.running = True
        spawn("kiqpy.batch-reports", self.run)

    def run(self) -> None:
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                group: list[Handed] = []
                if first is self._STOP:
                    stopping = True
                else:
                    group.append(first)
                while len(group) < MAX_GROUP:  # everything handed over meanwhile
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is self._STOP:
                        stopping = True
                    else:
                        group.append(more)
                if group:
                    self._flush(group)
        finally:
            self.running = False
            self._finished.set()

    def _flush(self, group: list[Handed]) -> None:
        done = [(job, stored) for job, stored, *_ in group]
        ok = self.outage.retry(lambda: self.outcomes.write_successes(done), "batch",
                               self.give_up)
        for _, _, queue_name, payload, seconds in group:
            if ok is None:
                self.release(queue_name, payload)
            else:
                self.done(queue_name, payload, seconds)

    def close(self, timeout: float) -> bool:
        """Report what is queued, then stop; False if that took longer than ``timeout``."""
        self._queue.put(self._STOP)
        return self._finished.wait(timeout) if self.running else True
