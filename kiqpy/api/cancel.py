"""Cancelling a job by its jid, wherever it is (``kiqpy.api.cancel``), and the cancellations of
the last day.

    from kiqpy.api import cancel
    cancel("b4a577edbccf1d805744efa9")   # -> Cancellation(jid, where="queue:mail", ...)

A job waiting in a queue, the schedule or the retry set is removed. A running job is told: a
mark in Redis (a day) makes ``self.cancelled`` true in the job, which should stop at a good
moment (iterable jobs stop at the next iteration); when it stops, by returning or raising,
the worker neither retries it nor sends it to the dead set, and runs no death handler. Every
cancellation is kept a day in ``kiqpy:cancellations`` (:func:`cancellations`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from kiqpy.api.base import ApiObject, text
from kiqpy.api.processes import WorkSet
from kiqpy.api.queues import Queue
from kiqpy.api.sets import RetrySet, ScheduledSet
from kiqpy.config import Config

KEEP_SECONDS = 24 * 3600


@dataclass
class Cancellation:
    """What :func:`cancel` did: ``where`` is ``queue:<name>``, ``schedule``, ``retry``,
    ``running`` (told to stop), or None when no such job was waiting or running."""

    jid: str
    where: str | None
    job_class: str | None = None
    at: float = 0.0

    @property
    def found(self) -> bool:
        return self.where is not None

    def __str__(self) -> str:
        if self.where is None:
            return (f"no job {self.jid} is waiting or running (it finished, was cancelled, or "
                    f"never existed)")
        if self.where == "running":
            return f"job {self.jid} ({self.job_class}) is running: told to stop"
        return f"job {self.jid} ({self.job_class}) removed from {self.where}"


def cancel(jid: str, config: Config | None = None,
           redis_client: redis.Redis | None = None) -> Cancellation:
    """Cancel the job ``jid`` (see the module's text). Reads whole queues in the worst case."""
    api = ApiObject(config, redis_client)
    result = _remove_waiting(api, jid) or _tell_running(api, jid) or Cancellation(jid, None)
    if result.found:
        result.at = time.time()
        with api.io():
            pipe = api.redis.pipeline(transaction=False)
            pipe.set(api.keys.cancelled(jid), result.where or "", ex=KEEP_SECONDS)
            pipe.zadd(api.keys.cancellations, {json.dumps(
                {"jid": jid, "class": result.job_class, "where": result.where}): result.at})
            pipe.zremrangebyscore(api.keys.cancellations, "-inf", result.at - KEEP_SECONDS)
            pipe.execute()
    return result


def _remove_waiting(api: ApiObject, jid: str) -> Cancellation | None:
    for job_set in (ScheduledSet(api.config, api.redis), RetrySet(api.config, api.redis)):
        entry = job_set.find_job(jid)
        if entry is not None and entry.delete():
            return Cancellation(jid, job_set.name, entry.klass)
    for queue in Queue.all(api.config, api.redis):
        record = queue.find_job(jid)
        if record is not None and queue.delete_by_value(record.value):
            return Cancellation(jid, f"queue:{queue.name}", record.klass)
    return None


def _tell_running(api: ApiObject, jid: str) -> Cancellation | None:
    for _, _, work in WorkSet(api.config, api.redis):
        if work.job.jid == jid:
            return Cancellation(jid, "running", work.job.klass)
    return None


def cancellations(config: Config | None = None, redis_client: redis.Redis | None = None
                  ) -> list[Cancellation]:
    """The jobs cancelled in the last day, newest first."""
    api = ApiObject(config, redis_client)
    with api.io():
        rows: list[tuple[bytes, float]] = api.redis.zrevrangebyscore(  # type: ignore[assignment]
            api.keys.cancellations, "+inf", time.time() - KEEP_SECONDS, withscores=True)
    found = []
    for member, score in rows:
        try:
            data = json.loads(text(member))
        except ValueError:
            continue
        found.append(Cancellation(str(data.get("jid")), data.get("where"), data.get("class"),
                                  float(score)))
    return found
