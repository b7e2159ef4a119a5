"""OpenTelemetry spans for a reranked search (RESCORE_TRACING=global with an in-memory exporter)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")


def test_spans_cover_the_request_and_its_stages(opensearch_url, demo_index):
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from sidecar import create_app
    from sidecar.config import Settings
    from sidecar.observability import tracing

    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    app = create_app(Settings.from_env({}, opensearch_url=opensearch_url, preload_model=False, tracing="global"))
    try:
        body = {"query": {"match": {"title": "solar wind"}}, "size": 3,
                "ext": {"rerank": {"query_context": {"query_text": "solar power"}, "window_size": 5}}}
        response = app.test_client().post(f"/{demo_index}/_search", json=body,
                                          headers={"X-Request-Id": "trace-me"})
        assert response.status_code == 200
    finally:
        tracing.configure("off")
        app.extensions["rescore"].close()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert {"POST search.search", "first_stage", "rerank"} <= set(spans), set(spans)
    root = spans["POST search.search"]
    assert root.attributes["rescore.request_id"] == "trace-me" and root.attributes["rescore.status"] == 200
    for child in ("first_stage", "rerank"):
        assert spans[child].context.trace_id == root.context.trace_id
        assert spans[child].parent.span_id == root.context.span_id
    assert spans["rerank"].attributes["rescore.status"] == "ok"
    assert spans["rerank"].attributes["rescore.model_ms"] > 0
    assert spans["first_stage"].attributes["rescore.index"] == demo_index
