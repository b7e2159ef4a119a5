"""One error hierarchy for the sidecar's own endpoints, mapped once to HTTP status and JSON."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from werkzeug.exceptions import HTTPException, default_exceptions
from werkzeug.http import HTTP_STATUS_CODES

from sidecar.observability.metrics import metrics
from sidecar.engine.client import OpenSearchUnavailable

log = logging.getLogger(__name__)


class SidecarError(Exception):
    """Base error: carries an HTTP status, a machine-readable error_type and the offending field."""

    status = 500
    error_type = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        body = {"error": self.message, "error_type": self.error_type}
        if self.field is not None:
            body["field"] = self.field
        return body


class BadRequest(SidecarError):
    """The body is not parseable (malformed JSON, invalid UTF-8)."""

    status = 400
    error_type = "bad_request"


class ValidationFailed(SidecarError):
    """The body parses but a field has a wrong type or value."""

    status = 422
    error_type = "validation_error"


class Unauthorized(SidecarError):
    """Missing or wrong API key (RESCORE_API_KEYS / RESCORE_PROXY_API_KEYS)."""

    status = 401
    error_type = "unauthorized"


class Forbidden(SidecarError):
    """The pass-through allowlist (RESCORE_PROXY_ALLOW) does not open this API's group."""

    status = 403
    error_type = "proxy_forbidden"

    def __init__(self, message: str, *, group: str) -> None:
        super().__init__(message, field="RESCORE_PROXY_ALLOW")
        self.group = group

    def to_dict(self) -> dict:
        return {**super().to_dict(), "group": self.group}


class PayloadTooLarge(SidecarError):
    status = 413
    error_type = "payload_too_large"


class Overloaded(SidecarError):
    status = 429
    error_type = "overloaded"


class BackendFailed(SidecarError):
    """The reranker backend failed in a way the caller must see (no fallback possible)."""

    status = 424
    error_type = "backend_error"


class RerankFailed(SidecarError):
    """A rerank that must not degrade (text_similarity_reranker with allow_rerank_failures false) failed."""

    status = 500
    error_type = "rerank_failed"

    def __init__(self, message: str, *, rerank: dict) -> None:
        super().__init__(message)
        self.rerank = rerank

    def to_dict(self) -> dict:
        return {**super().to_dict(), "rerank": self.rerank}


class Unavailable(SidecarError):
    status = 503
    error_type = "unavailable"


class UpstreamUnavailable(SidecarError):
    """OpenSearch did not answer."""

    status = 502
    error_type = "opensearch_unavailable"


def error_label(error_type: str) -> str:
    """Return error_type if the error tree (or werkzeug's HTTP errors) defines it, else "other" (metric label)."""
    known = {_http_error_type(code) for code in default_exceptions}
    pending: list[type] = [SidecarError]
    while pending:
        cls = pending.pop()
        known.add(cls.error_type)
        pending.extend(cls.__subclasses__())
    return error_type if error_type in known else "other"


def _http_error_type(code: int | None) -> str:
    return HTTP_STATUS_CODES.get(code or 500, "Unknown Error").lower().replace(" ", "_")


def engine_challenges(status: int, body: Any) -> list[str]:
    """Return the WWW-Authenticate challenges of an engine's 401 error body (empty otherwise).

    Engines put them into the body (error.header.WWW-Authenticate) as well as the header; a
    sidecar answer rebuilt from the body sends them as headers again.
    """
    error = body.get("error") if isinstance(body, dict) else None
    header = error.get("header") if isinstance(error, dict) else None
    challenges = header.get("WWW-Authenticate") if isinstance(header, dict) else None
    if status != 401 or not isinstance(challenges, (list, str)):
        return []
    return [c for c in ([challenges] if isinstance(challenges, str) else challenges) if isinstance(c, str)]


def register_error_handlers(app: Flask) -> None:
    """Map every error to a JSON body {error, error_type[, field]} with its status."""

    @app.errorhandler(SidecarError)
    def _sidecar_error(exc: SidecarError):
        metrics().observe_error(error_label(exc.error_type))
        if exc.status >= 500:
            log.warning("request failed status=%d error_type=%s error=%s", exc.status, exc.error_type, exc.message)
        response = jsonify(exc.to_dict())
        response.status_code = exc.status
        if isinstance(exc, Overloaded):
            response.headers["Retry-After"] = "1"
        if isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="rescore-sidecar"'
        return response

    @app.errorhandler(OpenSearchUnavailable)
    def _upstream(exc: OpenSearchUnavailable):
        return _sidecar_error(UpstreamUnavailable(str(exc)))

    @app.errorhandler(OpenSearchConnectionError)
    def _client_upstream(exc: OpenSearchConnectionError):
        # opensearch-py's connection errors (refused, timeout, TLS) from the structured client.
        return _sidecar_error(UpstreamUnavailable(f"OpenSearch unreachable: {type(exc).__name__}"))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if exc.code == 413:
            return _sidecar_error(PayloadTooLarge("request body is larger than RESCORE_MAX_BODY_BYTES", field="body"))
        error_type = _http_error_type(exc.code)
        metrics().observe_error(error_label(error_type))
        response = jsonify({"error": exc.description, "error_type": error_type})
        response.status_code = exc.code or 500
        return response
