"""Per-request observability hooks: request id, access log, HTTP metrics and the request span."""
from __future__ import annotations

import contextlib
import logging
import time

from flask import Flask, g, request

from sidecar.observability import tracing
from sidecar.observability.logs import bind_request_id, choose_request_id, reset_request_id
from sidecar.observability.metrics import metrics
from sidecar.rerank.deadline import mark_arrival, reset_arrival

access_log = logging.getLogger("sidecar.access")
REQUEST_ID_HEADER = "X-Request-Id"


def install(app: Flask) -> None:
    """Register before/after/teardown hooks on app."""

    @app.before_request
    def _start() -> None:
        g.rescore_started = time.perf_counter()
        g.rescore_arrival_token = mark_arrival()  # rerank deadlines count from here
        g.rescore_request_id = choose_request_id(request.headers.get(REQUEST_ID_HEADER),
                                                 request.headers.get("X-Opaque-Id"))
        g.rescore_token = bind_request_id(g.rescore_request_id)
        stack = contextlib.ExitStack()
        g.rescore_span = stack.enter_context(tracing.span(f"{request.method} {request.endpoint or 'unmatched'}",
                                                          request_id=g.rescore_request_id, path=request.path))
        g.rescore_span_stack = stack

    @app.after_request
    def _finish(response):
        started = g.get("rescore_started")
        if started is None:  # a hook before ours failed; nothing to record
            return response
        seconds = time.perf_counter() - started
        endpoint = request.endpoint or "unmatched"
        response.headers[REQUEST_ID_HEADER] = g.rescore_request_id
        metrics().observe_request(endpoint, request.method, response.status_code, seconds)
        tracing.set_attributes(g.get("rescore_span"), status=response.status_code)
        access_log.info("request method=%s path=%s endpoint=%s status=%d duration_ms=%.1f bytes=%s remote=%s",
                        request.method, request.path, endpoint, response.status_code, seconds * 1000,
                        response.calculate_content_length() if not response.is_streamed else "-",
                        request.remote_addr or "-")
        return response

    @app.teardown_request
    def _teardown(_exc) -> None:
        stack = g.pop("rescore_span_stack", None)
        if stack is not None:
            stack.close()
        token = g.pop("rescore_token", None)
        if token is not None:
            reset_request_id(token)
        arrival = g.pop("rescore_arrival_token", None)
        if arrival is not None:
            reset_arrival(arrival)
