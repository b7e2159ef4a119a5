"""GET /openapi.json: an OpenAPI 3.0.3 description of the sidecar's own endpoints.

The document is a static dict kept next to the views it describes (rerank_compat.py, rescore.py,
admin.py, schemas.py). The proxied OpenSearch API is not described here. tests/api/test_openapi.py
checks that it is valid OpenAPI and that its paths are exactly the sidecar's own routes.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

bp = Blueprint("openapi", __name__)

# A string with at least one non-blank character (the views reject "" and "   ").
_NON_BLANK = {"type": "string", "pattern": r"\S"}
_TEXT_ITEM = {
    "description": "A text, or an object whose `text` is the text.",
    "anyOf": [
        {"type": "string"},
        {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
    ],
}


def _text_list(description: str) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "maxItems": 1000, "items": _TEXT_ITEM,
            "description": description + " At most RESCORE_MAX_WINDOW_SIZE items."}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: str) -> dict[str, Any]:
    return {s: {"$ref": f"#/components/responses/Error{s}"} for s in statuses}


_SCORING_ERRORS = ("400", "401", "413", "422", "429", "503")

_COHERE_REQUEST = {
    "type": "object",
    "required": ["query", "documents"],
    "properties": {
        "query": _NON_BLANK,
        "documents": _text_list("Documents to rank."),
        "top_n": {"type": "integer", "minimum": 1, "description": "Return only the best top_n results."},
        "return_documents": {"type": "boolean", "default": False},
        "model": {"type": "string", "description": "Echoed back; the served model scores."},
    },
}

_COHERE_RESPONSE = {
    "type": "object",
    "required": ["id", "model", "results", "usage", "meta"],
    "properties": {
        "id": {"type": "string"},
        "model": {"type": "string"},
        "results": {"type": "array", "items": {
            "type": "object", "required": ["index", "relevance_score"],
            "properties": {
                "index": {"type": "integer", "minimum": 0},
                "relevance_score": {"type": "number", "minimum": 0, "maximum": 1},
                "document": {"type": "object", "properties": {"text": {"type": "string"}}},
            },
        }},
        "usage": {"type": "object", "properties": {"total_tokens": {"type": "integer"}}},
        "meta": {"type": "object", "properties": {
            "api_version": {"type": "object", "properties": {"version": {"type": "string"}}},
            "billed_units": {"type": "object"},
            "warnings": {"type": "array", "items": {"type": "string"},
                         "description": "e.g. texts cut to RESCORE_MAX_TEXT_CHARS."},
        }},
    },
}

_SCORE_REQUEST = {
    "type": "object",
    "required": ["text_1", "text_2"],
    "properties": {
        "model": {"type": "string"},
        "text_1": {"description": "One query, or a list as long as text_2 (N:N).",
                   "anyOf": [_NON_BLANK, _text_list("Queries.")]},
        "text_2": {"description": "One text or a list of texts to score against text_1.",
                   "anyOf": [{"type": "string"}, _text_list("Texts.")]},
    },
}

_SCORE_RESPONSE = {
    "type": "object",
    "required": ["id", "object", "created", "model", "data", "usage"],
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["list"]},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "data": {"type": "array", "items": {
            "type": "object", "required": ["index", "object", "score"],
            "properties": {"index": {"type": "integer", "minimum": 0},
                           "object": {"type": "string", "enum": ["score"]},
                           "score": {"type": "number", "minimum": 0, "maximum": 1}},
        }},
        "usage": {"type": "object"},
        "meta": {"type": "object", "description": "Only when there is something to report.", "properties": {
            "warnings": {"type": "array", "items": {"type": "string"},
                         "description": "e.g. texts cut to RESCORE_MAX_TEXT_CHARS."},
        }},
    },
}

_RESCORE_OPTIONS = {
    "window_size": {"type": "integer", "minimum": 1, "maximum": 1000},
    "fields": {"description": "Fields of _source that make the text (hits only).",
               "anyOf": [{"type": "string", "minLength": 1},
                         {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}]},
    "instruction": _NON_BLANK,
    "fusion": {"type": "string", "enum": ["replace", "linear", "rrf"]},
    "weights": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number", "minimum": 0},
                "description": "[first_stage, rerank]; positive sum."},
    "rank_constant": {"type": "integer", "minimum": 1},
    "min_score": {"type": "number"},
    "timeout_ms": {"type": "integer", "minimum": 1},
    "model": {"type": "string"},
}

_HIT = {"type": "object", "description": "An OpenSearch/Elasticsearch hit (`_id`, `_score`, `_source`, ...).",
        "properties": {"_id": {"type": "string"}, "_score": {"type": "number", "nullable": True},
                       "_source": {"type": "object"}, "_rerank_score": {"type": "number"}}}

_RESCORE_REQUEST = {
    "type": "object",
    "required": ["query"],
    "additionalProperties": False,
    "description": "Exactly one of `hits` or `documents`.",
    "properties": {
        "query": _NON_BLANK,
        "hits": {"description": "hits.hits of a search response, or its whole `hits` object.",
                 "anyOf": [{"type": "array", "minItems": 1, "maxItems": 1000, "items": _HIT},
                           {"type": "object", "required": ["hits"], "properties": {
                               "hits": {"type": "object", "required": ["hits"], "properties": {
                                   "hits": {"type": "array", "minItems": 1, "maxItems": 1000, "items": _HIT}}}}}]},
        "documents": _text_list("Plain documents (ranked as hits with `_id` = their index)."),
        "explain": {"type": "boolean"},
        **_RESCORE_OPTIONS,
    },
}

_RERANK_EXT = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string",
                   "enum": ["ok", "partial", "timeout", "error", "overloaded", "circuit_open", "skipped"]},
        "window": {"type": "integer"},
        "fusion": {"type": "string"},
        "model": {"type": "string"},
        "scored": {"type": "integer"},
        "cache_hits": {"type": "integer"},
        "rerank_ms": {"type": "number"},
        "truncated": {"type": "integer", "minimum": 0,
                      "description": "Texts (query included) cut to RESCORE_MAX_TEXT_CHARS."},
    },
}

_RESCORE_RESPONSE = {
    "type": "object",
    "required": ["hits", "ext"],
    "properties": {
        "hits": {"type": "array", "items": _HIT},
        "ext": {"type": "object", "required": ["rerank"], "properties": {"rerank": _RERANK_EXT}},
    },
}

_TEI_REQUEST = {
    "type": "object",
    "required": ["query", "texts"],
    "properties": {
        "query": _NON_BLANK,
        "texts": _text_list("Texts to rank."),
        "raw_scores": {"type": "boolean", "default": False, "description": "Model logits instead of sigmoid."},
        "return_text": {"type": "boolean", "default": False},
    },
}

_TEI_RESPONSE = {
    "type": "array",
    "items": {"type": "object", "required": ["index", "score"], "properties": {
        "index": {"type": "integer", "minimum": 0}, "score": {"type": "number"}, "text": {"type": "string"}}},
}


def _post(summary: str, request: dict, response: dict, tag: str) -> dict[str, Any]:
    return {"post": {
        "summary": summary,
        "tags": [tag],
        "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
        "responses": {"200": _json(response, "Scores, best first."), **_errors(*_SCORING_ERRORS)},
    }}


_SCORE_OP = _post("vLLM score: text_1 against text_2 (1:N or N:N).", _ref("ScoreRequest"),
                  _ref("ScoreResponse"), "compat")

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "rescore-sidecar",
        "version": "0.1.0",
        "description": "The sidecar's own endpoints. Every other path (search, templates, the rest of the "
                       "OpenSearch API) is OpenSearch's, passed through or reranked; see README.md.",
    },
    "security": [{"bearer": []}],
    "paths": {
        "/health": {"get": {
            "summary": "Liveness (no dependency checks).", "tags": ["probes"], "security": [],
            "responses": {"200": _json({"type": "object", "required": ["status"],
                                        "properties": {"status": {"type": "string", "enum": ["ok"]}}},
                                       "Alive.")},
        }},
        "/ready": {"get": {
            "summary": "Readiness: OpenSearch reachable and reranker loaded.", "tags": ["probes"], "security": [],
            "responses": {"200": _json(_ref("Ready"), "Ready."), "503": _json(_ref("Ready"), "Not ready.")},
        }},
        "/openapi.json": {"get": {
            "summary": "This document.", "tags": ["probes"], "security": [],
            "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
        }},
        "/v1/rescore": _post("Rerank hits or documents the caller already has.", _ref("RescoreRequest"),
                             _ref("RescoreResponse"), "rescore"),
        "/v1/rerank": _post("Cohere v1 / Jina rerank.", _ref("CohereRerankRequest"),
                            _ref("CohereRerankResponse"), "compat"),
        "/v2/rerank": _post("Cohere v2 rerank.", _ref("CohereRerankRequest"), _ref("CohereRerankResponse"),
                            "compat"),
        "/rerank": _post("TEI rerank.", _ref("TeiRerankRequest"), _ref("TeiRerankResponse"), "compat"),
        "/score": _SCORE_OP,
        "/v1/score": _SCORE_OP,
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "description": "One of RESCORE_API_KEYS (only when it is set)."}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "error_type"], "properties": {
                "error": {"type": "string"},
                "error_type": {"type": "string", "example": "validation_error"},
                "field": {"type": "string", "description": "The offending field, e.g. `documents[3]`."},
            }},
            "Ready": {"type": "object", "required": ["status", "circuit"], "properties": {
                "status": {"type": "string", "enum": ["ready", "not_ready"]},
                "circuit": {"type": "object"},
                "opensearch": {"type": "object"},
                "reranker": {"type": "object"},
            }},
            "CohereRerankRequest": _COHERE_REQUEST,
            "CohereRerankResponse": _COHERE_RESPONSE,
            "TeiRerankRequest": _TEI_REQUEST,
            "TeiRerankResponse": _TEI_RESPONSE,
            "ScoreRequest": _SCORE_REQUEST,
            "ScoreResponse": _SCORE_RESPONSE,
            "RescoreRequest": _RESCORE_REQUEST,
            "RescoreResponse": _RESCORE_RESPONSE,
        },
        "responses": {
            f"Error{status}": _json(_ref("Error"), text)
            for status, text in {
                "400": "The body is not parseable (empty, malformed JSON, invalid UTF-8); `field` is `body`.",
                "401": "Missing or wrong bearer key (RESCORE_API_KEYS); `field` is `Authorization`.",
                "413": "The body is larger than RESCORE_MAX_BODY_BYTES.",
                "422": "A field has a wrong type or value; `field` names it (e.g. `documents[3]`).",
                "429": "The scoring queue is full (RESCORE_QUEUE_SIZE); retry after `Retry-After` seconds.",
                "503": "The reranker failed or missed its deadline.",
            }.items()
        },
    },
}


@bp.get("/openapi.json")
def openapi_json():
    """Serve the OpenAPI description of the sidecar's own endpoints."""
    return jsonify(SPEC)
