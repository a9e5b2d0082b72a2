"""kiqpy_middleware.opentelemetry: a push in a traced request and its execution in a real
worker end in one trace (producer span -> consumer span), with the messaging attributes and
the error recorded on failure."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import kiqpy
import kiqpy_middleware.opentelemetry
from kiqpy.payload import decode
from tests.conftest import wait_for
from tests.workers import WorkerProcess


@pytest.fixture
def traced(config):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    kiqpy_middleware.opentelemetry.install(config, tracer_provider=provider)
    yield provider.get_tracer("test"), exporter


def spans(r) -> list[dict]:
    return [json.loads(raw) for raw in r.lrange("test:spans", 0, -1)]


@pytest.mark.slow
def test_a_push_and_its_run_in_a_worker_are_one_trace(traced, config, r, redis_url):
    tracer, exporter = traced
    # Given a push made inside a web request's span
    with tracer.start_as_current_span("GET /invoices") as request:
        jid = kiqpy.enqueue("Traced", False, queue="billing")
        kiqpy.enqueue("Traced", True, queue="billing")
    producer = next(s for s in exporter.get_finished_spans() if s.name == "publish billing")
    assert producer.parent.span_id == request.get_span_context().span_id
    assert producer.kind.name == "PRODUCER"
    assert producer.attributes["messaging.system"] == "kiqpy"
    stored = decode(r.lrange("queue:billing", -1, -1)[0])
    assert stored["jid"] == jid and stored["traceparent"].startswith("00-")
    # When a traced worker runs both jobs
    with WorkerProcess(redis_url, "-q", "billing", require="tests.app_tracing"):
        wait_for(lambda: len(spans(r)) == 2, timeout=20, message="two consumer spans")
    done = {s["attributes"]["messaging.message.id"]: s for s in spans(r)}
    ok = done[jid]
    # Then the run is a CONSUMER span, child of the push's span, in the request's trace
    assert ok["trace_id"] == format(request.get_span_context().trace_id, "032x")
    assert ok["parent_id"] == format(producer.context.span_id, "016x")
    assert (ok["name"], ok["kind"], ok["status"]) == ("process billing", "CONSUMER", "UNSET")
    assert ok["attributes"]["messaging.destination.name"] == "billing"
    assert ok["attributes"]["kiqpy.job_class"] == "Traced"
    # And the failing one records the exception and an error status
    [failed] = [s for s in spans(r) if s is not ok and s["status"] == "ERROR"]
    assert failed["events"] == ["exception"]


def test_without_a_tracer_provider_pushes_work_and_carry_no_trace(config, r):
    kiqpy_middleware.opentelemetry.install(config)  # the global provider: a no-op one
    kiqpy.enqueue("Traced", False)
    job = decode(r.lrange("queue:default", 0, -1)[0])
    assert "traceparent" not in job  # no active span: nothing to carry
