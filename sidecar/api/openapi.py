"""GET /openapi.json: an OpenAPI 3.0.3 description of the sidecar's own endpoints.

The document is a static dict kept next to the views it describes (rerank_compat.py, rescore.py,
admin.py, schemas.py). The proxied OpenSearch API is not described here. tests/api/test_openapi.py
checks that it is valid OpenAPI and that its paths are exactly the sidecar's own routes.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from sidecar.search.fusion import METHODS as FUSION_METHODS
from sidecar.search.templates import MODES

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
    "fusion": {"type": "string", "enum": list(FUSION_METHODS)},
    "weights": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number", "minimum": 0},
                "description": "[first_stage, rerank]; positive sum."},
    "rank_constant": {"type": "integer", "minimum": 1},
    "min_score": {"type": "number"},
    "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 300000},
    "model": {"type": "string"},
    "passages": {
        "description": "Long documents: score passages of at most max_tokens tokens, aggregate per document; "
                       "true/false, or an object (enabled unless it says not). Defaults: RESCORE_PASSAGE*.",
        "anyOf": [{"type": "boolean"}, {"type": "object", "additionalProperties": False, "properties": {
            "enabled": {"type": "boolean"},
            "max_tokens": {"type": "integer", "minimum": 16, "maximum": 8192},
            "overlap": {"type": "integer", "minimum": 0, "description": "At most max_tokens/2."},
            "aggregate": {"type": "string", "enum": ["max", "mean"]},
            "top_k": {"type": "integer", "minimum": 1, "description": "mean: of the top_k best; <= max_passages."},
            "max_passages": {"type": "integer", "minimum": 1, "maximum": 64}}}]},
    "doc_template": {
        "description": "Document text template (\"{title}\\nBrand: {brand}\"), the name of a loaded one, or false "
                       "for plain `fields` (absent: the template configured for the hit's _index, if any).",
        "anyOf": [{"type": "string", "minLength": 1}, {"type": "boolean", "enum": [False]}]},
    "user_context": {
        "type": "object", "additionalProperties": False,
        "description": "Personalization (RESCORE_PERSONALIZATION=on): a bounded term added after fusion.",
        "properties": {
            "preferred_brands": {"type": "array", "maxItems": 100, "items": _NON_BLANK},
            "preferred_categories": {"type": "array", "maxItems": 100, "items": _NON_BLANK},
            "boosts": {"type": "array", "maxItems": 100, "items": {
                "type": "object", "additionalProperties": False, "required": ["field", "value"],
                "properties": {"field": _NON_BLANK, "value": {"anyOf": [_NON_BLANK, {"type": "number"}]},
                               "weight": {"type": "number", "minimum": 0, "maximum": 1}}}},
            "weight": {"type": "number", "minimum": 0, "maximum": 1},
        },
    },
    "query_understanding": {"type": "boolean", "description": "false: skip normalization, language and rules."},
}

_HIT = {"type": "object", "description": "An OpenSearch/Elasticsearch hit (`_id`, `_score`, `_source`, ...).",
        "properties": {"_id": {"type": "string"}, "_score": {"type": "number", "nullable": True},
                       "_source": {"type": "object"}, "_rerank_score": {"type": "number"},
                       "highlight": {"type": "object", "description": "Passages on: `_rerank_passage` holds "
                                     "the best passage of a long document (other highlight fields kept)."}}}

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
        "window": {"type": "integer", "description": "Hits reranked (at most window_size)."},
        "window_size": {"type": "integer", "description": "The window asked for (request, policy or default)."},
        "policy": {"type": "string", "description": "The rerank policy (RESCORE_POLICIES_FILE) that reranked it."},
        "fusion": {"type": "string"},
        "model": {"type": "string"},
        "scored": {"type": "integer"},
        "cache_hits": {"type": "integer"},
        "rerank_ms": {"type": "number"},
        "truncated": {"type": "integer", "minimum": 0,
                      "description": "Texts (query included) cut to RESCORE_MAX_TEXT_CHARS."},
        "passages": {"type": "object", "description": "Passages on: documents split, passages, passages scored.",
                     "properties": {"docs_split": {"type": "integer"}, "passages": {"type": "integer"},
                                    "passages_scored": {"type": "integer"}}},
        "query_id": {"type": "string", "description": "Joins click feedback (POST /v1/feedback) to this response: "
                                                      "X-Request-Id / X-Opaque-Id, else a new uuid4 hex."},
        "experiment": _ref("ExperimentAssignment"),
        "query": {"type": "object", "description": "Query understanding (RESCORE_QUERY_ANALYZERS).", "properties": {
            "normalized": {"type": "string"}, "language": {"type": "string"}, "type": {"type": "string"},
            "rule": {"type": "string", "nullable": True}, "instruction": {"type": "string", "nullable": True},
            "instruction_source": {"type": "string", "enum": ["request", "rule", "default"]}}},
        "personalization": {"type": "object", "required": ["applied"], "properties": {
            "applied": {"type": "boolean"}, "boosted": {"type": "integer", "minimum": 0},
            "weight": {"type": "number"}, "scale": {"type": "number"}, "reason": {"type": "string"}}},
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

_FEEDBACK_ID = {"type": "string", "pattern": r"\S", "maxLength": 512}

_FEEDBACK_EVENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["query_id", "doc_id", "position"],
    "description": "One shown result: an impression (click false) or a click.",
    "properties": {
        "query_id": {**_FEEDBACK_ID, "description": "ext.rerank.query_id of the search response."},
        "doc_id": {**_FEEDBACK_ID, "description": "The hit's _id."},
        "position": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "1 = top result."},
        "click": {"type": "boolean", "default": False},
        "dwell_ms": {"type": "number", "minimum": 0, "maximum": 1e12,
                     "description": "Time on the clicked document; >= 30000 counts as a satisfied click."},
        "user_id": _FEEDBACK_ID,
        "session_id": _FEEDBACK_ID,
        "variant": {**_FEEDBACK_ID, "description": "ext.rerank.experiment.variant of the response."},
        "experiment": {**_FEEDBACK_ID, "description": "ext.rerank.experiment.name of the response."},
        "query_text": {"type": "string", "maxLength": 10000},
        "timestamp": {"description": "ISO 8601 (naive = UTC) or epoch milliseconds, 1970..9998; default now.",
                      "anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]},
    },
}

_FEEDBACK_REQUEST = {
    "description": "One event, or a batch: stored all together or not at all.",
    "anyOf": [
        _ref("FeedbackEvent"),
        {"type": "object", "additionalProperties": False, "required": ["events"], "properties": {
            "events": {"type": "array", "minItems": 1, "maxItems": 10000, "items": _ref("FeedbackEvent")}}},
    ],
}

_FEEDBACK_RESPONSE = {"type": "object", "required": ["accepted"],
                      "properties": {"accepted": {"type": "integer", "minimum": 1}}}

_INTERVAL = {"type": "object", "required": ["mean", "ci_low", "ci_high"], "properties": {
    "mean": {"type": "number"}, "ci_low": {"type": "number"}, "ci_high": {"type": "number"}}}

_FEEDBACK_REPORT = {
    "type": "object",
    "required": ["experiment", "k", "control", "metrics", "variants", "vs_control"],
    "properties": {
        "experiment": {"type": "string", "nullable": True},
        "k": {"type": "integer"},
        "control": {"type": "string"},
        "metrics": {"type": "array", "items": {"type": "string"}, "description": "CTR@k, MRR, NDCG@k."},
        "confidence": {"type": "number"},
        "resamples": {"type": "integer"},
        "seed": {"type": "integer"},
        "definitions": {"type": "object", "additionalProperties": {"type": "string"}},
        "events": {"type": "integer"},
        "dropped": {"type": "object", "additionalProperties": {"type": "integer"}},
        "variants": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["queries", "impressions", "clicked_results", "metrics"], "properties": {
                "queries": {"type": "integer"}, "impressions": {"type": "integer"},
                "clicked_results": {"type": "integer"},
                "metrics": {"type": "object", "additionalProperties": _INTERVAL}}}},
        "vs_control": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": {
                "type": "object", "required": ["diff", "ci_low", "ci_high", "significant"], "properties": {
                    "diff": {"type": "number"}, "ci_low": {"type": "number"}, "ci_high": {"type": "number"},
                    "relative": {"type": "number", "nullable": True}, "significant": {"type": "boolean"}}}}},
    },
}

_EXPERIMENT_ASSIGNMENT = {
    "type": "object",
    "required": ["name", "variant", "unit", "bucket", "assigned"],
    "description": "The A/B variant of this request (RESCORE_EXPERIMENTS_FILE).",
    "properties": {
        "name": {"type": "string"},
        "variant": {"type": "string"},
        "unit": {"type": "string", "enum": ["user", "session"]},
        "bucket": {"type": "integer", "minimum": 0, "maximum": 9999, "nullable": True},
        "assigned": {"type": "boolean", "description": "false: no X-User-Id / X-Session-Id; got the control."},
        "reason": {"type": "string"},
    },
}

_TEI_RESPONSE = {
    "type": "array",
    "items": {"type": "object", "required": ["index", "score"], "properties": {
        "index": {"type": "integer", "minimum": 0}, "score": {"type": "number"}, "text": {"type": "string"}}},
}


_COMPARE_REQUEST = {
    "type": "object",
    "required": ["index", "template", "query"],
    "additionalProperties": False,
    "properties": {
        "index": {"type": "string", "maxLength": 255, "pattern": r'^[^_\-+.\\/*?"<>| ,#:A-Z][^\\/*?"<>| ,#:A-Z]*$',
                  "description": "One index: no wildcards, lists or hidden (dot) indices."},
        "template": {"type": "string", "enum": list(MODES),
                     "description": "First stage: the stored template rescore-<template> (es_templates/search/)."},
        "query": _NON_BLANK,
        "size": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10,
                 "description": "Hits shown in each list."},
        "window_size": {"type": "integer", "minimum": 1, "maximum": 1000,
                        "description": "First-stage hits reranked; default RESCORE_RERANK_WINDOW_SIZE."},
        "fields": _RESCORE_OPTIONS["fields"],
    },
}

_COMPARE_HIT = {
    "type": "object",
    "required": ["id", "score", "rank", "title", "text_snippet"],
    "properties": {
        "id": {"type": "string"},
        "score": {"type": "number", "nullable": True,
                  "description": "First stage: OpenSearch's score; reranked: the fused score."},
        "rank": {"type": "integer", "minimum": 1},
        "title": {"type": "string"},
        "text_snippet": {"type": "string"},
        "first_stage_rank": {"type": "integer", "minimum": 1, "description": "Reranked list only."},
        "rank_change": {"type": "integer", "description": "Reranked list only: first_stage_rank - rank (> 0: up)."},
        "rerank_score": {"type": "number", "nullable": True,
                         "description": "Reranked list only: the model's raw score (null: not scored)."},
    },
}

_COMPARE_RESPONSE = {
    "type": "object",
    "required": ["first_stage", "reranked", "timings", "rerank"],
    "properties": {
        "first_stage": {"type": "array", "items": _COMPARE_HIT},
        "reranked": {"type": "array", "items": _COMPARE_HIT},
        "timings": {"type": "object", "required": ["embed_ms", "first_stage_ms", "rerank_ms", "total_ms"],
                    "properties": {k: {"type": "number", "minimum": 0}
                                   for k in ("embed_ms", "first_stage_ms", "rerank_ms", "total_ms")}},
        "rerank": _RERANK_EXT,
    },
}

_COMPARE_OPTIONS = {
    "type": "object",
    "required": ["indices", "templates", "defaults"],
    "properties": {
        "indices": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "docs": {"type": "integer", "nullable": True}}}},
        "templates": {"type": "array", "items": {"type": "string", "enum": list(MODES)}},
        "defaults": {"type": "object"},
    },
}


def _static_file(summary: str, media_type: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "tags": ["ui"], "security": [],
                    "responses": {"200": {"description": summary,
                                          "content": {media_type: {"schema": {"type": "string"}}}}}}}


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
    "security": [{"bearer": []}, {"key_header": []}],
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
        "/metrics": {"get": {
            "summary": "Prometheus metrics (text exposition format 0.0.4); all workers aggregated.",
            "tags": ["probes"], "security": [],
            "responses": {"200": {"description": "Metrics.",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
        "/openapi.json": {"get": {
            "summary": "This document.", "tags": ["probes"], "security": [],
            "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
        }},
        "/v1/rescore": _post("Rerank hits or documents the caller already has.", _ref("RescoreRequest"),
                             _ref("RescoreResponse"), "rescore"),
        "/v1/feedback": {"post": {
            "summary": "Store click/impression events (all or none) in RESCORE_FEEDBACK_INDEX.",
            "tags": ["experiments"],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("FeedbackRequest")}}},
            "responses": {"200": _json(_ref("FeedbackResponse"), "How many events were stored."),
                          **_errors("400", "401", "413", "422", "502")},
        }},
        "/v1/feedback/report": {"get": {
            "summary": "Per-variant CTR@k, MRR and NDCG@k (95% bootstrap CIs, 1000 resamples) of stored events.",
            "tags": ["experiments"],
            "parameters": [
                {"name": "experiment", "in": "query", "schema": {"type": "string"},
                 "description": "Only this experiment's events (needed when several are stored)."},
                {"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                                        "default": 10}},
                {"name": "control", "in": "query", "schema": {"type": "string"},
                 "description": "Control variant (default: the one named control, else the first by name)."},
            ],
            "responses": {"200": _json(_ref("FeedbackReport"), "The report."),
                          **_errors("401", "422", "502")},
        }},
        "/v1/rerank": _post("Cohere v1 / Jina rerank.", _ref("CohereRerankRequest"),
                            _ref("CohereRerankResponse"), "compat"),
        "/v2/rerank": _post("Cohere v2 rerank.", _ref("CohereRerankRequest"), _ref("CohereRerankResponse"),
                            "compat"),
        "/rerank": _post("TEI rerank.", _ref("TeiRerankRequest"), _ref("TeiRerankResponse"), "compat"),
        "/score": _SCORE_OP,
        "/v1/score": _SCORE_OP,
        "/ui": _static_file("The comparison page: first-stage vs reranked results side by side.", "text/html"),
        "/ui/ui.js": _static_file("The comparison page's script.", "text/javascript"),
        "/ui/ui.css": _static_file("The comparison page's style sheet.", "text/css"),
        "/v1/compare": {"post": {
            "summary": "Run one first stage (a stored template) and return it next to its reranked version.",
            "tags": ["ui"],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CompareRequest")}}},
            "responses": {"200": _json(_ref("CompareResponse"), "Both lists, stage timings, ext.rerank."),
                          **_errors("400", "401", "413", "422", "502"),
                          "503": _json(_ref("Error"), "The query embedder (kNN, hybrid) is missing; `field` "
                                                      "names `template`.")},
        }},
        "/v1/compare/options": {"get": {
            "summary": "Indices (no hidden ones), templates and defaults for the comparison page.",
            "tags": ["ui"],
            "responses": {"200": _json(_ref("CompareOptions"), "What the page offers."),
                          **_errors("401", "502")},
        }},
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "One of RESCORE_API_KEYS (only when it is set; /v1/compare* and "
                                      "/v1/feedback* also take RESCORE_PROXY_API_KEYS)."},
            "key_header": {"type": "apiKey", "in": "header", "name": "X-Rescore-Api-Key",
                           "description": "The same key in its own header, leaving Authorization to the "
                                          "caller's engine credentials (README \"Identity\")."}},
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
            "ExperimentAssignment": _EXPERIMENT_ASSIGNMENT,
            "FeedbackEvent": _FEEDBACK_EVENT,
            "FeedbackRequest": _FEEDBACK_REQUEST,
            "FeedbackResponse": _FEEDBACK_RESPONSE,
            "FeedbackReport": _FEEDBACK_REPORT,
            "CompareRequest": _COMPARE_REQUEST,
            "CompareResponse": _COMPARE_RESPONSE,
            "CompareOptions": _COMPARE_OPTIONS,
        },
        "responses": {
            f"Error{status}": _json(_ref("Error"), text)
            for status, text in {
                "400": "The body is not parseable (empty, malformed JSON, invalid UTF-8); `field` is `body`.",
                "401": "Missing or wrong bearer key (RESCORE_API_KEYS); `field` is `Authorization`.",
                "413": "The body is larger than RESCORE_MAX_BODY_BYTES.",
                "422": "A field has a wrong type or value; `field` names it (e.g. `documents[3]`).",
                "429": "The scoring queue is full (RESCORE_QUEUE_SIZE); retry after `Retry-After` seconds.",
                "502": "OpenSearch did not answer (or answered with a server error).",
                "503": "The reranker failed or missed its deadline.",
            }.items()
        },
    },
}


@bp.get("/openapi.json")
def openapi_json():
    """Serve the OpenAPI description of the sidecar's own endpoints."""
    return jsonify(SPEC)
