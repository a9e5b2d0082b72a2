"""Building job maps: the fields a push may set (:func:`split_push`), the options that travel in a
payload, and :class:`JobBuilder`, which makes the job map and runs it through the client
middleware chain. Shared by every client (real, fake, inline). Does no I/O.
"""

from __future__ import annotations

import contextvars
import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis

from kiqpy.client.options import NOT_IN_PAYLOAD, is_option, near_option, validate_push_options
from kiqpy.config import Config
from kiqpy.errors import ArgumentError, OptionsError
from kiqpy.payload import Job, check_args, check_job, check_value, new_jid

#: A job class (a kiqpy.Worker subclass) or a job name, for jobs defined elsewhere.
JobClass = type[Any] | str

#: The batch whose ``with batch.jobs():`` block is open in this context (a
#: :class:`kiqpy.client.batch.Batch`), or None. Every push reads it (one ContextVar get): inside
#: the block, jobs get its ``bid`` and are registered in it before they are stored.
current_batch: contextvars.ContextVar[Any] = contextvars.ContextVar("kiqpy_batch",
                                                                    default=None)


def payload_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options that travel in the payload (all but push-only ones). List and dict values
    are copied, so a middleware that edits ``job["tags"]`` cannot change the class's options."""
    return {k: copy.deepcopy(v) if type(v) in (list, dict) else v
            for k, v in options.items() if k not in NOT_IN_PAYLOAD}


# -- per-push fields -----------------------------------------------------------------------
# Per push (Client.push, kiqpy.enqueue, Worker.set), as in Sidekiq, a key that is not an
# option is a custom field, stored in the job as given. Fields kiqpy itself writes get this:
# - "class", "args" and the run time ("at") come from the call, never from a field;
# - "enqueued_at" is written when the job reaches its queue, so a caller's is dropped (on a
#   scheduled job it would survive the move to the queue and fake the job's latency);
# - "jid" and "created_at" are kept when valid (Sidekiq's ``item["jid"] ||= ...``);
# - the retry state passes through (a job moved from another system keeps its history), with
#   the types the retrier reads, so a bad one fails here rather than in the worker.
_FROM_CALL = frozenset({"class", "args", "at"})
_DROPPED = frozenset({"enqueued_at"})


def _jid(value: Any) -> str | None:
    return None if type(value) is str and value else "must be a non-empty str"


def _epoch(value: Any) -> str | None:
    if type(value) in (int, float) and math.isfinite(value) and value >= 0:
        return None
    return "must be epoch seconds (float) or milliseconds (int)"


def _count(value: Any) -> str | None:
    return None if type(value) is int and value >= 0 else "must be an int >= 0"


def _text(value: Any) -> str | None:
    return None if type(value) is str else "must be a str"


_RESERVED: dict[str, Callable[[Any], str | None]] = {
    "jid": _jid, "created_at": _epoch, "retry_count": _count, "failed_at": _epoch,
    "retried_at": _epoch, "error_class": _text, "error_message": _text,
    "error_backtrace": _text,
}


def split_push(fields: Mapping[Any, Any], where: str, serializer: str
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split per-push keys into (options, custom fields), Sidekiq-style. Options are checked
    like a class's; fields kiqpy writes itself are checked or dropped (see above); every
    other value must be msgpack/JSON-native, and an error names its path::

        push('OtherApp::Job'): job["tenant"]["since"]: datetime is not serializable; ...
    """
    options: dict[str, Any] = {}
    custom: dict[Any, Any] = {}
    for key, value in fields.items():
        if type(key) is str and is_option(key):
            options[key] = value
        elif key in _FROM_CALL:
            raise ArgumentError(f"{where}: {key!r} is not a field to set; the job class, args "
                                f"and run time come from the call")
        elif key not in _DROPPED:
            near = near_option(key) if type(key) is str and key not in _RESERVED else None
            if near is not None:
                raise OptionsError(f"{where}: unknown option {key!r}; did you mean {near!r}? "
                                   f"(a custom field may not be named this close to an "
                                   f"option)")
            problem = _RESERVED[key](value) if key in _RESERVED else None
            if problem is not None:
                raise ArgumentError(f"{where}: {key}={value!r} {problem}")
            custom[key] = value
    if custom:
        try:
            check_value(custom, "job", serializer)
        except ArgumentError as exc:
            raise ArgumentError(f"{where}: {exc}") from None
    return validate_push_options(options, where), custom


class JobBuilder:
    """Builds job maps and runs them through the client chain. Shared by every client (real,
    fake, inline), so a test sees exactly the job a real push would store. Does no I/O."""

    def __init__(self, config: Config, redis_client: redis.Redis | None = None) -> None:
        self.config = config
        self.redis = redis_client

    def build(self, job_class: JobClass, args: Sequence[Any], options: dict[str, Any],
              at: float | None, *, checked: bool = False, fields: dict[str, Any] | None = None
              ) -> Job | None:
        """The job map for one push, after the client chain (None if a middleware stopped it).
        ``checked``: the caller has already passed ``args`` through :func:`check_args`.
        ``fields``: custom fields from :func:`split_push` (a ``jid`` or ``created_at`` there
        is kept)."""
        args = list(args)
        if not checked:
            check_args(args, self.config.serializer)
        name = job_class if isinstance(job_class, str) else job_class.kiqpy_job_name
        if not name:
            raise ArgumentError("kiqpy.Worker itself is not a job class; push a subclass")
        job: Job = {"class": name, "args": args, "queue": "default", "retry": True}
        job.update(payload_options(options))
        if fields:
            # A copy per job: bulk jobs, and middleware editing one, share nothing.
            job.update(copy.deepcopy(fields))
            job.setdefault("jid", new_jid())
            job.setdefault("created_at", self.config.now_stamp())
        else:
            job["jid"] = new_jid()
            job["created_at"] = self.config.now_stamp()
        if at is not None:
            job["at"] = at
        return self.run_chain(job_class, job)

    def run_chain(self, job_class: JobClass, job: Job) -> Job | None:
        chain = self.config.client_middleware
        if not chain:
            return job
        result = chain.invoke(lambda: job, job_class, job, job["queue"], self.redis)
        if result is None:
            return None
        # As in Sidekiq, what the chain returns is what gets pushed: a middleware may edit the
        # job in place or return a new map. It may have put anything in it, so check it again
        # (fields and every value) before any I/O.
        if type(result) is dict:
            job = result
        check_job(job, self.config.serializer)
        return job
