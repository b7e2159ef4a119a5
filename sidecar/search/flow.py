"""The rerank search flow: first stage -> window -> rerank -> fuse -> min_score -> page.

Rules (DESIGN.md §2): no hit is lost or duplicated; hits beyond the window follow it in
first-stage order; pages are consistent because the window and its scores are deterministic
(score cache); a failed or slow reranker leaves first-stage order and says so in ext.rerank.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from opensearchpy import OpenSearch
from opensearchpy.client.utils import _make_path
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from sidecar.api.errors import BadRequest, RerankFailed, ValidationFailed
from sidecar.backends.base import is_overload
from sidecar.observability import tracing
from sidecar.rerank.breaker import CircuitBreaker
from sidecar.rerank import passages
from sidecar.rerank.doc_text import template_fields, template_for
from sidecar.rerank.documents import apply_source_filter, hit_text, plan_source
from sidecar.search import fusion, personalization
from sidecar.engine.client import OpenSearchUnavailable
from sidecar.search.syntax import RerankSpec, fit_texts, scrub_text, sorts_by_score_only

log = logging.getLogger(__name__)

_UNSUPPORTED_WITH_RERANK = ("search_after", "scroll", "pit")
# Statuses of a rerank that did not happen (first-stage order was kept).
FAILED_STATUSES = frozenset({"error", "overloaded", "circuit_open", "timeout"})
# The highlight field that carries a long document's best passage (passages on).
PASSAGE_HIGHLIGHT = "_rerank_passage"


class UpstreamError(Exception):
    """OpenSearch answered with an error status; relayed to the caller unchanged."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"OpenSearch answered {status}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class WindowOutcome:
    """What reranking did to the window: new order, scores, and the status to report."""

    order: list[int]
    fused: dict[int, float]
    rerank: dict[int, float]
    removed: set[int]
    status: str
    info: dict[str, Any]
    # The personalization detail of each position's _explanation (empty: not applied).
    personal: dict[int, dict] = field(default_factory=dict)
    # Passages on: position -> (best passage index, passage count, best passage score).
    passages: dict[int, tuple[int, int, float]] = field(default_factory=dict)


def search_with_rerank(client: OpenSearch, reranker_factory: Callable[[], Any], index: str | None,
                       body: dict, spec: RerankSpec, params: dict[str, str], *,
                       breaker: CircuitBreaker | None = None, query_id: str | None = None,
                       experiment: dict[str, Any] | None = None) -> dict:
    """Run the full flow for one search request and return an OpenSearch-shaped response.

    ext.rerank carries query_id (given, else a new uuid4 hex) so click feedback can be joined to
    this response, and the A/B assignment as ext.rerank.experiment when there is one.
    """
    started = time.perf_counter()
    body, params = dict(body), dict(params)
    for key in _UNSUPPORTED_WITH_RERANK:
        if key in body or key in params:
            raise ValidationFailed(f"{key} cannot be combined with reranking; page with from/size", field=key)
    sorts = body.get("sort"), params.get("sort")
    if any(s is not None and not sorts_by_score_only(s) for s in sorts):
        # Both engines refuse a rescore under any sort but the default (_score descending).
        raise BadRequest("Cannot use [sort] option in conjunction with [rescore].", field="sort")
    from_ = _int_param(params.pop("from", body.pop("from", 0)), "from")
    size = _int_param(params.pop("size", body.pop("size", 10)), "size")
    window = spec.window_size
    body["from"] = 0
    body["size"] = first_stage_size(from_, size, window, may_remove=spec.min_score is not None)
    needed = spec.fields + personal_fields(spec) + template_fields(spec.doc_template, spec.index_templates, index)
    source = plan_source(body.get("_source"), needed, missing="_source" not in body)
    if source.changed:
        body["_source"] = source.send

    with tracing.span("first_stage", index=index or "", size=body["size"]):
        response = first_stage(client, index, body, params)
    first_ms = (time.perf_counter() - started) * 1000
    hits: list[dict] = response.get("hits", {}).get("hits", [])
    window_hits = hits[:window]
    with tracing.span("rerank", window=len(window_hits), fusion=spec.fusion) as current:
        outcome = rerank_window(reranker_factory, spec, window_hits, breaker=breaker)
        tracing.set_attributes(current, status=outcome.status, **{k: v for k, v in outcome.info.items()
                                                                  if k.endswith("_ms")})
    if spec.fail_on_error and outcome.status in FAILED_STATUSES:
        raise RerankFailed(f"reranking failed ({outcome.status}) and allow_rerank_failures is false",
                           rerank={"status": outcome.status, **outcome.info})

    for position in outcome.order:
        hit = window_hits[position]
        if position in outcome.fused:
            if spec.explain:
                hit["_explanation"] = _explanation(hit, outcome, position, spec)
            hit["_score"] = outcome.fused[position]
    page = page_of(arrange(hits, window, outcome), from_, size)
    if source.changed:
        for hit in page:
            filtered = apply_source_filter(hit.get("_source") or {}, source.original)
            if filtered is None:
                hit.pop("_source", None)
            else:
                hit["_source"] = filtered
    response["hits"]["hits"] = page
    scores = [h["_score"] for h in page if isinstance(h.get("_score"), (int, float))]
    response["hits"]["max_score"] = max(scores) if scores else response["hits"].get("max_score")
    total_ms = (time.perf_counter() - started) * 1000
    response["took"] = int(response.get("took", 0) + (total_ms - first_ms))
    ext = response.setdefault("ext", {})
    ext["rerank"] = {
        "status": outcome.status,
        "window": len(window_hits),
        "window_size": spec.window_size,
        "fusion": spec.fusion,
        "first_stage_ms": round(first_ms, 1),
        "took_ms": round(total_ms, 1),
        **outcome.info,
        **request_ext(spec, outcome.info),
        "query_id": query_id or uuid.uuid4().hex,
    }
    if spec.name is not None:
        ext["rerank"]["name"] = spec.name
    if experiment is not None:
        ext["rerank"]["experiment"] = experiment
    log.info("rerank_search index=%s status=%s window=%d first_stage_ms=%.1f total_ms=%.1f",
             index, outcome.status, len(window_hits), first_ms, total_ms)
    return response


