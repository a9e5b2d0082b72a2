"""Error reporting to Sentry (extra ``kiqpy[sentry]``: sentry-sdk): every failure of a job, once,
with the job's class, jid, queue and retry count as tags and its (truncated) args as context.

    import sentry_sdk
    import kiqpy_middleware.sentry

    sentry_sdk.init(dsn=...)                       # as the application does anyway
    kiqpy_middleware.sentry.install()              # in a module the worker loads with -r

It is a kiqpy error handler, so it runs once per failure, in the worker, before the retry
decision: a failure that ``kiqpy_retry_in`` then kills or discards is still reported (it was
an error). Errors a job class expects are not: list their types in the class attribute
``kiqpy_expected_errors`` (for example a transient HTTP error the retries take care of)::

    class SyncFeed(kiqpy.Worker):
        kiqpy_expected_errors = (TimeoutError,)
"""

from __future__ import annotations

from typing import Any

import sentry_sdk

import kiqpy

ARGS_LIMIT = 1000  # characters of the job's args sent as context


class SentryReporter:
    """A kiqpy error handler (``(exc, {"job": ..., "queue": ...})``) that reports to Sentry."""

    def __call__(self, exc: BaseException, context: dict[str, Any]) -> None:
        job = context.get("job") or {}
        if self._expected(job, exc):
            return
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("kiqpy.job_class", str(job.get("class", "")))
            scope.set_tag("kiqpy.queue", str(context.get("queue", job.get("queue", ""))))
            scope.set_tag("kiqpy.jid", str(job.get("jid", "")))
            retry_count = job.get("retry_count")
            scope.set_context("kiqpy", {
                "jid": job.get("jid"), "class": job.get("class"), "queue": job.get("queue"),
                # The failure before this one's count (None: this is the first failure).
                "retry_count": retry_count, "retry": job.get("retry"),
                "args": repr(job.get("args"))[:ARGS_LIMIT],
                "enqueued_at": job.get("enqueued_at"), "created_at": job.get("created_at"),
            })
            scope.fingerprint = ["{{ default }}", str(job.get("class", ""))]
            sentry_sdk.capture_exception(exc)

    @staticmethod
    def _expected(job: dict[str, Any], exc: BaseException) -> bool:
        cls = kiqpy.registered().get(str(job.get("class", "")))
        expected = getattr(cls, "kiqpy_expected_errors", ()) if cls is not None else ()
        return bool(expected) and isinstance(exc, tuple(expected))


def install(config: kiqpy.Config | None = None) -> None:
    """Add a :class:`SentryReporter` to the error handlers of ``config`` (the default
    configuration when None), once."""
    target = config if config is not None else kiqpy.default_config()
    if not any(isinstance(h, SentryReporter) for h in target.error_handlers):
        target.error_handlers.append(SentryReporter())
