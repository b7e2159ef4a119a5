"""Fuse first-stage and rerank scores of one window; pure functions over lists of floats.

Methods (README "Fusion"):
- replace: the model's score alone.
- linear: weighted sum of min-max normalized first-stage and model scores (per window).
- zscore: weighted sum of z-scores (per window; a constant list contributes 0).
- rrf: weighted reciprocal rank fusion, 1 / (rank_constant + rank) per list.
- calibrated: weighted sum of a first-stage rank prior, rank_constant / (rank_constant + rank - 1),
  and the model's probability, sigmoid(score / temperature) (temperature > 1 softens a model whose
  logits saturate, so it still orders hits it finds all relevant or all irrelevant). Neither term depends on the other hits in the
  window, so a two-hit window is ranked as a fifty-hit one is; where the model finds nothing
  relevant (every probability near 0) or everything, the prior keeps first-stage order.
- relative: weighted sum of the first-stage score over the window's top score (the query's best,
  hits.max_score) and the model's probability, sigmoid(score / temperature). Unlike the rank prior
  it keeps the first stage's gaps (a hit far below the top keeps little), unlike min-max it does
  not stretch the window: a hit's score depends only on its own scores and the query's top score.
  A window whose top score is not positive (or that lacks scores) falls back to the rank prior.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

METHODS = ("replace", "linear", "zscore", "rrf", "calibrated", "relative")


def min_max(scores: Sequence[float]) -> list[float]:
    """Scale scores to [0, 1]; a constant list maps to all ones (no information to rank by)."""
    low, high = min(scores), max(scores)
    if high - low <= 1e-12:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def z_scores(scores: Sequence[float]) -> list[float]:
    """Center on the mean and divide by the standard deviation; a constant list maps to all zeros."""
    n = len(scores)
    avg = sum(scores) / n
    spread = math.sqrt(sum((s - avg) ** 2 for s in scores) / n)
    if spread <= 1e-12:
        return [0.0] * n
    return [(s - avg) / spread for s in scores]


def sigmoid(score: float) -> float:
    """The logistic function, without overflow for large negative scores."""
    if score >= 0:
        return 1.0 / (1.0 + math.exp(-score))
    z = math.exp(score)
    return z / (1.0 + z)


def rank_prior(scores: Sequence[float], rank_constant: int) -> list[float]:
    """Return rank_constant / (rank_constant + rank - 1): 1 for the first hit, decaying with rank."""
    return [rank_constant / (rank_constant + r - 1) for r in ranks(scores)]


def relative_to_top(scores: Sequence[float], rank_constant: int) -> list[float]:
    """Return score / top score in [0, 1] (1 for the first hit); the rank prior when the top is not positive.

    Engine scores are not negative (Lucene); one that is counts as 0 rather than below it.
    """
    top = max(scores)
    if top <= 0:
        return rank_prior(scores, rank_constant)
    return [max(s, 0.0) / top for s in scores]


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
         weights: tuple[float, float] = (0.5, 0.5), rank_constant: int = 60, temperature: float = 1.0) -> list[float]:
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
    if method == "zscore":
        # z-scores are unbounded (up to sqrt(n)): weights act as proportions so huge ones cannot overflow.
        total = max(w_first + w_rerank, 1.0)
        w_first, w_rerank = w_first / total, w_rerank / total
        return [w_first * a + w_rerank * b for a, b in zip(z_scores(base), z_scores(rerank))]
    if method == "rrf":
        return [w_first / (rank_constant + a) + w_rerank / (rank_constant + b)
                for a, b in zip(ranks(base), ranks(rerank))]
    if method in ("calibrated", "relative"):
        prior = (rank_prior if method == "calibrated" else relative_to_top)(base, rank_constant)
        return [w_first * a + w_rerank * sigmoid(b / temperature) for a, b in zip(prior, rerank)]
    raise ValueError(f"unknown fusion method {method!r}")


def order_by(fused: Sequence[float]) -> list[int]:
    """Return window positions sorted by fused score, ties broken by first-stage position."""
    return sorted(range(len(fused)), key=lambda i: (-fused[i], i))
