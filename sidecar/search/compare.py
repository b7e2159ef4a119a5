"""First stage vs reranked, side by side: one templated first stage, its window reranked by the flow.

Both lists come from the same OpenSearch response, so any difference between them is the
reranker's (and the fusion's) doing. The reranking itself is `flow.rerank_window` + `flow.arrange`,
exactly what a search through the proxy runs.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from sidecar.api.errors import Unavailable, UpstreamUnavailable, ValidationFailed
from sidecar.rerank.breaker import CircuitBreaker
from sidecar.search.first_stage import VECTOR_MODES, template_request
from sidecar.search.flow import UpstreamError, arrange, first_stage_size, rerank_window
from sidecar.search.syntax import RerankSpec
from sidecar.engine import Engine

log = logging.getLogger(__name__)

SNIPPET_CHARS = 240


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Both ranked lists (top `size` each), stage timings in ms, and the ext.rerank object."""

    first_stage: list[dict[str, Any]]
    reranked: list[dict[str, Any]]
    timings: dict[str, float]
    rerank: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"first_stage": self.first_stage, "reranked": self.reranked, "timings": self.timings,
                "rerank": self.rerank}


def compare(client: OpenSearch, reranker_factory: Callable[[], Any], *, index: str, mode: str,
            spec: RerankSpec, size: int, embed: Callable[[str], list[float]] | None = None,
            breaker: CircuitBreaker | None = None, engine: Engine) -> Comparison:
    """Run the `mode` template once on `index`, rerank its top spec.window_size hits, return both lists."""
    started = time.perf_counter()
    vector = None
    if mode in VECTOR_MODES:
        if embed is None:
            raise Unavailable(f"template {mode!r} needs a query embedder", field="template")
        vector = embed(spec.query_text)
    embedded = time.perf_counter()

    fetch = first_stage_size(0, size, spec.window_size)
    body, params = template_request(mode, spec.query_text, engine=engine, size=fetch, query_vector=vector)
    response = _first_stage(client, index, engine.modes[mode], body, params)
    searched = time.perf_counter()
    hits: list[dict] = response.get("hits", {}).get("hits", [])

    window = spec.window_size
    # rerank_window only reads the hits; the new scores live in the outcome, so the first-stage
    # list below still shows OpenSearch's own scores.
    outcome = rerank_window(reranker_factory, spec, hits[:window], breaker=breaker)
    reranked_at = time.perf_counter()

    first_rank = {id(hit): rank for rank, hit in enumerate(hits, start=1)}
    new_score = {id(hits[pos]): score for pos, score in outcome.fused.items()}
    model_score = {id(hits[pos]): score for pos, score in outcome.rerank.items()}
    first_stage = [_row(hit, rank, hit.get("_score")) for rank, hit in enumerate(hits[:size], start=1)]
    reranked = []
    for rank, hit in enumerate(arrange(hits, window, outcome)[:size], start=1):
        row = _row(hit, rank, new_score.get(id(hit), hit.get("_score")))
        was = first_rank[id(hit)]
        row.update(first_stage_rank=was, rank_change=was - rank, rerank_score=model_score.get(id(hit)))
        reranked.append(row)

    finished = time.perf_counter()
    timings = {
        "embed_ms": _ms(embedded - started),
        "first_stage_ms": _ms(searched - embedded),
        "rerank_ms": _ms(reranked_at - searched),
        # Inside the rerank: waiting for the model, the model's batches, and fusion (0 when skipped).
        "queue_ms": float(outcome.info.get("queue_ms", 0.0)),
        "model_ms": float(outcome.info.get("model_ms", 0.0)),
        "fusion_ms": float(outcome.info.get("fusion_ms", 0.0)),
        "total_ms": _ms(finished - started),
    }
    rerank_info = {"status": outcome.status, "window": len(hits[:window]), "fusion": spec.fusion, **outcome.info}
    log.info("compare index=%s mode=%s hits=%d window=%d status=%s embed_ms=%.1f first_stage_ms=%.1f "
             "rerank_ms=%.1f total_ms=%.1f", index, mode, len(hits), rerank_info["window"], outcome.status,
             timings["embed_ms"], timings["first_stage_ms"], timings["rerank_ms"], timings["total_ms"])
    return Comparison(first_stage=first_stage, reranked=reranked, timings=timings, rerank=rerank_info)


def _first_stage(client: OpenSearch, index: str, stored: tuple[str, str | None], body: dict,
                 params: dict[str, str]) -> dict:
    template_id, pipeline = stored
    try:
        return client.search_template(index=index, body=body, params=params)
    except OSConnectionError as exc:
        raise UpstreamUnavailable(f"OpenSearch unreachable: {type(exc).__name__}") from exc
    except TransportError as exc:
        status = exc.status_code if isinstance(exc.status_code, int) else 502
        if status in (401, 403):  # the engine refuses this caller: its answer, as it gave it
            raise UpstreamError(status, exc.info) from exc
        kind, reason = _error_of(exc)
        if kind == "index_not_found_exception":
            raise ValidationFailed(f"index {index!r} does not exist", field="index") from exc
        # The caller chose a template this cluster does not have: a 4xx naming it, with the fix.
        # (The pipeline first: "rescore-hybrid-minmax" contains the template id "rescore-hybrid".)
        if pipeline and 400 <= status < 500 and pipeline in reason:
            missing = f"search pipeline {pipeline!r}"
        elif 400 <= status < 500 and template_id in reason:
            missing = f"stored template {template_id!r}"
        else:
            missing = None
        if missing:
            raise ValidationFailed(f"{missing} is not installed in OpenSearch ({kind}: {reason}); run "
                                   "scripts/install_templates.py", field="template") from exc
        if 400 <= status < 500:
            # e.g. a kNN template on an index without the `embedding` vector field.
            raise ValidationFailed(f"OpenSearch rejected the {template_id} search on {index!r}: {kind}: {reason}",
                                   field="index") from exc
        raise UpstreamUnavailable(f"OpenSearch answered {status}: {kind}: {reason}") from exc


def _error_of(exc: TransportError) -> tuple[str, str]:
    """Return (error type, reason) of OpenSearch's error body, innermost root cause first."""
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    if isinstance(error, dict):
        causes = error.get("root_cause")
        cause = causes[0] if isinstance(causes, list) and causes and isinstance(causes[0], dict) else error
        return str(cause.get("type", "")), str(cause.get("reason", ""))
    return "", str(error or exc.error)


def _row(hit: dict, rank: int, score: Any) -> dict[str, Any]:
    source = hit.get("_source") if isinstance(hit.get("_source"), dict) else {}
    title = source.get("title")
    text = source.get("text")
    snippet = text if isinstance(text, str) else ""
    if len(snippet) > SNIPPET_CHARS:
        snippet = snippet[:SNIPPET_CHARS].rstrip() + "…"
    return {"id": hit.get("_id"), "score": score if isinstance(score, (int, float)) else None, "rank": rank,
            "title": title if isinstance(title, str) else "", "text_snippet": snippet}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
