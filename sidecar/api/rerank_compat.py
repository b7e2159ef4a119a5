"""Rerank endpoints in the public shapes of Cohere (v1, v2), Jina, TEI and vLLM.

Raw model scores are logits (Qwen3: logit(yes) - logit(no)); relevance scores are their
sigmoid, in [0, 1], as those APIs return.
"""
from __future__ import annotations

import math
import time
import uuid

from flask import Blueprint, current_app, jsonify

from sidecar.api.errors import Overloaded, Unavailable, ValidationFailed
from sidecar.api.schemas import json_body, optional_bool, optional_positive_int, required_str, text_list
from sidecar.backends.base import is_overload
from sidecar.search.syntax import fit_text, fit_texts

bp = Blueprint("rerank_compat", __name__)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def score_texts(query: str, texts: list[str]) -> tuple[list[float], str]:
    """Score texts with the configured reranker; raise a typed error instead of degrading."""
    services = current_app.extensions["rescore"]
    try:
        reranker = services.reranker
        result = reranker.score(query, texts, timeout_s=services.settings.rerank_timeout_ms / 1000)
    except Exception as exc:
        if is_overload(exc):  # admission control or a busy model server
            raise Overloaded(str(exc)) from exc
        raise Unavailable(f"reranker unavailable: {type(exc).__name__}: {exc}") from exc
    if any(s is None for s in result.scores):
        raise Unavailable(f"reranker timed out after {services.settings.rerank_timeout_ms} ms "
                          f"({result.scored} of {len(texts)} scored)")
    return [float(s) for s in result.scores], result.model


def _max_documents() -> int:
    return current_app.extensions["rescore"].settings.max_window_size


def fit_request(queries: list[str], query_field: str, texts: list[str], texts_field: str
                ) -> tuple[list[str], list[str], list[str]]:
    """Apply RESCORE_MAX_TEXT_CHARS to queries and texts: cut them (returning warnings) or reject (422).

    A single query is named query_field; lists are named field[i].
    """
    settings = current_app.extensions["rescore"].settings
    limit, overflow = settings.max_text_chars, settings.text_overflow
    if len(queries) == 1:
        query, cut = fit_text(queries[0], query_field, limit, overflow)
        queries, queries_cut = [query], int(cut)
    else:
        queries, queries_cut = fit_texts(queries, query_field, limit, overflow)
    texts, texts_cut = fit_texts(texts, texts_field, limit, overflow)
    warnings = []
    if queries_cut:
        warnings.append(f"{queries_cut} {query_field} text(s) cut to {limit} characters (RESCORE_MAX_TEXT_CHARS)")
    if texts_cut:
        warnings.append(f"{texts_cut} of {len(texts)} {texts_field} cut to {limit} characters (RESCORE_MAX_TEXT_CHARS)")
    return queries, texts, warnings


def _with_warnings(response, warnings: list[str]):
    """Flag truncation on a compat response whose shape has no room for it (TEI's bare list)."""
    if warnings:
        response.headers["X-Rescore-Warning"] = "; ".join(warnings)
    return response


def _requested_model(body: dict) -> str | None:
    """Return the request's `model` (echoed back, as these APIs do); a non-string is a 422."""
    requested = body.get("model")
    if requested is not None and not isinstance(requested, str):
        raise ValidationFailed("model must be a string", field="model")
    return requested


def _ranked(scores: list[float], top_n: int | None) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return order[:top_n] if top_n else order


def _cohere_like(version: str):
    body = json_body()
    requested_model = _requested_model(body)
    query = required_str(body, "query")
    texts = text_list(body.get("documents"), "documents", max_items=_max_documents())
    top_n = optional_positive_int(body, "top_n")
    return_documents = optional_bool(body, "return_documents", False)
    (query,), texts, warnings = fit_request([query], "query", texts, "documents")
    raw, model = score_texts(query, texts)
    results = []
    for i in _ranked(raw, top_n):
        item = {"index": i, "relevance_score": sigmoid(raw[i])}
        if return_documents:
            item["document"] = {"text": texts[i]}
        results.append(item)
    meta = {"api_version": {"version": version}, "billed_units": {"search_units": 1}}
    if warnings:
        meta["warnings"] = warnings
    return {
        "id": str(uuid.uuid4()),
        "model": requested_model or model,
        "results": results,
        "usage": {"total_tokens": sum(len(t.split()) for t in texts) + len(query.split())},
        "meta": meta,
    }, warnings


@bp.post("/v1/rerank")
def rerank_v1():
    """Cohere v1 / Jina rerank: {query, documents, top_n, return_documents} -> results."""
    body, warnings = _cohere_like("1")
    return _with_warnings(jsonify(body), warnings)


@bp.post("/v2/rerank")
def rerank_v2():
    """Cohere v2 rerank."""
    body, warnings = _cohere_like("2")
    return _with_warnings(jsonify(body), warnings)


@bp.post("/rerank")
def rerank_tei():
    """TEI rerank: {query, texts, raw_scores, return_text} -> [{index, score, text?}] best first."""
    body = json_body()
    query = required_str(body, "query")
    texts = text_list(body.get("texts"), "texts", max_items=_max_documents())
    raw_scores = optional_bool(body, "raw_scores", False)
    return_text = optional_bool(body, "return_text", False)
    (query,), texts, warnings = fit_request([query], "query", texts, "texts")
    raw, _ = score_texts(query, texts)
    out = []
    for i in _ranked(raw, None):
        item = {"index": i, "score": raw[i] if raw_scores else sigmoid(raw[i])}
        if return_text:
            item["text"] = texts[i]
        out.append(item)
    return _with_warnings(jsonify(out), warnings)


@bp.post("/score")
@bp.post("/v1/score")
def score_vllm():
    """vLLM score: {model, text_1, text_2} (1:N or N:N) -> {data: [{index, score}]}."""
    body = json_body()
    requested_model = _requested_model(body)
    first, second = body.get("text_1"), body.get("text_2")
    limit = _max_documents()
    firsts = [first] if isinstance(first, str) else text_list(first, "text_1", max_items=limit)
    seconds = [second] if isinstance(second, str) else text_list(second, "text_2", max_items=limit)
    if isinstance(first, str) and not first.strip():
        raise ValidationFailed("text_1 must be a non-empty string", field="text_1")
    firsts, seconds, warnings = fit_request(firsts, "text_1", seconds, "text_2")
    if len(firsts) == 1:
        pairs = [(firsts[0], s) for s in seconds]
    elif len(firsts) == len(seconds):
        pairs = list(zip(firsts, seconds))
    else:
        raise ValidationFailed("text_1 must be one string or a list as long as text_2", field="text_1")
    scores: list[float] = [0.0] * len(pairs)
    model = ""
    by_query: dict[str, list[int]] = {}
    for i, (q, _) in enumerate(pairs):
        by_query.setdefault(q, []).append(i)
    for q, indices in by_query.items():
        raw, model = score_texts(q, [pairs[i][1] for i in indices])
        for i, s in zip(indices, raw):
            scores[i] = sigmoid(s)
    tokens = sum(len(q.split()) + len(d.split()) for q, d in pairs)
    out = {
        "id": f"score-{uuid.uuid4().hex}",
        "object": "list",
        "created": int(time.time()),
        "model": requested_model or model,
        "data": [{"index": i, "object": "score", "score": s} for i, s in enumerate(scores)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0},
    }
    if warnings:
        out["meta"] = {"warnings": warnings}
    return _with_warnings(jsonify(out), warnings)
