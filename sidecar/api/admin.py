"""Liveness and readiness endpoints."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("admin", __name__)


@bp.get("/health")
def health():
    """Report that the process is alive (no dependency checks)."""
    return jsonify({"status": "ok"})


@bp.get("/ready")
def ready():
    """Report whether OpenSearch answers and the reranker is loaded; 503 otherwise."""
    services = current_app.extensions["rescore"]
    opensearch_ok = services.gateway.ping()
    reranker = services.reranker_health()
    ok = opensearch_ok and reranker.get("status") in ("ok", "lazy")
    body = {
        "status": "ready" if ok else "not_ready",
        "opensearch": {"url": services.settings.opensearch_url, "reachable": opensearch_ok},
        "reranker": reranker,
    }
    response = jsonify(body)
    response.status_code = 200 if ok else 503
    return response
