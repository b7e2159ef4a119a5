"""Robustness suite: every first stage and rerank fusion on every collection, from cached runs and scores.

Expensive work is done once per collection and cached under a directory:
  runs/<stage>.json   first-stage lists {query id: [[doc id, score], ...]} from OpenSearch (the real
                      templates and search pipelines, one pipeline per hybrid variant);
  scores.json         {query id: {doc id: model score}} for the union of every stage's rerank window,
                      scored by the bundled reranker exactly as the sidecar scores hits (same document
                      text, same query normalization, same instruction).
Every fusion configuration is then computed offline with sidecar.search.fusion (the code the sidecar
runs), so trying one more configuration costs milliseconds, not model time.
"""
from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from sidecar.experiments.evaluation import Dataset, per_query
from sidecar.search import fusion

log = logging.getLogger(__name__)

# A first-stage list: query id -> [(doc id, score)] best first.
ScoredRun = dict[str, list[tuple[str, float]]]

# Hybrid search pipelines tried (name -> OpenSearch search pipeline body); "hybrid" is the shipped one.
def hybrid_pipeline(normalization: str, weights: tuple[float, float]) -> dict:
    """Return a normalization-processor pipeline body (BM25, kNN weights)."""
    return {"description": f"robustness: {normalization} {weights[0]}/{weights[1]}",
            "phase_results_processors": [{"normalization-processor": {
                "normalization": {"technique": normalization},
                "combination": {"technique": "arithmetic_mean", "parameters": {"weights": list(weights)}}}}]}


def rrf_pipeline(rank_constant: int) -> dict:
    return {"description": f"robustness: rrf k={rank_constant}",
            "phase_results_processors": [{"score-ranker-processor": {
                "combination": {"technique": "rrf", "rank_constant": rank_constant}}}]}


HYBRID_VARIANTS: dict[str, dict] = {
    **{f"hybrid-{norm.replace('_', '')}-{int(w * 10)}": hybrid_pipeline(norm, (round(1 - w, 1), w))
       for norm in ("min_max", "l2", "z_score") for w in (0.3, 0.5, 0.7)},
    **{f"hybrid-rrf{k}": rrf_pipeline(k) for k in (10, 60)},
}


@dataclass(frozen=True)
class FusionConfig:
    """One rerank fusion: the arguments of fusion.fuse."""

    method: str
    weights: tuple[float, float] = (0.5, 0.5)
    rank_constant: int = 60
    temperature: float = 1.0

    @property
    def name(self) -> str:
        if self.method == "replace":
            return "replace"
        extra = f",k={self.rank_constant}" if self.method in ("rrf", "calibrated") else ""
        extra += f",T={self.temperature:g}" if self.method in ("calibrated", "relative") else ""
        return f"{self.method}({self.weights[0]:g}/{self.weights[1]:g}{extra})"


def fusion_grid() -> list[FusionConfig]:
    """The rerank fusions compared: replace, min-max linear, z-score, RRF, calibrated and relative, over weights."""
    grid = [FusionConfig("replace")]
    for w in (0.3, 0.5, 0.7, 0.8):
        pair = (round(1 - w, 1), w)
        grid += [FusionConfig("linear", pair), FusionConfig("zscore", pair)]
        grid += [FusionConfig("rrf", pair, k) for k in (10, 60)]
        grid += [FusionConfig("calibrated", pair, k, t) for k in (20, 60) for t in (1.0, 2.0, 4.0, 8.0)]
    # relative keeps the first stage's gaps, so it is also tried with the model as the minor term.
    grid += [FusionConfig("relative", (round(1 - w, 1), w), 60, t)
             for w in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7) for t in (1.0, 2.0, 4.0, 8.0)]
    return grid


def rerank_run(first: ScoredRun, scores: dict[str, dict[str, float]], config: FusionConfig, window: int,
               depth: int = 100) -> dict[str, list[str]]:
    """Rerank the top `window` of every list with cached model scores, as the sidecar's flow does."""
    out: dict[str, list[str]] = {}
    for qid, hits in first.items():
        head, tail = hits[:window], hits[window:depth]
        model = scores.get(qid, {})
        if not head or any(doc not in model for doc, _ in head):
            missing = [doc for doc, _ in head if doc not in model]
            raise KeyError(f"query {qid}: no cached model score for {missing[:3]} (rerun the scoring stage)")
        fused = fusion.fuse([s for _, s in head], [model[doc] for doc, _ in head], method=config.method,
                            weights=config.weights, rank_constant=config.rank_constant,
                            temperature=config.temperature)
        out[qid] = [head[i][0] for i in fusion.order_by(fused)] + [doc for doc, _ in tail]
    return out