def first_stage_size(from_: int, size: int, window: int, *, may_remove: bool = False) -> int:
    """Return how many first-stage hits to fetch so the window and the requested page are covered.

    With min_score (may_remove) up to `window` hits can drop out of the window, pulling as many
    tail hits forward, so the page needs that many more.
    """
    if may_remove:
        return from_ + size + window
    return max(from_ + size, window)


def arrange(hits: list[dict], window: int, outcome: WindowOutcome) -> list[dict]:
    """Return the reranked window (minus min_score removals) followed by the rest in first-stage order."""
    window_hits = hits[:window]
    return [window_hits[i] for i in outcome.order if i not in outcome.removed] + hits[window:]


def page_of(ordered: list[dict], from_: int, size: int) -> list[dict]:
    """Return the from/size slice of the arranged list."""
    return ordered[from_:from_ + size]


def rerank_window(reranker_factory: Callable[[], Any], spec: RerankSpec, window_hits: list[dict], *,
                  breaker: CircuitBreaker | None = None, text_field: str = "hits.hits") -> WindowOutcome:
    """Score and fuse one window; on any reranker failure (or an open circuit) keep first-stage order.

    Hit texts longer than spec.max_text_chars are cut (counted in info["truncated"], with a cut
    query) or, with text_overflow "reject", make a 422 naming `text_field[i]`.
    """
    identity = list(range(len(window_hits)))
    if not window_hits:
        return WindowOutcome(identity, {}, {}, set(), "skipped", {"reason": "no hits"})
    raw_texts = [hit_text(hit, spec.fields, template_for(hit, spec.doc_template, spec.index_templates))
                 for hit in window_hits]
    if text_field == "hits.hits":  # the engine's documents: a lone surrogate is not the caller's fault
        raw_texts = [scrub_text(text) for text in raw_texts]
    texts, truncated = fit_texts(raw_texts, text_field, spec.max_text_chars, spec.text_overflow)
    truncated += spec.query_truncated
    if breaker is not None and not breaker.allow():
        retry = breaker.snapshot().retry_in_s
        return WindowOutcome(identity, {}, {}, set(), "circuit_open",
                             {"reason": "reranker failed repeatedly; skipped during cool-down",
                              "retry_in_s": round(retry, 3)})
    try:
        reranker = reranker_factory()
    except Exception as exc:  # the model could not be loaded: a backend fault
        if breaker is not None:
            breaker.record_failure()
        log.warning("rerank_failed status=error error=%s: %s", type(exc).__name__, exc)
        return WindowOutcome(identity, {}, {}, set(), "error", {"error": f"{type(exc).__name__}: {exc}"})
    # The breaker hears the model's own verdicts from the scheduler (Services wires it with
    # RerankService.watch): queue waits, deadlines, overload and bad input never count.
    try:
        if spec.model and spec.model not in (reranker.model, "default"):
            raise ValidationFailed(f"model {spec.model!r} is not served here (serving {reranker.model!r})",
                                   field="model")
        # Passages of all documents go in one call: the scheduler batches them, the cache keeps each.
        # A text the model reads whole stays one passage: the same pair, score and cache entry as
        # with passages off; only longer texts are split. Splitting tokenizes every text, so a
        # request the model would refuse is refused first.
        if spec.passages.enabled:
            reranker.admit(spec.query_text, texts, instruction=spec.instruction, timeout_s=spec.timeout_ms / 1000)
        split = passages.plan(texts, reranker.passage_splitter, spec.passages,
                              reranker.document_budget(spec.query_text, spec.instruction), query=spec.query_text) \
            if spec.passages.enabled else None
        result = reranker.score(spec.query_text, split.texts if split else texts, instruction=spec.instruction,
                                timeout_s=spec.timeout_ms / 1000)
    except ValidationFailed:
        raise
    except Exception as exc:  # the documented degradation path: first-stage order, status says why
        # Shed by admission control (OverloadedError) or by a busy model server (BackendOverloadedError).
        status = "overloaded" if is_overload(exc) else "error"
        # Shedding load is the admission control working, not a fault: the rerank_search line says
        # status=overloaded; a warning per refused request would flood the log exactly under load.
        log.log(logging.DEBUG if status == "overloaded" else logging.WARNING,
                "rerank_failed status=%s error=%s: %s", status, type(exc).__name__, exc)
        return WindowOutcome(identity, {}, {}, set(), status, {"error": f"{type(exc).__name__}: {exc}"})
    finally:
        if breaker is not None:
            breaker.release()  # frees a half-open probe that got no verdict (cache hits, overload, deadline)

    info = {"model": result.model, "cache_hits": result.cache_hits, "scored": result.scored,
            "rerank_ms": round(result.took_ms, 1), "queue_ms": round(result.queue_ms, 1),
            "model_ms": round(result.model_ms, 1), "truncated": truncated}
    if result.cache != "local":  # scores shared through Redis, or Redis down and this process alone
        info["cache"] = result.cache
    doc_scores, best = result.scores, {}
    if split is not None and split.docs_split:
        doc_scores, best = _passage_scores(split, result.scores, spec, window_hits, info)
    scored = [i for i, s in enumerate(doc_scores) if s is not None]
    if not scored:
        return WindowOutcome(identity, {}, {}, set(), result.status, info)
    first = [window_hits[i].get("_score") for i in scored]
    rerank = [float(doc_scores[i]) for i in scored]
    fuse_started = time.perf_counter()
    fused_list = fusion.fuse(first, rerank, method=spec.fusion, weights=spec.weights,
                             rank_constant=spec.rank_constant, temperature=spec.temperature)
    info["fusion_ms"] = round((time.perf_counter() - fuse_started) * 1000, 3)
    personal: dict[int, dict] = {}
    if spec.user_context is not None and spec.personalization:
        # After fusion, on the fused scale, for the reranked window only (README "Personalization").
        applied = personalization.apply([window_hits[i].get("_source") or {} for i in scored], fused_list,
                                        spec.user_context, method=spec.fusion, weights=spec.weights,
                                        rank_constant=spec.rank_constant)
        fused_list = applied.fused
        personal = {scored[k]: applied.details[k] for k in range(len(scored))}
        info["personalization"] = {"applied": True, "boosted": applied.boosted, "weight": spec.user_context.weight,
                                   "scale": applied.scale}
    # Scored hits are reordered among the positions they held; unscored ones (deadline) stay put.
    new_order = identity.copy()
    for slot, pick in zip(scored, fusion.order_by(fused_list)):
        new_order[slot] = scored[pick]
    fused = {scored[k]: fused_list[k] for k in range(len(scored))}
    rerank_by_pos = {scored[k]: rerank[k] for k in range(len(scored))}
    removed: set[int] = set()
    if spec.min_score is not None:
        removed = {pos for pos, s in rerank_by_pos.items() if s < spec.min_score}
        info["min_score_removed"] = len(removed)
    return WindowOutcome(new_order, fused, rerank_by_pos, removed, result.status, info, personal, passages=best)


