"""Per-request observability hooks: request id, access log, HTTP metrics and the request span."""
from __future__ import annotations

import contextlib
import ipaddress
import logging
import time
from collections.abc import Sequence

from flask import Flask, g, request

from sidecar.observability import tracing
from sidecar.observability.logs import bind_request_id, choose_request_id, reset_request_id
from sidecar.observability.metrics import metrics
from sidecar.rerank.deadline import mark_arrival, reset_arrival

access_log = logging.getLogger("sidecar.access")
REQUEST_ID_HEADER = "X-Request-Id"
# Set by a front on the requests it hands to its rerank pool (sidecar/api/handover.py), read there only.
ARRIVAL_HEADER = "X-Rescore-Arrival"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """Return the client's address: the peer, or, when the peer is a trusted proxy, the nearest
    address in X-Forwarded-For that is not a trusted proxy (read right to left: each proxy appends
    the address it received from, so entries further left can be forged by the client)."""
    if not peer or not forwarded_for or not _trusted(_ip(peer), trusted):
        return peer or "-"
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:  # not an address: nothing further left can be believed either
            return peer
        if not _trusted(ip, trusted):
            return hop
    return hops[0]  # every hop a trusted proxy (each one parsed above)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, trusted: Sequence[Network]) -> bool:
    return ip is not None and any(ip in network for network in trusted)


def _front_arrival() -> float | None:
    """The front's arrival time of the request it handed over (time.monotonic(), one clock per host)."""
    try:
        at = float(request.headers.get(ARRIVAL_HEADER, ""))
    except ValueError:
        return None
    now = time.monotonic()
    return at if now - 3600 < at <= now else None


def install(app: Flask, trusted_proxies: Sequence[Network] = (), behind_front: bool = False) -> None:
    """Register before/after/teardown hooks on app; X-Forwarded-For counts from trusted_proxies only.

    behind_front: this is a rerank pool, reached only through its front's private socket; the
    front counts the request and logs its access line, and its deadline runs from the front's
    arrival (ARRIVAL_HEADER).
    """

    @app.before_request
    def _start() -> None:
        g.rescore_started = time.perf_counter()
        # Rerank deadlines count from here (in a pool: from the front's arrival, so a request's time
        # waiting for a pool thread is spent from its budget too).
        g.rescore_arrival_token = mark_arrival(_front_arrival() if behind_front else None)
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
        tracing.set_attributes(g.get("rescore_span"), status=response.status_code)
        if behind_front:  # the front that handed the request over counts it and writes its access line
            return response
        metrics().observe_request(endpoint, request.method, response.status_code, seconds)
        access_log.info("request method=%s path=%s endpoint=%s status=%d duration_ms=%.1f bytes=%s remote=%s "
                        "peer=%s", request.method, request.path, endpoint, response.status_code, seconds * 1000,
                        response.calculate_content_length() if not response.is_streamed else "-",
                        client_address(request.remote_addr, request.headers.get("X-Forwarded-For"),
                                       trusted_proxies), request.remote_addr or "-")
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
