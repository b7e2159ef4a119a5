"""Optional OpenTelemetry tracing (RESCORE_TRACING): spans per request and per search stage.

off (default): `span()` is a no-op and opentelemetry is never imported. console / otlp: the SDK is
set up here with that exporter (pip install 'rescore-sidecar[otel]'; otlp also needs
opentelemetry-exporter-otlp-proto-http, configured by the standard OTEL_EXPORTER_OTLP_* variables).
global: use whatever tracer provider the process already has (e.g. `opentelemetry-instrument`).
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

MODES = ("off", "console", "otlp", "global")
_tracer: Any = None


class TracingSetupError(RuntimeError):
    """Tracing was switched on but its packages are missing."""


def configure(mode: str, service_name: str = "rescore-sidecar") -> None:
    """Enable tracing in `mode` (one of MODES) for this process."""
    global _tracer
    if mode == "off":
        _tracer = None
        return
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise TracingSetupError("RESCORE_TRACING needs opentelemetry: pip install 'rescore-sidecar[otel]'") from exc
    if mode in ("console", "otlp"):
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        except ImportError as exc:
            raise TracingSetupError("RESCORE_TRACING=%s needs opentelemetry-sdk: pip install "
                                    "'rescore-sidecar[otel]'" % mode) from exc
        if mode == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError as exc:
                raise TracingSetupError("RESCORE_TRACING=otlp needs opentelemetry-exporter-otlp-proto-http") from exc
            exporter = OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("rescore-sidecar")
    log.info("tracing_enabled mode=%s", mode)


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """Open a span named name (a no-op while tracing is off); yields the span or None."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name) as current:
        for key, value in attributes.items():
            if value is not None:
                current.set_attribute(f"rescore.{key}", value)
        yield current


def set_attributes(current: Any, **attributes: Any) -> None:
    """Set attributes on a span from span() (ignored when tracing is off)."""
    if current is None:
        return
    for key, value in attributes.items():
        if isinstance(value, (str, bool, int, float)):
            current.set_attribute(f"rescore.{key}", value)


def traceparent() -> str | None:
    """Return the W3C traceparent of the current span, to send on to OpenSearch (None when off)."""
    if _tracer is None:
        return None
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")
