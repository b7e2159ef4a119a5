"""Liveness, readiness and metrics endpoints (open to probes and scrapers even when API keys are set)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from sidecar.api.auth import is_authenticated
from sidecar.api.handover import handover
from sidecar.engine.client import OpenSearchUnavailable
from sidecar.observability.metrics import CONTENT_TYPE, metrics
from sidecar.observability.redact import redact_url

bp = Blueprint("admin", __name__)


@bp.get("/health")
def health():
    """Report that the process is alive (no dependency checks)."""
    return jsonify({"status": "ok"})


@bp.get("/ready")
def ready():
    """Report whether OpenSearch answers and the reranker is loaded; 503 otherwise.

    An open circuit breaker does not make the sidecar unready (searches still answer in
    first-stage order); it is reported under `circuit`. Without a valid key (when
    RESCORE_API_KEYS is set) only the status and the circuit state are shown.
    """
    services = current_app.extensions["rescore"]
    pool_down = False
    if services.front_of_pool:  # the model lives in the rerank pool: its readiness is the answer
        handed = handover()
        if handed is not None:
            return handed
        pool_down = True
    opensearch_ok = services.gateway.ping()
    engine = None
    if opensearch_ok:
        try:
            engine = services.engine.refresh().name  # re-detected after an outage
        except OpenSearchUnavailable:
            opensearch_ok = False
    reranker = ({"status": "error", "error": "the rerank pool did not answer"} if pool_down
                else services.reranker_health())
    ok = opensearch_ok and reranker.get("status") in ("ok", "lazy")
    body = {"status": "ready" if ok else "not_ready", "circuit": services.breaker.snapshot().as_dict()}
    if is_authenticated():
        body["opensearch"] = {"url": redact_url(services.settings.opensearch_url), "reachable": opensearch_ok, "engine": engine}
        body["reranker"] = reranker
    response = jsonify(body)
    response.status_code = 200 if ok else 503
    return response


@bp.get("/metrics", endpoint="metrics")  # "admin.metrics" is open in auth.py, like the probes
def prometheus_metrics():
    """Expose Prometheus metrics (all gunicorn workers when RESCORE_METRICS_DIR is set)."""
    return Response(metrics().render(), content_type=CONTENT_TYPE)