def ids(run: ScoredRun, depth: int = 100) -> dict[str, list[str]]:
    return {qid: [doc for doc, _ in hits[:depth]] for qid, hits in run.items()}


@dataclass(frozen=True)
class Row:
    """One mode's metrics on one collection, compared per query with a baseline run."""

    mode: str
    metrics: dict[str, float]
    helped: int
    hurt: int
    p_value: float
    delta: float  # mean NDCG@10 difference to the baseline


def paired_p(a: list[float], b: list[float]) -> float:
    """Two-sided paired t-test p-value of b vs a (1.0 when identical)."""
    from scipy import stats

    diffs = [y - x for x, y in zip(a, b)]
    if all(abs(d) < 1e-12 for d in diffs):
        return 1.0
    if len(set(round(d, 12) for d in diffs)) == 1:
        return 0.0
    return float(stats.ttest_rel(b, a).pvalue)


def randomization_p(a: list[float], b: list[float], trials: int = 2000, seed: int = 0) -> float:
    """Two-sided paired randomization (sign-flip) test p-value of mean(b - a)."""
    diffs = [y - x for x, y in zip(a, b)]
    observed = abs(sum(diffs))
    if observed < 1e-12:
        return 1.0
    rng = random.Random(seed)
    hits = sum(1 for _ in range(trials)
               if abs(sum(d if rng.random() < 0.5 else -d for d in diffs)) >= observed - 1e-12)
    return (hits + 1) / (trials + 1)


def score_rows(dataset: Dataset, runs: dict[str, dict[str, list[str]]], baseline: str) -> list[Row]:
    """Metrics of every run, with helped/hurt and a paired t-test on NDCG@10 against `baseline`."""
    per = {mode: per_query(dataset, run) for mode, run in runs.items()}
    queries = sorted(per[baseline]["NDCG@10"])
    base = [per[baseline]["NDCG@10"][q] for q in queries]
    rows = []
    for mode in runs:
        values = per[mode]
        metrics = {name: mean(values[name][q] for q in queries) for name in values}
        other = [values["NDCG@10"].get(q, 0.0) for q in queries]
        helped = sum(1 for x, y in zip(base, other) if y > x + 1e-9)
        hurt = sum(1 for x, y in zip(base, other) if y < x - 1e-9)
        rows.append(Row(mode, metrics, helped, hurt, paired_p(base, other), mean(other) - mean(base)))
    return rows


def candidates(first_stage: dict[str, ScoredRun], window: int) -> dict[str, list[str]]:
    """The union of every stage's top `window` per query: what the model must score once."""
    out: dict[str, dict[str, None]] = {}
    for run in first_stage.values():
        for qid, hits in run.items():
            bucket = out.setdefault(qid, {})
            for doc, _ in hits[:window]:
                bucket[doc] = None
    return {qid: list(docs) for qid, docs in out.items()}


def load_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def save_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)


def score_candidates(todo: dict[str, list[str]], score_query: Callable[[str, list[str]], list[float]],
                     cache_path: Path, *, save_every: int = 10, progress=None) -> dict[str, dict[str, float]]:
    """Score each query's candidates once (resumable: what cache_path holds is not rescored)."""
    scores: dict[str, dict[str, float]] = load_json(cache_path) or {}
    pending, changed = 0, False
    for qid, docs in todo.items():
        have = scores.setdefault(qid, {})
        missing = [d for d in docs if d not in have]
        if missing:
            for doc, value in zip(missing, score_query(qid, missing), strict=True):
                have[doc] = value
            pending, changed = pending + 1, True
            if pending >= save_every:
                save_json(cache_path, scores)
                pending = 0
        if progress is not None:
            progress.update(1)
    if changed:  # a read-only rerun never rewrites the cache another run may be filling
        save_json(cache_path, scores)
    return scores


def leave_one_out(table: dict[str, dict[str, float]], choices: Iterable[str]) -> dict[str, tuple[str, float]]:
    """For each held-out collection, the choice with the best mean score on the others, and its held-out score.

    table: {collection: {choice: score}} (e.g. NDCG@10 gain over the collection's best first stage).
    """
    choices = list(choices)
    out = {}
    for held in table:
        train = [c for c in table if c != held]
        best = max(choices, key=lambda ch: (mean(table[c][ch] for c in train), -choices.index(ch)))
        out[held] = (best, table[held][best])
    return out


def finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


# Fusion families tried beyond fusion.METHODS (issue 15), evaluated by `rescore robustness --families`
# on the default path (hybrid + rerank) with the same leave-one-out as the shipped grid. None is
# served: each stays here unless it wins held out (README "Robustness and fusion defaults").
# A window function: (first-stage scores, model logits, doc ids, {"bm25"|"knn": {doc id: rank}}) -> fused.
WindowFusion = Callable[[list[float], list[float], list[str], dict[str, dict[str, int]]], list[float]]


