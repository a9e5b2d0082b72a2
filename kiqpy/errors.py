"""kiqpy's exceptions: one tree, so callers can catch exactly what they mean.

    KiqpyError
     ├── ConfigurationError (ValueError)   bad configuration or CLI value
     │    └── OptionsError                 a bad or unknown worker option (at class definition)
     ├── ArgumentError (TypeError)         job args that cannot be serialized, raised before any I/O
     ├── PayloadError (ValueError)         bytes in Redis that are not a job payload
     ├── UnknownJobError (LookupError)     a payload names a class this process has not registered
     ├── RedisUnavailableError (ConnectionError)  Redis unreachable (redis-py error chained)
     │    └── NotReplicatedError           a push the master took but too few replicas
     │                                     acknowledged in time (Config.push_replicas)
     ├── RedisRefusedError (redis.exceptions.ResponseError)  Redis answered "no" to a push:
     │                                     out of memory, READONLY replica, WRONGTYPE key
     ├── JobTimeout                        a job ran longer than its ``timeout`` option
     ├── Interrupted                       an iterable job stopped for a shutdown (requeued)
     ├── PoisonPill                        what death handlers get for a job whose workers
     │                                     died under it again and again (kiqpy.server.recovery)
     ├── OverLimit                         a kiqpy.limiter limiter refused a call; in a job the
     │                                     worker reschedules it (not a failure, not a retry)
     ├── NoJobsError (LookupError)         testing: perform_one() on an empty fake queue
     ├── JobFailed                         kiqpy.result(jid): the job died (or was discarded)
     ├── ResultError (TypeError)           a job with store_result returned a value that is
     │                                     not msgpack/JSON-native (the job counts as failed)
     └── WorkflowError (ValueError)        a workflow or batch that cannot run: a cycle, an
                                           unknown dependency, a duplicate step name

Vendor errors (redis-py) are translated at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

import redis


class KiqpyError(Exception):
    """Base class of every error kiqpy raises on purpose."""


class ConfigurationError(KiqpyError, ValueError):
    """A configuration value (from code, env, a config file or the CLI) is not valid."""


class OptionsError(ConfigurationError):
    """A worker option is unknown or has the wrong type; raised when the class is defined."""


class ArgumentError(KiqpyError, TypeError):
    """Job arguments that msgpack/JSON cannot carry faithfully; raised at push time, before I/O."""


class PayloadError(KiqpyError, ValueError):
    """Bytes taken from Redis that do not decode to a valid job map."""


class UnknownJobError(KiqpyError, LookupError):
    """A payload names a job class that is not registered in this process."""


class RedisUnavailableError(KiqpyError, ConnectionError):
    """Redis could not be reached or did not answer; says which Redis and why."""


class NotReplicatedError(RedisUnavailableError):
    """With ``Config.push_replicas = N``: the master stored the push, but fewer than N replicas
    acknowledged it within ``push_replicas_timeout``, so a failover now could lose it. Pushing
    again may enqueue the job twice (jobs are at-least-once anyway)."""


class RedisRefusedError(KiqpyError, redis.exceptions.ResponseError):
    """Redis refused a push (``OOM`` under ``maxmemory``, ``READONLY`` on a replica,
    ``WRONGTYPE`` on a key of another type); the message names the (password-free) Redis URL
    and Redis's reason, and the redis-py error is chained. Also a
    ``redis.exceptions.ResponseError``, so ``except redis.ResponseError`` still catches it::

        try:
            HardWorker.perform_async("bob", 5)
        except kiqpy.RedisRefusedError as exc:
            log.warning("job not enqueued", reason=str(exc))
    """


class JobTimeout(KiqpyError):
    """Raised inside a job that ran longer than its ``timeout`` option (or the worker's
    ``--default-timeout``); it then fails and follows its retry rules like any error."""


class Interrupted(KiqpyError):
    """Raised by an iterable job that stopped between iterations because its worker is shutting
    down: the worker does not ack it, and the shutdown pushes it back to its queue, to resume
    from its saved cursor. Not a failure."""


class PoisonPill(KiqpyError):
    """What death handlers get as ``exc`` for a poison pill: no exception was raised (its
    workers died), so this one carries the job's ``error_message``."""


class OverLimit(KiqpyError):
    """A :mod:`kiqpy.limiter` limiter is at its limit (after waiting up to its
    ``wait_timeout``). Raised inside a job, the worker catches it and reschedules the job with a
    growing delay, without counting a failure or a retry; anywhere else the caller gets it::

        try:
            with STRIPE.within_limit():
                charge(order)
        except kiqpy.limiter.OverLimit as exc:
            retry_later(seconds=exc.retry_after)

    ``limiter`` is the limiter's name, ``kind`` its kind, ``retry_after`` the seconds until a
    call might pass (a hint: another caller may take that place first)."""

    def __init__(self, limiter: str, kind: str, retry_after: float) -> None:
        super().__init__(f"{kind} limiter {limiter!r} is over its limit; "
                         f"retry in about {retry_after:.3f}s")
        self.limiter, self.kind, self.retry_after = limiter, kind, retry_after

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.limiter, self.kind, self.retry_after))


class NoJobsError(KiqpyError, LookupError):
    """Testing helpers: there is no fake job to perform."""


class JobFailed(KiqpyError):
    """``kiqpy.result(jid)`` of a job that died (dead set) or was discarded after failing:
    ``jid``, ``error_class`` and ``error_message`` say what happened."""

    def __init__(self, jid: str, error_class: str, error_message: str) -> None:
        super().__init__(f"job {jid} failed for good: {error_class}: {error_message}")
        self.jid, self.error_class, self.error_message = jid, error_class, error_message


class ResultError(KiqpyError, TypeError):
    """A job with ``store_result`` returned a value that cannot be stored (not msgpack/JSON
    native); the job counts as failed."""


class WorkflowError(KiqpyError, ValueError):
    """A batch or workflow that cannot run: a cycle, an unknown dependency, a duplicate step
    name, an unknown or expired batch id, an unknown callback event."""
