"""OpenTelemetry tracing for kiqpy jobs (extra ``kiqpy[opentelemetry]``: opentelemetry-api).

A client middleware starts a PRODUCER span for each push (``publish <queue>``) and injects the
trace context into the job itself (W3C ``traceparent``/``tracestate`` fields, as
opentelemetry-ruby's Sidekiq instrumentation does), so it survives scheduling, retries and
crossing to a Ruby Sidekiq. A server middleware starts a CONSUMER span for each execution
(``process <queue>``) as a child of the producer span, so a web request, the jobs it pushed
and their runs are one trace; it records the exception and sets an error status when the job
fails. Attributes follow the messaging semantic conventions: ``messaging.system`` = "kiqpy",
``messaging.destination.name`` = the queue, ``messaging.message.id`` = the jid,
``messaging.operation.type``, plus ``kiqpy.job_class`` and ``kiqpy.retry_count``.

    import kiqpy_middleware.opentelemetry
    kiqpy_middleware.opentelemetry.install()      # where jobs are pushed, and in the worker

Only the API is used: spans go wherever the application's TracerProvider sends them (none
configured: no-op spans, at almost no cost).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import kiqpy

SYSTEM = "kiqpy"


def _tracer(provider: Any) -> trace.Tracer:
    return trace.get_tracer("kiqpy", kiqpy.__version__, tracer_provider=provider)


def _attributes(job: dict[str, Any], queue: str, operation: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.destination.name": queue,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "kiqpy.job_class": str(job.get("class", "")),
    }
    if job.get("jid"):
        attributes["messaging.message.id"] = str(job["jid"])
    if isinstance(job.get("retry_count"), int):
        attributes["kiqpy.retry_count"] = job["retry_count"]
    return attributes


class TracingClient:
    """Client middleware: a PRODUCER span per push, its context injected into the job."""

    def __init__(self, tracer_provider: Any = None) -> None:
        self.tracer = _tracer(tracer_provider)

    def __call__(self, job_class: Any, job: dict[str, Any], queue: str, redis: Any,
                 next: Callable[[], Any]) -> Any:
        with self.tracer.start_as_current_span(
                f"publish {queue}", kind=SpanKind.PRODUCER,
                attributes=_attributes(job, queue, "publish")):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            job.update(carrier)  # traceparent (and tracestate): plain string fields
            return next()


class TracingServer:
    """Server middleware: a CONSUMER span per execution, child of the push's span."""

    def __init__(self, tracer_provider: Any = None) -> None:
        self.tracer = _tracer(tracer_provider)

    def __call__(self, worker: Any, job: dict[str, Any], queue: str,
                 next: Callable[[], Any]) -> Any:
        carrier = {k: v for k in ("traceparent", "tracestate")
                   if isinstance(v := job.get(k), str)}
        parent = propagate.extract(carrier) if carrier else None
        with self.tracer.start_as_current_span(
                f"process {queue}", context=parent, kind=SpanKind.CONSUMER,
                attributes=_attributes(job, queue, "process"),
                record_exception=False, set_status_on_exception=False) as span:
            try:
                return next()
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
                raise


def install(config: kiqpy.Config | None = None, tracer_provider: Any = None) -> None:
    """Add :class:`TracingClient` and :class:`TracingServer` to the middleware chains of
    ``config`` (the default configuration when None), using ``tracer_provider`` (default: the
    global one the application set up)."""
    target = config if config is not None else kiqpy.default_config()
    target.client_middleware.add(TracingClient, tracer_provider)
    target.server_middleware.add(TracingServer, tracer_provider)
