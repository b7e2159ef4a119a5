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
        from sidecar.experiments.ab import ExperimentConfig, load_config
        from sidecar.rerank import doc_text
        from sidecar.rerank.breaker import CircuitBreaker
        from sidecar.search.feedback_store import FeedbackStore
        from sidecar.engine import EngineRef
        from sidecar.engine.client import ConnectionInfo, OpenSearchGateway, OpenSearchUnavailable, make_client
        from sidecar.search.policies import IndexResolver, PolicySet, load_policies
        from sidecar.search.query_understanding import build_pipeline
        from sidecar.search.syntax import RerankDefaults
        from sidecar.search.templates import TemplateInspector

        self.settings = settings
        self.connection = ConnectionInfo(
            url=settings.opensearch_url,
            user=settings.opensearch_user,
            password=settings.opensearch_password,
            verify_certs=settings.opensearch_verify_certs,
            ca_certs=settings.opensearch_ca_certs,
        retry_after_s=settings.opensearch_retry_after_s,
        discover=settings.opensearch_discover,
            timeout_s=settings.opensearch_timeout_s,
        )
        self.gateway = OpenSearchGateway(self.connection)
        if settings.opensearch_discover:
            self.gateway.discover()
        # The service account: the sidecar's own bookkeeping only (README "Identity").
        self.client = make_client(self.connection)
        # OpenSearch or Elasticsearch: set by RESCORE_ENGINE or detected (and re-detected after an outage).
        self.engine = EngineRef(settings.engine, self.gateway)
        try:
            self.engine.refresh()
        except OpenSearchUnavailable:
            log.warning("engine not reachable at start-up; detected on first use")
        # Calls made for the caller being served carry the caller's credentials, never the sidecar's.
        self.caller_client = make_client(self.connection, as_caller=True)
        self.template_inspector = TemplateInspector(self.caller_client, cache_bytes=settings.template_cache_bytes)
        self.breaker = CircuitBreaker(failures=settings.circuit_failures, cooldown_s=settings.circuit_cooldown_s)
        self.rerank_defaults = RerankDefaults(
            window_size=settings.rerank_window_size,
            fields=settings.field_list,
            fusion=settings.rerank_fusion,
            weights=settings.weight_pair,
            rank_constant=settings.rerank_rank_constant,
            temperature=settings.rerank_temperature,
            timeout_ms=settings.rerank_timeout_ms,
            max_window=settings.max_window_size,
            max_text_chars=settings.max_text_chars,
            text_overflow=settings.text_overflow,
            passages=settings.passage_options,
            # A bad template file stops the start-up: the error names the file.
            doc_templates=doc_text.load_dir(settings.doc_templates_dir or doc_text.DEFAULT_DIR),
            personalization=settings.personalization,
            personalization_brand_field=settings.personalization_brand_field,
            personalization_category_field=settings.personalization_category_field,
            personalization_weight=settings.personalization_weight,
            query_pipeline=build_pipeline(settings.query_analyzers, rules_file=settings.query_rules_file,
                                          languages=settings.query_language_list),
        )
        # A bad experiments file stops the start-up: the error names the file and the JSON path.
        self.experiments = (load_config(settings.experiments_file, base=settings.reranker,
                                        max_window=settings.max_window_size)
                            if settings.experiments_file else ExperimentConfig())
        # A bad policies file stops the start-up: the error names the file and the path inside it.
        self.policies = (load_policies(settings.policies_file, self.rerank_defaults)
                         if settings.policies_file else PolicySet())
        self.index_resolver = IndexResolver(self.client)
        # Events are written as the sidecar (its own index); reports read them as the caller.
        self.feedback = FeedbackStore(self.client, settings.feedback_index, reader=self.caller_client)
        self._lock = threading.Lock()
        self._embedder = None
        self._reranker = None
        self._reranker_error: str | None = None
        # Rerankers of experiment variants that change model/quantization/backend, one per options,
        # each with its own circuit breaker so a failing variant never trips the control's.
        self._variant_lock = threading.Lock()
        self._variant_rerankers: dict[Any, Any] = {}
        self._variant_breakers: dict[Any, CircuitBreaker] = {}

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
    def front_of_pool(self) -> bool:
        """Whether a rerank pool serves this process's model requests (the front holds no model)."""
        return self.settings.serving_role == "front" and bool(self.settings.rerank_pool_socket)

    @property
    def reranker(self):
        """The rerank service, built on first use (or at start-up with preload_model).

        A front of a rerank pool builds none: it serves a model request only when the pool did not
        answer, and then as a reranker fault (first-stage order, status error).
        """
        if self.front_of_pool:
            from sidecar.backends.base import BackendError

            raise BackendError(f"the rerank pool did not answer (socket {self.settings.rerank_pool_socket})")
        with self._lock:
            if self._reranker is None:
                from sidecar.rerank.service import build_reranker

                try:
                    self._reranker = build_reranker(self.settings.reranker)
                    self._reranker.watch(self.breaker.record_verdict)
                    self._reranker_error = None
                except Exception as exc:  # surfaced through /ready and the response ext
                    self._reranker_error = f"{type(exc).__name__}: {exc}"
                    raise
            return self._reranker

    def reranker_for(self, options):
        """Return the reranker for these options: the default one for None, else built once and cached."""
        if options is None or options == self.settings.reranker or self.front_of_pool:
            return self.reranker
        with self._variant_lock:
            service = self._variant_rerankers.get(options)
            if service is None:
                from sidecar.rerank.service import build_reranker

                service = build_reranker(options)
                service.watch(self._breaker_locked(options).record_verdict)
                self._variant_rerankers[options] = service
            return service

    def breaker_for(self, options):
        """Return the circuit breaker of the reranker for these options (None: the default one)."""
        if options is None or options == self.settings.reranker:
            return self.breaker
        with self._variant_lock:
            return self._breaker_locked(options)

    def _breaker_locked(self, options):
        breaker = self._variant_breakers.get(options)
        if breaker is None:
            from sidecar.rerank.breaker import CircuitBreaker

            breaker = CircuitBreaker(failures=self.settings.circuit_failures,
                                     cooldown_s=self.settings.circuit_cooldown_s)
            self._variant_breakers[options] = breaker
        return breaker

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
        for service in self._variant_rerankers.values():
            service.close()
        self.gateway.close()


