"""What happens when a job fails: error handlers, the retry set with exponential backoff, the
dead set, and the class hooks ``kiqpy_retry_in`` and ``kiqpy_retries_exhausted``.

Follows Sidekiq's rules:

- ``retry=False``: no retry and no dead set; death handlers run.
- ``retry=N`` (True = 25): after the first failure the job gets ``failed_at`` and
  ``retry_count=0``; each later failure bumps ``retry_count`` and sets ``retried_at``. While
  ``retry_count < N`` (or, with ``retry_for``, while ``failed_at + retry_for`` is in the future)
  the job goes to the ``retry`` set, due in ``count**4 + 15 + rand(10 * (count + 1))`` seconds.
- Then ``kiqpy_retries_exhausted(job, exc)`` runs and the job goes to the ``dead`` set (unless
  ``dead=False``), trimmed to the newest ``dead_max_jobs`` and to ``dead_timeout`` seconds.
- ``kiqpy_retry_in(count, exc, job)`` may return seconds, "kill" (dead now), "discard" (drop)
  or None (default backoff).
- Death handlers run for every job that leaves after a failure without a retry: the dead set,
  ``dead=False``, ``retry=False`` and "discard". As in Sidekiq 7.3+, a dropped job (not kept
  in the dead set) gets ``discarded_at`` so a handler can tell it from a killed one.

A job that raised :class:`kiqpy.limiter.OverLimit` is not a failure: :meth:`Retrier.overrated`
puts it back in the ``schedule`` set with its ``overrated`` count bumped, its retry fields
untouched, and no handler run; after ``MAX_OVERRATED`` reschedules it fails as usual.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import redis

from kiqpy.client.worker import Worker
from kiqpy.config import Config
from kiqpy.connection import REDIS_DOWN
from kiqpy.errors import OverLimit
from kiqpy.failures import (
    add_dead,
    compress_backtrace,
    error_class,
    error_message,
    malformed_job,
)
from kiqpy.keys import Keys
from kiqpy.limiter import MAX_OVERRATED
from kiqpy.payload import Job, encode, epoch_seconds, now_ms, serializer_of, set_member
from kiqpy.server.batches import Outcomes, tracked
from kiqpy.server.outage import Outage


def default_delay(count: int) -> float:
    """Sidekiq's backoff: grows as count**4 (15 s, 16 s, 31 s, 96 s ... ~20 days in all for
    25 retries); the random part, up to 10 s per attempt so far, spreads out jobs that
    failed together so they do not all retry at the same instant."""
    return count**4 + 15 + random.randrange(10 * (count + 1))


def overrated_delay(count: int, hint: float) -> float:
    """Seconds until a job whose limiter was full runs again, the ``count``-th time: the
    limiter's hint (when a place might free up), at least 1 s, growing by half each time up to
    5 minutes (1, 1.5, 2.3 ... s); plus up to half that again at random, so jobs turned away
    together do not all come back at the same instant and be turned away again."""
    base = min(max(hint, 1.0) * 1.5 ** (count - 1), 300.0)
    return base + random.uniform(0, base / 2)


class Retrier:
    """Decides and records the outcome of a failed job. Its Redis writes retry through outages
    and give up only when ``give_up`` is set (hard shutdown), returning None: the job then
    stays in-flight, un-acked, to be requeued or recovered."""

    def __init__(self, config: Config, client: redis.Redis, keys: Keys, outage: Outage,
                 log: Any, give_up: threading.Event) -> None:
        self.config, self.redis, self.keys = config, client, keys
        self.outage, self.log, self.give_up = outage, log, give_up
        # Batch reports and stored results, for jobs that carry a bid or want their result.
        self.outcomes = Outcomes(config, client, keys, outage, give_up, log)

    # -- failures ----------------------------------------------------------------------------
    def failed(self, queue: str, job: Job, exc: BaseException, cls: type[Worker] | None,
               payload: bytes) -> str | None:
        """Record a failure; returns "retry", "dead", "discarded", "cancelled", or None if
        interrupted. A job of a batch (or with store_result) is then reported, before the
        ack: a failure to its batch, "dead" as a death; a final outcome to its result."""
        outcome = self._failed(queue, job, exc, cls, payload)
        if outcome is None or not tracked(job):
            return outcome
        return self.outcomes.failed(job, exc, outcome)

    def _failed(self, queue: str, job: Job, exc: BaseException, cls: type[Worker] | None,
                payload: bytes) -> str | None:
        if self._cancelled(job):
            # Cancelled while it ran (kiqpy.api.cancel): it stopped as asked. Not an error:
            # no handlers, no retry, no dead set.
            self.log.info("cancelled job stopped", jid=job.get("jid"), job_class=job.get("class"))
            return "cancelled"
        self._run_error_handlers(exc, job, queue)
        retry = job.get("retry")
        if retry is False:
            job["discarded_at"] = now_ms()  # as every discard, so a handler can tell
            self._run_death_handlers(job, exc)
            return "discarded"
        self._stamp(job, exc, self.config.now_stamp(serializer_of(payload)))
        if not self._exhausted(job, retry):
            delay = self._delay(cls, job, exc)
            if delay == "discard":
                job["discarded_at"] = now_ms()
                self._run_death_handlers(job, exc)
                return "discarded"
            if delay != "kill":
                due = time.time() + float(delay)
                # As Sidekiq: the member holds neither the run time (the score) nor the old
                # enqueued_at; the poller stamps a fresh one when it queues the retry.
                data = encode(set_member(job), serializer_of(payload))
                ok = self.outage.retry(lambda: self.redis.zadd(self.keys.retry, {data: due}),
                                       "retry", self.give_up)
                return None if ok is None else "retry"
        return self._exhausted_outcome(cls, job, exc, payload)

    def _cancelled(self, job: Job) -> bool:
        jid = job.get("jid")
        if not isinstance(jid, str):
            return False
        try:
            return bool(self.redis.exists(self.keys.cancelled(jid)))
        except (*REDIS_DOWN, redis.exceptions.ResponseError):
            return False  # cannot tell: treat it as the failure it looks like

    def _stamp(self, job: Job, exc: BaseException, now: int | float) -> None:
        """The error fields; ``now`` is failed_at/retried_at in the unit of the payload's
        format (Config.now_stamp)."""
        job["error_message"] = error_message(exc)
        job["error_class"] = error_class(exc)
        if job.get("retry_queue"):
            job["queue"] = job["retry_queue"]
        if "retry_count" in job and isinstance(job["retry_count"], int):
            job["retry_count"] += 1
            job["retried_at"] = now
        else:
            job["retry_count"] = 0
            job["failed_at"] = now
        backtrace = job.get("backtrace")
        if backtrace:
            job["error_backtrace"] = compress_backtrace(exc, backtrace)

    def _exhausted(self, job: Job, retry: Any) -> bool:
        retry_for = job.get("retry_for")
        if isinstance(retry_for, (int, float)) and retry_for > 0:
            # Sidekiq 8 writes failed_at in ms, older versions in float seconds.
            failed_at = epoch_seconds(job.get("failed_at"))
            return failed_at is not None and time.time() > failed_at + retry_for
        # As Sidekiq: an int is the number of retries; anything else (True, or a null or odd
        # value from another producer) means the default.
        limit = retry if type(retry) is int else self.config.max_retries
        return bool(job["retry_count"] >= limit)

    def _delay(self, cls: type[Worker] | None, job: Job, exc: BaseException) -> float | str:
        count = job["retry_count"]
        hook = getattr(cls, "kiqpy_retry_in", None) if cls is not None else None
        if hook is not None:
            try:
                chosen = cls().kiqpy_retry_in(count, exc, job)  # type: ignore[misc,union-attr]
            except Exception as hook_exc:
                self.log.error("kiqpy_retry_in failed; using the default delay",
                               jid=job.get("jid"), error=repr(hook_exc))
            else:
                if chosen in ("kill", "discard"):
                    return str(chosen)
                if isinstance(chosen, (int, float)) and not isinstance(chosen, bool):
                    return max(0.0, float(chosen))
                if chosen is not None:
                    self.log.error("kiqpy_retry_in returned an unknown value; using the "
                                   "default delay", jid=job.get("jid"), value=repr(chosen))
        return default_delay(count)

    def _exhausted_outcome(self, cls: type[Worker] | None, job: Job, exc: BaseException,
                           payload: bytes) -> str | None:
        hook = getattr(cls, "kiqpy_retries_exhausted", None) if cls is not None else None
        if hook is not None:
            try:
                cls().kiqpy_retries_exhausted(job, exc)  # type: ignore[misc,union-attr]
            except Exception as hook_exc:
                self.log.error("kiqpy_retries_exhausted failed", jid=job.get("jid"),
                               error=repr(hook_exc))
        if job.get("dead", True) is False:
            job["discarded_at"] = now_ms()
            self._run_death_handlers(job, exc)
            return "discarded"
        if self.send_to_dead(job, serializer_of(payload)) is None:
            return None
        self._run_death_handlers(job, exc)
        return "dead"

    # -- over a limit ------------------------------------------------------------------------
    def overrated(self, queue: str, job: Job, exc: OverLimit, cls: type[Worker] | None,
                  payload: bytes) -> str | None:
        """Reschedule a job whose limiter was full: "overrated", or None if interrupted (the
        job then stays in-flight). Past ``MAX_OVERRATED`` reschedules it is a failure."""
        previous = job.get("overrated")
        count = (previous if type(previous) is int else 0) + 1
        if count > MAX_OVERRATED:
            return self.failed(queue, job, exc, cls, payload)
        job["overrated"] = count
        due = time.time() + overrated_delay(count, exc.retry_after)
        data = encode(set_member(job), serializer_of(payload))
        ok = self.outage.retry(lambda: self.redis.zadd(self.keys.schedule, {data: due}),
                               "reschedule", self.give_up)
        return None if ok is None else "overrated"

    def put_back(self, job: Job, payload: bytes) -> str | None:
        """A job whose class is at its ``concurrency_limit``: back to the schedule set, due in
        0.5 to 1.5 s (random, so jobs put back together do not all come back at once), with
        nothing counted: not an attempt, not a reschedule. "throttled", or None if interrupted
        by a forced shutdown (the job then stays in-flight)."""
        due = time.time() + random.uniform(0.5, 1.5)
        data = encode(set_member(job), serializer_of(payload))
        ok = self.outage.retry(lambda: self.redis.zadd(self.keys.schedule, {data: due}),
                               "put back", self.give_up)
        return None if ok is None else "throttled"

    # -- the dead set ------------------------------------------------------------------------
    def send_to_dead(self, job: Job, serializer: str) -> bool | None:
        """Add ``job`` to the dead set and trim it; None if interrupted by a hard stop."""
        data = encode(job, serializer)
        return self.outage.retry(lambda: self._add_dead(data), "dead", self.give_up)

    def _add_dead(self, data: bytes) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        add_dead(pipe, self.keys, self.config, data)
        pipe.execute()
        return True

    def malformed(self, queue: str, payload: bytes, reason: str) -> bool | None:
        """A payload that is not a job: keep its bytes in the dead set, with the reason."""
        self.log.error("malformed payload sent to the dead set", queue=queue, reason=reason)
        return self.send_to_dead(malformed_job(queue, payload, reason), "msgpack")

    # -- handlers ----------------------------------------------------------------------------
    def _run_error_handlers(self, exc: BaseException, job: Job, queue: str) -> None:
        for handler in self.config.error_handlers:
            try:
                handler(exc, {"job": job, "queue": queue})
            except Exception as handler_exc:
                self.log.error("error handler failed", handler=repr(handler),
                               error=repr(handler_exc))

    def _run_death_handlers(self, job: Job, exc: BaseException) -> None:
        run_death_handlers(self.config, self.log, job, exc)


def run_death_handlers(config: Config, log: Any, job: Job, exc: BaseException) -> None:
    """Call every ``config.death_handlers`` entry with ``(job, exc)``; one that raises is
    logged and does not stop the others. Also used by orphan recovery for poison pills."""
    for handler in config.death_handlers:
        try:
            handler(job, exc)
        except Exception as handler_exc:
            log.error("death handler failed", handler=repr(handler), error=repr(handler_exc))
