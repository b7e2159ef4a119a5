"""Fuse first-stage and rerank scores of one window; pure functions over lists of floats."""
from __future__ import annotations

import math
from collections.abc import Sequence


def min_max(scores: Sequence[float]) -> list[float]:
    """Scale scores to [0, 1]; a constant list maps to all ones (no information to rank by)."""
    low, high = min(scores), max(scores)
    if high - low <= 1e-12:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def ranks(scores: Sequence[float]) -> list[int]:
    """Return the 1-based rank of each score (higher is better; ties keep input order)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    out = [0] * len(scores)
    for rank, i in enumerate(order, start=1):
        out[i] = rank
    return out


def first_stage_scores(scores: Sequence[float | None]) -> list[float]:
    """Return usable first-stage scores: the given ones, or rank-derived ones when any is missing.

    A sorted search returns `_score: null`; its order is then the only signal.
    """
    if any(s is None or (isinstance(s, float) and math.isnan(s)) for s in scores):
        n = len(scores)
        return [float(n - i) for i in range(n)]
    return [float(s) for s in scores]


def fuse(first: Sequence[float | None], rerank: Sequence[float], *, method: str,
         weights: tuple[float, float] = (0.5, 0.5), rank_constant: int = 60) -> list[float]:
    """Return one fused score per window position (higher is better)."""
    if len(first) != len(rerank):
        raise ValueError("first-stage and rerank score lists differ in length")
    if not rerank:
        return []
    if method == "replace":
        return [float(s) for s in rerank]
    base = first_stage_scores(first)
    w_first, w_rerank = weights
    if method == "linear":
        return [w_first * a + w_rerank * b for a, b in zip(min_max(base), min_max(rerank))]
    if method == "rrf":
        return [w_first / (rank_constant + a) + w_rerank / (rank_constant + b)
                for a, b in zip(ranks(base), ranks(rerank))]
    raise ValueError(f"unknown fusion method {method!r}")


def order_by(fused: Sequence[float]) -> list[int]:
    """Return window positions sorted by fused score, ties broken by first-stage position."""
    return sorted(range(len(fused)), key=lambda i: (-fused[i], i))
