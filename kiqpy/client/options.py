"""Worker options: who declares each one, how it is checked, and the error for unknown ones.

Core options are declared here. Bundled middleware declares its own with :func:`declare_option`
when imported, so ``unique_for`` is only accepted once ``kiqpy_middleware.unique`` is loaded, and
a class that uses it earlier gets an error saying which module to import.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import math
from collections.abc import Callable, Mapping
from typing import Any

from kiqpy.errors import OptionsError

Validator = Callable[[Any], Any]  # returns the normalized value or raises ValueError/TypeError


def _queue(value: Any) -> str:
    if type(value) is not str or not value.strip():
        raise TypeError("must be a non-empty str")
    return value


def _retry(value: Any) -> bool | int:
    if type(value) is bool:
        return value
    if type(value) is int and value >= 0:
        return value
    raise TypeError("must be True, False or a number of retries (int >= 0)")


def seconds(value: Any) -> float:
    """A positive, finite duration given as a number of seconds or a timedelta. Middleware
    declaring a duration option passes this to :func:`declare_option`."""
    if isinstance(value, _dt.timedelta):
        value = value.total_seconds()
    # inf would reach the payload and break JSON encoding; nan compares false and slips by.
    if type(value) in (int, float) and 0 < value < math.inf:
        return float(value)
    raise TypeError("must be a positive number of seconds or a timedelta")


def _bool_or_lines(value: Any) -> bool | int:
    if type(value) is bool or (type(value) is int and value > 0):
        return value
    raise TypeError("must be True, False or a number of lines (int > 0)")


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise TypeError("must be True or False")
    return value


def _positive_int(value: Any) -> int:
    if type(value) is int and value >= 1:
        return value
    raise TypeError("must be an int >= 1")


def _callable(value: Any) -> Any:
    if callable(value):
        return value
    raise TypeError("must be a callable taking the job's arguments and returning a str")


def _tags(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)) and all(type(t) is str for t in value):
        return list(value)
    raise TypeError("must be a list of str")


# name -> (validator, declared by)
_DECLARED: dict[str, tuple[Validator, str]] = {
    "queue": (_queue, "kiqpy"),
    "retry": (_retry, "kiqpy"),
    "retry_queue": (_queue, "kiqpy"),
    "retry_for": (seconds, "kiqpy"),
    "backtrace": (_bool_or_lines, "kiqpy"),
    "dead": (_bool, "kiqpy"),
    "tags": (_tags, "kiqpy"),
    "name": (_queue, "kiqpy"),
    "timeout": (seconds, "kiqpy"),
    # At most this many jobs of the class run at once across the cluster (kiqpy/server/
    # processor.py holds a slot of a concurrent limiter named class:<name> while one runs).
    "concurrency_limit": (_positive_int, "kiqpy"),
    # With concurrency_limit: the limit applies per key, concurrency_key(*args) -> str
    # ("at most 1 per account"); the limiter is then named class:<name>:<key>.
    "concurrency_key": (_callable, "kiqpy"),
    # Push when the current database transaction commits (Config.defer_push decides what a
    # transaction is; kiqpy.contrib.django installs one). False: push now even inside one.
    "on_commit": (_bool, "kiqpy"),
    # Keep perform's return value in Redis for kiqpy.result(jid): store_result=True for a day,
    # or result_ttl=seconds (kiqpy/client/results.py; stored by kiqpy/server/batches.py).
    "store_result": (_bool, "kiqpy"),
    "result_ttl": (seconds, "kiqpy"),
}

# Options of bundled middleware, known before they are imported so the error can say where
# they live.
_BUNDLED = {
    "unique_for": "kiqpy_middleware.unique",
    "unique_until": "kiqpy_middleware.unique",
    "expires_in": "kiqpy_middleware.expiry",
}

# Options fixed when the class is defined; they are not copied into the payload.
PUSH_ONLY = frozenset({"name", "concurrency_limit", "concurrency_key"})
# Options that only steer the push itself (class-wide or per push); not in the payload either.
NOT_IN_PAYLOAD = PUSH_ONLY | {"on_commit"}


def declare_option(name: str, validator: Validator, owner: str) -> None:
    """Let workers use option ``name``, checked by ``validator`` (declared by ``owner``)."""
    current = _DECLARED.get(name)
    if current is not None and current[1] != owner:
        raise OptionsError(f"option {name!r} is already declared by {current[1]}")
    _DECLARED[name] = (validator, owner)


def validate_options(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check every option; return them normalized. ``where`` names the class for messages."""
    result: dict[str, Any] = {}
    for name, value in options.items():
        declared = _DECLARED.get(name)
        if declared is None:
            raise OptionsError(f"{where}: {_unknown(name)}")
        try:
            result[name] = declared[0](value)
        except (TypeError, ValueError) as exc:
            raise OptionsError(f"{where}: option {name}={value!r} {exc}") from None
    return result


def validate_push_options(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Like :func:`validate_options`, for options given per push (``set()``, ``enqueue()``,
    ``Client.push``), where a class-only option such as ``name`` would be silently ignored."""
    for name in PUSH_ONLY.intersection(options):
        raise OptionsError(f"{where}: option {name!r} is fixed when the class is defined "
                           f"(class Job(kiqpy.Worker, {name}=...))")
    return validate_options(options, where)


def is_option(name: str) -> bool:
    """Whether ``name`` is a worker option: declared (by kiqpy or an imported middleware) or
    belonging to a bundled middleware not imported yet. Per push, other keys are custom job
    fields (see :func:`kiqpy.client.build.split_push` in kiqpy.client.build)."""
    return name in _DECLARED or name in _BUNDLED


def near_option(name: str) -> str | None:
    """The option ``name`` is most likely a misspelling of (``qeue`` -> ``queue``), if any.
    A per-push key this close to an option is refused rather than stored as a custom field,
    so a typo cannot silently send a job to the default queue.

    A key that extends an option with a suffix (``queued``, ``names``, ``tags_extra``) is a
    field name of its own, not a typo of that option, so it is not refused on its account;
    ``retry_queu`` still is (it extends ``retry`` but is a typo of ``retry_queue``)."""
    known = set(_DECLARED) | set(_BUNDLED)
    close = difflib.get_close_matches(name, sorted(known), n=len(known), cutoff=0.8)
    typos = [option for option in close
             if not (name.startswith(option) and len(name) > len(option))]
    return typos[0] if typos else None


def _unknown(name: str) -> str:
    if name in _BUNDLED:
        return (f"option {name!r} belongs to {_BUNDLED[name]}; import it (and add its "
                f"middleware) before defining this class")
    known = sorted(set(_DECLARED) | set(_BUNDLED))
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    return f"unknown option {name!r}{hint} Known options: {', '.join(known)}"