def _passage_scores(split: passages.PassagePlan, flat: list[float | None], spec: RerankSpec,
                    window_hits: list[dict], info: dict[str, Any]) -> tuple[list[float | None], dict]:
    """Aggregate passage scores per document and put each best passage into its hit's highlight.

    After a deadline a document with at least one scored passage gets the aggregate of those.
    A document left whole (it fits the model) keeps its own score and gets no passage highlight.
    """
    scores: list[float | None] = []
    best: dict[int, tuple[int, int, float]] = {}
    for position, (doc, doc_scores) in enumerate(zip(split.passages, split.per_document(flat), strict=True)):
        score, index = passages.aggregate(doc_scores, spec.passages.aggregate, spec.passages.top_k)
        scores.append(score)
        if index is None or len(doc) == 1:
            continue
        best[position] = (index, len(doc), float(doc_scores[index]))
        hit = window_hits[position]
        highlight = hit.get("highlight") if isinstance(hit.get("highlight"), dict) else {}
        hit["highlight"] = {**highlight, PASSAGE_HIGHLIGHT: [doc[index].text]}
    info["passages"] = {"docs_split": split.docs_split, "passages": len(flat),
                        "passages_scored": sum(s is not None for s in flat)}
    return scores, best


def personal_fields(spec: RerankSpec) -> tuple[str, ...]:
    """Return the `_source` fields personalization reads (the first stage must return them)."""
    if spec.user_context is None or not spec.personalization:
        return ()
    return tuple(f for f in spec.user_context.fields if f not in spec.fields)


