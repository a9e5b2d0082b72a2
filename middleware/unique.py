"""Unique jobs, like Sidekiq Enterprise's: within a time window, at most one copy of a job (same
class, queue and args) is pending in Redis.

    import kiqpy
    import kiqpy_middleware.unique

    kiqpy_middleware.unique.install()    # where jobs are pushed and in the worker (a -r module)

    class SyncAddress(kiqpy.Worker, unique_for=600):       # seconds or a timedelta
        def perform(self, user_id): ...

    SyncAddress.perform_async(42)    # -> "5f1c..." (the jid)
    SyncAddress.perform_async(42)    # -> None: a copy is already pending (logged at debug)
    SyncAddress.perform_async(43)    # -> a jid: other args make another job

Importing this module declares the worker options ``unique_for`` (seconds or timedelta, > 0)
and ``unique_until``:

- ``"success"`` (the default): the lock is released when ``perform`` returns, or when the job
  dies (see below). A failure that is retried keeps it, so no copy is pushed while the job
  waits for its retry (a retry runs the same job);
- ``"start"``: the lock is released just before ``perform`` runs, so a copy may be pushed
  while this one is running.

How: :class:`UniqueClient` takes the lock ``unique:<digest>`` (:func:`digest`: sha256 of class,
queue and canonical JSON of args) with ``SET NX``, valued with the job's jid and expiring after
``unique_for`` seconds, plus the delay for a scheduled job (``perform_in(3600, ...)`` with
``unique_for=600`` holds it for 70 minutes). When the lock is taken, the push is dropped and
``perform_async`` returns None (``perform_bulk`` gives None for that item). The digest travels
in the job as ``unique_digest``; :class:`UniqueServer` releases the lock only while it still
holds this job's jid (``kiqpy/lua/unlock.lua``), never a newer copy's.

A job that dies is released too, as Sidekiq Enterprise does: :class:`UniqueDeath`, a death
handler, runs when the job goes to the dead set (retries exhausted, ``kiqpy_retry_in``
returned "kill", or a poison pill) or is dropped after a failure (``retry=False``, ``dead=False``,
``kiqpy_retry_in`` returned "discard"), so a copy can be pushed at once.

Uniqueness is best effort: the lock always expires after the window, so a crashed worker never
holds one for ever, and a job that keeps failing past the window lets a copy in. Each unique
push costs one extra round
trip (also in bulk pushes); other jobs pass through at the cost of one dict lookup. The testing
modes (``kiqpy.testing``) have no Redis, so they push every copy.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import structlog
from redis import Redis
from redis.exceptions import RedisError

import kiqpy
from kiqpy.client.options import seconds
from kiqpy_middleware._common import Connection, translate_errors

__all__ = ["UniqueClient", "UniqueDeath", "UniqueServer", "digest", "install"]

OWNER = "kiqpy_middleware.unique"
UNTIL = ("success", "start")


def _until(value: Any) -> str:
    if type(value) is not str or value not in UNTIL:
        raise ValueError('must be "success" or "start"')
    return value


kiqpy.declare_option("unique_for", seconds, OWNER)
kiqpy.declare_option("unique_until", _until, OWNER)


def digest(job_class: str, queue: str, args: list[Any]) -> str:
    """The identity of a job for uniqueness: sha256 (hex) of its registered class name, queue
    and args as canonical JSON (sorted keys, no spaces), so ``{"a": 1, "b": 2}`` and
    ``{"b": 2, "a": 1}`` are the same job while ``1`` and ``1.0`` are not.

    >>> digest("SyncAddress", "default", [42])[:12]
    '6464ce0e41db'
    """
    text = json.dumps([job_class, queue, args], sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class UniqueClient:
    """Client middleware: drops a push while a copy of the job holds the lock.

    ``config``: the configuration whose namespace the locks live in; None follows the default
    configuration. Usually added by :func:`install`."""

    def __init__(self, config: kiqpy.Config | None = None, log: Any = None) -> None:
        self.connection = Connection(config)
        self.log = log if log is not None else structlog.get_logger("kiqpy")

    def __call__(self, worker_class: Any, job: dict[str, Any], queue: str,
                 redis: Redis | None, next: Callable[[], Any]) -> Any:
        unique_for = job.get("unique_for")
        if unique_for is None or redis is None:  # not unique, or a testing mode
            return next()
        return self._push_once(job, unique_for, redis, next)

    def _push_once(self, job: dict[str, Any], unique_for: float, redis: Redis,
                   next: Callable[[], Any]) -> Any:
        job_digest = digest(job["class"], job["queue"], job["args"])
        at = job.get("at")
        # A scheduled job is pending from now until it runs: the window starts at its run time.
        ttl = unique_for + max(at - time.time(), 0.0) if at is not None else unique_for
        lock, jid = self.connection.client().keys.unique(job_digest), job["jid"]
        with translate_errors("take a unique-job lock"):
            taken = redis.set(lock, jid, nx=True, px=max(round(ttl * 1000), 1))
        if not taken:
            self.log.debug("duplicate job not pushed", job_class=job["class"],
                           queue=job["queue"], unique_digest=job_digest)
            return None
        job["unique_digest"] = job_digest
        try:
            result = next()
        except BaseException:
            self._release(lock, jid, redis)
            raise
        if result is None:  # a later middleware stopped the push: the lock guards nothing
            self._release(lock, jid, redis)
        return result

    def _release(self, lock: str, jid: str, redis: Redis) -> None:
        try:
            self.connection.client().scripts.unlock(keys=[lock], args=[jid], client=redis)
        except RedisError as exc:
            self.log.warning("unique-job lock not released; it expires on its own",
                             error=str(exc))


class UniqueServer:
    """Server middleware: releases a unique job's lock after ``perform`` succeeds (or before
    it starts, with ``unique_until="start"``), if the lock still holds this job's jid.

    ``config``: the configuration whose Redis and namespace hold the locks; None follows the
    default configuration (the worker's, once it has started). Usually added by
    :func:`install`."""

    def __init__(self, config: kiqpy.Config | None = None, log: Any = None) -> None:
        self.connection = Connection(config)
        self.log = log if log is not None else structlog.get_logger("kiqpy")

    def __call__(self, worker: Any, job: dict[str, Any], queue: str,
                 next: Callable[[], Any]) -> Any:
        job_digest = job.get("unique_digest")
        if job_digest is None:
            return next()
        if job.get("unique_until") == "start":
            self._release(job_digest, job["jid"])
            return next()
        result = next()  # an exception keeps the lock: the retry is this same job
        self._release(job_digest, job["jid"])
        return result

    def _release(self, job_digest: str, jid: str) -> None:
        _unlock(self.connection, self.log, job_digest, jid)


class UniqueDeath:
    """Death handler: releases a unique job's lock when the job dies or is dropped after a
    failure (kiqpy runs death handlers for the dead set, ``retry=False``, ``dead=False`` and
    ``kiqpy_retry_in`` returning "kill" or "discard"), if the lock still holds this job's jid.
    Added to ``config.death_handlers`` by :func:`install`."""

    def __init__(self, config: kiqpy.Config | None = None, log: Any = None) -> None:
        self.connection = Connection(config)
        self.log = log if log is not None else structlog.get_logger("kiqpy")

    def __call__(self, job: dict[str, Any], exc: BaseException) -> None:
        job_digest, jid = job.get("unique_digest"), job.get("jid")
        if type(job_digest) is str and type(jid) is str:
            _unlock(self.connection, self.log, job_digest, jid)


def _unlock(connection: Connection, log: Any, job_digest: str, jid: str) -> None:
    client = connection.client()
    try:
        client.scripts.unlock(keys=[client.keys.unique(job_digest)], args=[jid])
    except RedisError as exc:
        # The job's own outcome stands: failing it now would run it twice.
        log.warning("unique-job lock not released; it expires on its own", error=str(exc))


def install(config: kiqpy.Config | None = None) -> None:
    """Add :class:`UniqueClient` and :class:`UniqueServer` to the middleware chains of
    ``config`` (the default configuration when None, whose later replacements by
    ``kiqpy.configure(...)`` share its chains and handlers), and :class:`UniqueDeath` to its
    death handlers. Calling it again changes nothing but moves them to the end.

        import kiqpy_middleware.unique
        kiqpy_middleware.unique.install()
    """
    target = config if config is not None else kiqpy.default_config()
    target.client_middleware.add(UniqueClient, config)
    target.server_middleware.add(UniqueServer, config)
    handlers = target.death_handlers
    handlers[:] = [h for h in handlers if not isinstance(h, UniqueDeath)]
    handlers.append(UniqueDeath(config))