def _calibrated(first: list[float], logits: list[float], w_model: float, k: int = 60, t: float = 4.0) -> list[float]:
    return fusion.fuse(first, logits, method="calibrated", weights=(1 - w_model, w_model), rank_constant=k,
                       temperature=t)


def _spread(logits: list[float]) -> float:
    avg = mean(logits)
    return math.sqrt(mean((x - avg) ** 2 for x in logits))


def adaptive_by_spread(w_model: float, scale: float) -> WindowFusion:
    """Calibrated, the model weight scaled by how far apart it scores the window: min(1, std / scale)."""
    return lambda first, logits, _docs, _ranks: _calibrated(first, logits, w_model * min(1.0, _spread(logits) / scale))


def guarded(min_spread: float, w_model: float) -> WindowFusion:
    """First-stage order where the model's logits in the window have std < min_spread, else calibrated."""
    def fuse(first, logits, _docs, _ranks):
        if _spread(logits) < min_spread:
            return fusion.first_stage_scores(first)
        return _calibrated(first, logits, w_model)
    return fuse


def adaptive_by_agreement(w_model: float, slope: float) -> WindowFusion:
    """Calibrated, model weight w + slope * Spearman(first-stage ranks, model ranks) in the window."""
    def fuse(first, logits, _docs, _ranks):
        a, b = fusion.ranks(fusion.first_stage_scores(first)), fusion.ranks(logits)
        n = len(a)
        rho = 1 - 6 * sum((x - y) ** 2 for x, y in zip(a, b)) / (n * (n * n - 1)) if n > 1 else 0.0
        return _calibrated(first, logits, min(1.0, max(0.0, w_model + slope * rho)))
    return fuse


def three_way(w_bm25: float, w_knn: float, w_model: float, k: int = 60, t: float = 4.0) -> WindowFusion:
    """Rank priors of the BM25 and the kNN lists (rank depth+1 when absent) plus the model's probability."""
    def fuse(_first, logits, docs, ranks):
        return [w_bm25 * k / (k + ranks["bm25"].get(d, 101) - 1) + w_knn * k / (k + ranks["knn"].get(d, 101) - 1)
                + w_model * fusion.sigmoid(x / t) for d, x in zip(docs, logits)]
    return fuse


def families() -> dict[str, dict[str, WindowFusion]]:
    """Each family's grid; `calibrated` (the shipped method) is the reference they must beat."""
    calibrated = {f"calibrated {w}/k={k}/T={t:g}": (lambda f, x, _d, _r, w=w, k=k, t=t: _calibrated(f, x, w, k, t))
                  for w in (0.5, 0.6, 0.7, 0.8) for k in (20, 60) for t in (2.0, 4.0, 8.0)}
    return {
        "calibrated": calibrated,
        "adaptive-spread": {f"spread {w}/s={s}": adaptive_by_spread(w, s) for w in (0.7, 0.8, 0.9, 1.0)
                            for s in (1, 2, 3, 4)},
        "guard": {f"guard std<{g}/{w}": guarded(g, w) for g in (0.5, 1.0, 1.5, 2.0, 2.5) for w in (0.6, 0.7, 0.8)},
        "adaptive-agreement": {f"agree {w}{a:+}": adaptive_by_agreement(w, a) for w in (0.6, 0.7, 0.8)
                               for a in (-0.3, -0.2, -0.1, 0.1, 0.2)},
        "three-way": {f"three {b}/{k}/{m}": three_way(b, k, m) for b, k, m in
                      ((0.15, 0.15, 0.7), (0.1, 0.2, 0.7), (0.2, 0.1, 0.7), (0.15, 0.15, 0.6), (0.2, 0.2, 0.6),
                       (0.1, 0.1, 0.8), (0.1, 0.3, 0.6), (0.3, 0.1, 0.6))},
    }


def rerank_with(runs: dict[str, ScoredRun], stage: str, scores: dict[str, dict[str, float]], fuse: WindowFusion,
                window: int, depth: int = 100) -> dict[str, list[str]]:
    """Rerank `stage`'s windows with a family's window function (bm25/knn ranks from their own runs)."""
    out = {}
    for qid, hits in runs[stage].items():
        head = hits[:window]
        ranks = {s: {d: i for i, (d, _) in enumerate(runs[s][qid], start=1)} for s in ("bm25", "knn") if s in runs}
        fused = fuse([s for _, s in head], [scores[qid][d] for d, _ in head], [d for d, _ in head], ranks)
        out[qid] = [head[i][0] for i in fusion.order_by(fused)] + [d for d, _ in hits[window:depth]]
    return out
