"""POST /v1/rescore: rerank hits (or plain documents) an app already has."""
from __future__ import annotations

import dataclasses
import math

from flask import Blueprint, current_app, jsonify

from sidecar.api.errors import ValidationFailed
from sidecar.api.experiment_hook import plan_experiment, request_identity
from sidecar.api.schemas import json_body, required_str, text_list
from sidecar.observability.metrics import metrics
from sidecar.search.flow import request_ext, rerank_window
from sidecar.search.syntax import build_spec, fit_text

bp = Blueprint("rescore", __name__)

_OPTION_KEYS = ("window_size", "fields", "instruction", "fusion", "weights", "rank_constant", "min_score",
                "timeout_ms", "model", "user_context", "query_understanding", "passages", "doc_template")


@bp.post("/v1/rescore")
def rescore():
    """Rerank `hits` (ES hits.hits) or `documents` for `query`; return them fused and reordered."""
    services = current_app.extensions["rescore"]
    body = json_body()
    query = required_str(body, "query")
    defaults = services.rerank_defaults
    query, query_truncated = fit_text(query, "query", defaults.max_text_chars, defaults.text_overflow)
    unknown = sorted(set(body) - {"query", "hits", "documents", "explain", *_OPTION_KEYS})
    if unknown:
        raise ValidationFailed(f"unknown key {unknown[0]!r}", field=unknown[0])
    if ("hits" in body) == ("documents" in body):
        raise ValidationFailed("give exactly one of hits or documents", field="hits")
    limit = services.settings.max_window_size
    if "documents" in body:
        texts = text_list(body["documents"], "documents", max_items=limit)
        hits = [{"_id": str(i), "_score": None, "_source": {"text": t}} for i, t in enumerate(texts)]
        # No first-stage scores: list order is no evidence of relevance, so the model ranks alone
        # unless the caller asks for a fusion (README "Rescoring hits you already have").
        options = {"fields": ["text"], "fusion": "replace", **{k: body[k] for k in _OPTION_KEYS if k in body}}
    else:
        hits = body["hits"]
        if isinstance(hits, dict) and isinstance(hits.get("hits"), dict):
            hits = hits["hits"].get("hits")  # a whole search response's "hits" object
        if not isinstance(hits, list) or not hits or not all(isinstance(h, dict) for h in hits):
            raise ValidationFailed("hits must be a non-empty list of hit objects", field="hits")
        if len(hits) > limit:
            raise ValidationFailed(f"hits has {len(hits)} items; the maximum is {limit}", field="hits")
        for i, hit in enumerate(hits):
            score = hit.get("_score")
            if score is not None and (not isinstance(score, (int, float)) or isinstance(score, bool)
                                      or not math.isfinite(score)):
                raise ValidationFailed("a hit's _score must be a finite number or null", field=f"hits[{i}]._score")
        options = {k: body[k] for k in _OPTION_KEYS if k in body}
    options.setdefault("window_size", min(len(hits), limit))
    spec = build_spec(options, query, defaults, "body", explain=bool(body.get("explain")))
    spec = dataclasses.replace(spec, query_truncated=query_truncated or spec.query_truncated)
    identity = request_identity()
    experiment = plan_experiment(services, spec, None, identity)  # experiments without "indices" apply
    spec = experiment.spec
    window = hits[:spec.window_size]
    outcome = rerank_window(experiment.reranker_factory, spec, window, breaker=experiment.breaker,
                            text_field="documents" if "documents" in body else "hits")
    ordered = []
    for position in outcome.order:
        if position in outcome.removed:
            continue
        hit = dict(window[position])
        if position in outcome.fused:
            hit["_rerank_score"] = outcome.rerank[position]
            hit["_score"] = outcome.fused[position]
        ordered.append(hit)
    ordered.extend(hits[spec.window_size:])
    ext = {"status": outcome.status, "window": len(window), "fusion": spec.fusion, **outcome.info,
           **request_ext(spec, outcome.info), "query_id": identity.query_id}
    if experiment.ext is not None:
        ext["experiment"] = experiment.ext
    metrics().observe_rerank(ext)
    return jsonify({"hits": ordered, "ext": {"rerank": ext}})