def request_ext(spec: RerankSpec, info: dict[str, Any]) -> dict[str, Any]:
    """Return the ext.rerank keys on query understanding and on a user_context that was not applied."""
    out: dict[str, Any] = {}
    if spec.query_info is not None:
        out["query"] = {**spec.query_info.to_ext(), "instruction": spec.instruction,
                        "instruction_source": spec.instruction_source}
    if spec.user_context is not None and "personalization" not in info:
        reason = ("RESCORE_PERSONALIZATION is off; user_context was ignored" if not spec.personalization
                  else "nothing was reranked")
        out["personalization"] = {"applied": False, "reason": reason}
    return out


def first_stage(client: OpenSearch, index: str | None, body: dict, params: dict[str, str]) -> dict:
    """Run the first-stage search with the caller's query parameters sent verbatim.

    opensearch-py's transport would take `timeout`, `request_timeout` and `ignore` as its own
    (socket timeout, ignored statuses): the query string is built here so the engine sees and
    judges every parameter exactly as a direct call would (search timeout; unknown-parameter 400).
    """
    path = _make_path(index, "_search")
    query = urlencode(params)
    try:
        return client.transport.perform_request("POST", f"{path}?{query}" if query else path, body=body)
    except OSConnectionError as exc:
        raise OpenSearchUnavailable(f"OpenSearch unreachable: {exc.error}") from exc
    except TransportError as exc:
        if isinstance(exc.status_code, int):
            raise UpstreamError(exc.status_code, exc.info) from exc
        raise OpenSearchUnavailable(f"OpenSearch unreachable: {exc}") from exc


def _int_param(value: Any, field: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationFailed(f"{field} must be an integer", field=field) from None
    if number < 0 or isinstance(value, bool):
        raise ValidationFailed(f"{field} must be a non-negative integer", field=field)
    return number


def _explanation(hit: dict, outcome: WindowOutcome, position: int, spec: RerankSpec) -> dict:
    first_detail = {"value": hit.get("_score"), "description": "first-stage score", "details": []}
    if isinstance(hit.get("_explanation"), dict):
        first_detail["details"] = [hit["_explanation"]]
    weights = f", weights={list(spec.weights)}" if spec.fusion != "replace" else ""
    details = [
        first_detail,
        {"value": outcome.rerank[position], "description": f"rerank score (model {outcome.info.get('model')})",
         "details": []},
    ]
    if position in outcome.passages:
        index, count, score = outcome.passages[position]
        how = "max" if spec.passages.aggregate == "max" else f"mean of the top {spec.passages.top_k}"
        details[1]["details"] = [{"value": score, "description": f"best passage {index + 1} of {count} "
                                  f"(document score: {how} of its passage scores)", "details": []}]
    if position in outcome.personal:
        details.append(outcome.personal[position])
    plus = " + personalization" if position in outcome.personal else ""
    return {"value": outcome.fused[position], "description": f"rerank fusion={spec.fusion}{weights}{plus}",
            "details": details}
