"""A worker app traced with OpenTelemetry: the SDK's TracerProvider with an exporter that
writes each finished span to ``test:spans`` (JSON), so the test (another process) sees them."""

from __future__ import annotations

import json
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import kiqpy
import kiqpy_middleware.opentelemetry
from tests import app_jobs  # noqa: F401  (the job classes)
from tests.app_jobs import r


class RedisExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            parent = span.parent
            r().rpush("test:spans", json.dumps({
                "name": span.name, "kind": span.kind.name,
                "trace_id": format(span.context.trace_id, "032x"),
                "span_id": format(span.context.span_id, "016x"),
                "parent_id": format(parent.span_id, "016x") if parent else None,
                "status": span.status.status_code.name,
                "events": [event.name for event in span.events],
                "attributes": dict(span.attributes or {}),
            }))
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(RedisExporter()))
trace.set_tracer_provider(provider)
kiqpy_middleware.opentelemetry.install()


class Traced(kiqpy.Worker, name="Traced", retry=False):
    def perform(self, fail: bool) -> None:
        if fail:
            raise ValueError("the invoice total is negative")
