"""text_similarity_reranker below the root of a retriever tree, served by the sidecar.

Each nested reranker is run on its own (its inner retriever as the engine runs retrievers, then
the rerank flow), and its node is replaced by a `standard` retriever that matches exactly the
reranked hits with their scores, so the engine (or the OpenSearch translation) combines it with
the rest of the tree like any other retriever. Scores are the reranked (fused) scores, shifted by
a constant when some are negative (query boosts cannot be), so order and gaps are kept.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

RERANKER = "text_similarity_reranker"
DEFAULT_WINDOW = 10  # Elasticsearch's rank_window_size default

# serve(node, path) -> the node's reranked response (hits with _id, _index, _score; ext.rerank).
Serve = Callable[[dict, str], dict]


def has_nested_reranker(retriever: Any) -> bool:
    """Return whether a retriever tree has a text_similarity_reranker anywhere below its root."""
    return any(RERANKER in child or has_nested_reranker(child) for _, child in _children(retriever, "retriever"))


def replace_nested(retriever: dict, serve: Serve) -> tuple[dict, list[dict]]:
    """Return (a copy of the tree with every nested reranker replaced by its hits, their ext.rerank)."""
    tree = copy.deepcopy(retriever)
    outcomes: list[dict] = []
    _replace_below(tree, "retriever", serve, outcomes)
    return tree, outcomes


def window_of(node: dict) -> int:
    spec = node.get(RERANKER)
    window = spec.get("rank_window_size", DEFAULT_WINDOW) if isinstance(spec, dict) else DEFAULT_WINDOW
    return window if isinstance(window, int) and not isinstance(window, bool) and window > 0 else DEFAULT_WINDOW


def hits_retriever(hits: list[dict]) -> dict:
    """Return a standard retriever that matches exactly these hits, scored as they are."""
    if not hits:
        return {"standard": {"query": {"match_none": {}}}}
    scores = [float(h["_score"]) if isinstance(h.get("_score"), (int, float)) else 0.0 for h in hits]
    shift = -min(scores) + 1e-6 if min(scores) < 0 else 0.0
    should = [{"constant_score": {"filter": {"bool": {"filter": [{"ids": {"values": [h["_id"]]}},
                                                                  {"term": {"_index": h["_index"]}}]}},
                                  "boost": score + shift}}
              for h, score in zip(hits, scores)]
    return {"standard": {"query": {"bool": {"should": should}}}}


def _children(retriever: Any, where: str):
    """Yield (container, key, path, child retriever) for the direct children of one retriever object."""
    if not isinstance(retriever, dict):
        return
    for kind, spec in retriever.items():
        if not isinstance(spec, dict):
            continue
        if isinstance(spec.get("retriever"), dict):
            yield (spec, "retriever", f"{where}.{kind}.retriever"), spec["retriever"]
        subs = spec.get("retrievers")
        for i, entry in enumerate(subs if isinstance(subs, list) else []):
            if isinstance(entry, dict) and isinstance(entry.get("retriever"), dict):  # linear: {retriever, weight}
                yield (entry, "retriever", f"{where}.{kind}.retrievers[{i}].retriever"), entry["retriever"]
            elif isinstance(entry, dict):
                yield (subs, i, f"{where}.{kind}.retrievers[{i}]"), entry


def _replace_below(retriever: dict, where: str, serve: Serve, outcomes: list[dict]) -> None:
    for (container, key, path), child in list(_children(retriever, where)):
        if RERANKER in child:
            response = serve(child, path)
            container[key] = hits_retriever(response.get("hits", {}).get("hits", []))
            ext = response.get("ext", {}).get("rerank", {})
            outcomes.append({"path": path, **{k: ext[k] for k in ("status", "window", "name") if k in ext}})
        else:
            _replace_below(child, path, serve, outcomes)
