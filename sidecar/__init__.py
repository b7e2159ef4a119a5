"""rescore-sidecar: reranking sidecar for OpenSearch/Elasticsearch search apps."""
from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask

from sidecar.config import Settings

log = logging.getLogger(__name__)

__all__ = ["Services", "Settings", "create_app"]


class Services:
    """Long-lived objects shared by all requests of one worker: clients and models."""

    def __init__(self, settings: Settings) -> None:
        from sidecar.rerank.breaker import CircuitBreaker
        from sidecar.search.opensearch import ConnectionInfo, OpenSearchGateway, make_client
        from sidecar.search.syntax import RerankDefaults
        from sidecar.search.templates import TemplateInspector

        self.settings = settings
        self.connection = ConnectionInfo(
            url=settings.opensearch_url,
            user=settings.opensearch_user,
            password=settings.opensearch_password,
            verify_certs=settings.opensearch_verify_certs,
            ca_certs=settings.opensearch_ca_certs,
            timeout_s=settings.opensearch_timeout_s,
        )
        self.gateway = OpenSearchGateway(self.connection)
        self.client = make_client(self.connection)
        self.template_inspector = TemplateInspector(self.client)
        self.breaker = CircuitBreaker(failures=settings.circuit_failures, cooldown_s=settings.circuit_cooldown_s)
        self.rerank_defaults = RerankDefaults(
            window_size=settings.rerank_window_size,
            fields=settings.field_list,
            fusion=settings.rerank_fusion,
            weights=settings.weight_pair,
            timeout_ms=settings.rerank_timeout_ms,
            max_window=settings.max_window_size,
            max_text_chars=settings.max_text_chars,
            text_overflow=settings.text_overflow,
        )
        self._lock = threading.Lock()
        self._embedder = None
        self._reranker = None
        self._reranker_error: str | None = None

    @property
    def embedder(self):
        """The query embedder for kNN, loaded on first use."""
        with self._lock:
            if self._embedder is None:
                from sidecar.embed import OnnxEmbedder

                self._embedder = OnnxEmbedder(
                    self.settings.embed_model_dir or None, query_prefix=self.settings.embed_query_prefix
                )
            return self._embedder

    @property
    def reranker(self):
        """The rerank service, built on first use (or at start-up with preload_model)."""
        with self._lock:
            if self._reranker is None:
                from sidecar.rerank.service import build_reranker

                try:
                    self._reranker = build_reranker(self.settings.reranker)
                    self._reranker_error = None
                except Exception as exc:  # surfaced through /ready and the response ext
                    self._reranker_error = f"{type(exc).__name__}: {exc}"
                    raise
            return self._reranker

    def reranker_health(self) -> dict[str, Any]:
        """Return the reranker's health without loading it."""
        if self._reranker is not None:
            return self._reranker.health()
        if self._reranker_error:
            return {"status": "error", "error": self._reranker_error}
        return {"status": "lazy", "backend": self.settings.reranker.backend}

    def close(self) -> None:
        if self._reranker is not None:
            self._reranker.close()
        self.gateway.close()


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app: the only place where services are wired together."""
    from sidecar.api import admin, auth, openapi, proxy, rerank_compat, rescore, search
    from sidecar.api.errors import register_error_handlers

    settings = settings or Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    services = Services(settings)
    app.extensions["rescore"] = services
    register_error_handlers(app)
    auth.install(app)
    app.register_blueprint(admin.bp)
    app.register_blueprint(rescore.bp)
    app.register_blueprint(rerank_compat.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(proxy.bp)  # last: its catch-all route must not shadow ours
    if settings.preload_model:
        try:
            services.reranker.warmup()
        except Exception:
            log.exception("reranker preload failed backend=%s; searches fall back to first-stage order",
                          settings.reranker.backend)
    log.info("sidecar ready settings=%s", settings.redacted())
    return app