def pool_timeout_s(settings: Settings) -> float:
    """How long a front waits for the rerank pool's answer: longer than the pool's own graceful stop
    (sidecar/gunicorn.conf.py), so only a hung pool runs into it."""
    return 2 * (settings.rerank_timeout_ms / 1000 + 2 * settings.opensearch_timeout_s) + 10


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app: the only place where services are wired together."""
    from sidecar.api import (admin, allowlist, auth, elastic_compat, feedback, handover, openapi, proxy, request_body,
                             rerank_compat, rescore, response_format, search, ui)
    from sidecar.api.errors import register_error_handlers

    from sidecar.observability import http as observability_http
    from sidecar.observability import metrics as observability_metrics
    from sidecar.observability import tracing
    from sidecar.observability.logs import configure_logging

    from sidecar import memtrim

    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.log_format, role="pool" if settings.serving_role == "pool" else "")
    memtrim.start(settings.malloc_trim_s)
    observability_metrics.configure(settings.metrics_dir, settings.eval_metrics_file)
    tracing.configure(settings.tracing)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    services = Services(settings)
    app.extensions["rescore"] = services
    register_error_handlers(app)
    response_format.install(app)
    observability_http.install(app, settings.trusted_proxy_networks, behind_front=settings.serving_role == "pool")
    request_body.install(app)
    auth.install(app)
    allowlist.install(app, blueprints=frozenset({search.bp.name, proxy.bp.name}))
    elastic_compat.install(app)
    app.register_blueprint(admin.bp)
    app.register_blueprint(rescore.bp)
    app.register_blueprint(feedback.bp)
    app.register_blueprint(rerank_compat.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(ui.bp)
    app.register_blueprint(proxy.bp)  # last: its catch-all route must not shadow ours
    if services.front_of_pool:  # after auth and allowlist: a request is checked here before it is sent on
        handover.install(app, settings.rerank_pool_socket, timeout_s=pool_timeout_s(settings))
    elif settings.preload_model:
        try:
            services.reranker.warmup()
        except Exception:
            log.exception("reranker preload failed backend=%s; searches fall back to first-stage order",
                          settings.reranker.backend)
    log.info("%s ready settings=%s", "rerank pool" if settings.serving_role == "pool" else "sidecar",
             settings.redacted())
    return app
