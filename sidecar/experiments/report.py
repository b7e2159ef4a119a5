"""Offline A/B report from click feedback: CTR@k, MRR and NDCG@k per variant with bootstrap CIs.

Per query (one query_id = one result list shown once):
- CTR@k: 1 if the query has a click at a position <= k, else 0 (share of queries with a click).
- MRR: 1 / the best (smallest) clicked position, no cut-off; 0 without a click.
- NDCG@k: gain 1 per clicked position, 2 when a click on it has dwell_ms >= 30000 (a satisfied
  click); DCG@k = sum gain / log2(position + 1) over clicked positions <= k; the ideal DCG puts
  all the query's clicked gains (beyond k too) in the top positions, best first; 0 without a click.
Variant means get a percentile bootstrap interval over queries (fixed seed); each variant's
difference to the control is bootstrapped from both groups' resamples (independent groups).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sidecar.experiments.feedback import FeedbackEvent

LONG_DWELL_MS = 30000.0
UNASSIGNED = "unassigned"
_CHUNK = 250  # resamples per vectorized step: bounds memory to _CHUNK x queries indices


@dataclass(frozen=True)
class QueryClicks:
    """What one shown result list got: the positions shown and the gain of each clicked position."""

    query_id: str
    variant: str
    shown: frozenset[int]
    gains: dict[int, int]


def metric_names(k: int) -> tuple[str, str, str]:
    """Return the report's metric names for cut-off k."""
    return f"CTR@{k}", "MRR", f"NDCG@{k}"


def collect_queries(events: Iterable[FeedbackEvent], *, experiment: str | None = None
                    ) -> tuple[list[QueryClicks], dict[str, int]]:
    """Group events by query_id (of one experiment); return the queries and what was dropped, and why.

    A query whose events name different variants is dropped (it cannot be attributed).
    """
    shown: dict[str, set[int]] = {}
    gains: dict[str, dict[int, int]] = {}
    variants: dict[str, set[str]] = {}
    experiments: set[str | None] = set()
    other_experiment = 0
    for event in events:
        if experiment is not None and event.experiment != experiment:
            other_experiment += 1
            continue
        experiments.add(event.experiment)
        qid = event.query_id
        shown.setdefault(qid, set()).add(event.position)
        gains.setdefault(qid, {})
        variants.setdefault(qid, set()).add(event.variant or UNASSIGNED)
        if event.click:
            gain = 2 if event.dwell_ms is not None and event.dwell_ms >= LONG_DWELL_MS else 1
            gains[qid][event.position] = max(gain, gains[qid].get(event.position, 0))
    if experiment is None and len(experiments) > 1:
        names = ", ".join(sorted(str(e) for e in experiments))
        raise ValueError(f"events of several experiments ({names}): choose one (--experiment)")
    queries, conflicting = [], 0
    for qid in sorted(shown):
        if len(variants[qid]) > 1:
            conflicting += 1
            continue
        queries.append(QueryClicks(qid, next(iter(variants[qid])), frozenset(shown[qid]), gains[qid]))
    return queries, {"conflicting_variant_queries": conflicting, "other_experiment_events": other_experiment}


def ctr_at_k(query: QueryClicks, k: int) -> float:
    """Return 1.0 if the query has a click at a position <= k, else 0.0."""
    return 1.0 if any(p <= k for p in query.gains) else 0.0


def reciprocal_rank(query: QueryClicks) -> float:
    """Return 1 / the best clicked position, 0.0 without a click."""
    return 1.0 / min(query.gains) if query.gains else 0.0


def ndcg_at_k(query: QueryClicks, k: int) -> float:
    """Return NDCG@k with click gains (1, or 2 for a long-dwell click); ideal from the query's clicks."""
    if not query.gains:
        return 0.0
    dcg = sum(g / math.log2(p + 1) for p, g in query.gains.items() if p <= k)
    ideal = sorted(query.gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / idcg


def query_metrics(query: QueryClicks, k: int) -> dict[str, float]:
    """Return {metric name: value} of one query."""
    ctr, mrr, ndcg = metric_names(k)
    return {ctr: ctr_at_k(query, k), mrr: reciprocal_rank(query), ndcg: ndcg_at_k(query, k)}


def bootstrap_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Return the means of `resamples` bootstrap resamples (rows of values, with replacement)."""
    n = values.shape[0]
    out = np.empty((resamples,) + values.shape[1:])
    for start in range(0, resamples, _CHUNK):
        stop = min(start + _CHUNK, resamples)
        picks = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[picks].mean(axis=1)
    return out


def build_report(events: Iterable[FeedbackEvent], *, k: int = 10, experiment: str | None = None,
                 control: str | None = None, resamples: int = 2000, seed: int = 0,
                 confidence: float = 0.95) -> dict[str, Any]:
    """Compute the per-variant report (JSON-ready): counts, metric means with CIs, differences vs control."""
    if k < 1 or resamples < 1 or not 0 < confidence < 1:
        raise ValueError("k and resamples must be >= 1 and confidence in (0, 1)")
    events = list(events)
    queries, dropped = collect_queries(events, experiment=experiment)
    if not queries:
        raise ValueError("no feedback events to report on" + (f" for experiment {experiment!r}" if experiment else ""))
    if experiment is None:
        experiment = next((e.experiment for e in events if e.experiment), None)
    names = metric_names(k)
    by_variant: dict[str, list[QueryClicks]] = {}
    for query in queries:
        by_variant.setdefault(query.variant, []).append(query)
    variant_names = sorted(by_variant)
    if control is None:
        control = "control" if "control" in by_variant else variant_names[0]
    elif control not in by_variant:
        raise ValueError(f"control variant {control!r} has no events (variants: {', '.join(variant_names)})")
    tail = (1 - confidence) / 2 * 100
    rng = np.random.default_rng(seed)
    variants: dict[str, Any] = {}
    boots: dict[str, np.ndarray] = {}
    for name in variant_names:
        group = by_variant[name]
        values = np.array([[query_metrics(q, k)[m] for m in names] for q in group])
        boots[name] = bootstrap_means(values, resamples, rng)
        low, high = np.percentile(boots[name], [tail, 100 - tail], axis=0)
        clicks = sum(len(q.gains) for q in group)
        variants[name] = {
            "queries": len(group),
            "impressions": sum(len(q.shown) for q in group),
            "clicked_results": clicks,
            "metrics": {m: {"mean": float(values[:, j].mean()), "ci_low": float(low[j]), "ci_high": float(high[j])}
                        for j, m in enumerate(names)},
        }
    vs_control: dict[str, Any] = {}
    for name in variant_names:
        if name == control:
            continue
        diffs = boots[name] - boots[control]
        low, high = np.percentile(diffs, [tail, 100 - tail], axis=0)
        vs_control[name] = {}
        for j, m in enumerate(names):
            base = variants[control]["metrics"][m]["mean"]
            diff = variants[name]["metrics"][m]["mean"] - base
            vs_control[name][m] = {"diff": diff, "ci_low": float(low[j]), "ci_high": float(high[j]),
                                   "relative": diff / base if base else None,
                                   "significant": bool(low[j] > 0 or high[j] < 0)}
    return {
        "experiment": experiment, "k": k, "control": control, "metrics": list(names),
        "confidence": confidence, "resamples": resamples, "seed": seed,
        "definitions": {
            names[0]: f"share of queries with at least one click at position <= {k}",
            names[1]: "mean of 1 / best clicked position (0 without a click), no cut-off",
            names[2]: (f"NDCG@{k} with gain 1 per clicked position, 2 if clicked with dwell_ms >= "
                       f"{int(LONG_DWELL_MS)}; ideal ranking from the query's own clicked gains"),
            "ci": (f"{confidence:.0%} percentile bootstrap over queries, {resamples} resamples, seed {seed}; "
                   "differences resample both groups independently"),
        },
        "events": len(events),
        "dropped": dropped,
        "variants": variants,
        "vs_control": vs_control,
    }


def to_markdown(report: dict[str, Any]) -> str:
    """Render the report as Markdown tables (variants, then differences vs control)."""
    names = report["metrics"]
    pct = f"{report['confidence']:.0%}"
    title = report["experiment"] or "(no experiment name)"
    lines = [f"# Experiment report: {title}", "",
             f"{pct} bootstrap CIs over queries ({report['resamples']} resamples, seed {report['seed']}); "
             f"control = `{report['control']}`; {report['events']} events.", "",
             "| variant | queries | impressions | clicked results | " + " | ".join(names) + " |",
             "|---|---:|---:|---:|" + "---|" * len(names)]
    for name, v in report["variants"].items():
        cells = [f"{v['metrics'][m]['mean']:.4f} [{v['metrics'][m]['ci_low']:.4f}, {v['metrics'][m]['ci_high']:.4f}]"
                 for m in names]
        lines.append(f"| {name} | {v['queries']} | {v['impressions']} | {v['clicked_results']} | "
                     + " | ".join(cells) + " |")
    if report["vs_control"]:
        lines += ["", f"## Difference vs control ({report['control']})", "",
                  f"| variant | metric | difference | {pct} CI | relative | CI excludes 0 |",
                  "|---|---|---:|---|---:|---|"]
        for name, per_metric in report["vs_control"].items():
            for m in names:
                d = per_metric[m]
                relative = "n/a" if d["relative"] is None else f"{d['relative']:+.1%}"
                lines.append(f"| {name} | {m} | {d['diff']:+.4f} | [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] | "
                             f"{relative} | {'yes' if d['significant'] else 'no'} |")
    lines += ["", "Definitions:", ""] + [f"- **{key}**: {text}" for key, text in report["definitions"].items()]
    return "\n".join(lines) + "\n"


def draw_chart(report: dict[str, Any], path: str | Path) -> Path:
    """Draw a panel per metric (a bar per variant, its CI as error bars) and one of the differences vs control.

    The last panel shows each variant's difference to the control with its CI around a zero line,
    so an effect too small to see between two bars still shows (and whether its CI excludes 0).
    """
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the report chart needs matplotlib: pip install 'rescore-sidecar[report]'") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = report["metrics"]
    variants = list(report["variants"])
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    colors = {report["control"]: "#7f7f7f"}
    for i, name in enumerate(v for v in variants if v != report["control"]):
        colors[name] = palette[i % len(palette)]
    panels = len(names) + (1 if report["vs_control"] else 0)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.4), squeeze=False)
    for ax, metric in zip(axes[0], names):
        means = [report["variants"][v]["metrics"][metric]["mean"] for v in variants]
        lows = [report["variants"][v]["metrics"][metric]["ci_low"] for v in variants]
        highs = [report["variants"][v]["metrics"][metric]["ci_high"] for v in variants]
        errors = [[m - lo for m, lo in zip(means, lows)], [hi - m for m, hi in zip(means, highs)]]
        bars = ax.bar(variants, means, yerr=errors, capsize=6, color=[colors[v] for v in variants],
                      edgecolor="black", linewidth=0.6)
        for bar, mean, high in zip(bars, means, highs):
            ax.text(bar.get_x() + bar.get_width() / 2, high, f"{mean:.3f}", ha="center", va="bottom", fontsize=9)
        ax.set_title(metric)
        ax.set_ylim(0, min(1.05, max(highs) * 1.2 + 0.02) if max(highs) > 0 else 1)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    if report["vs_control"]:
        ax = axes[0][-1]
        others = list(report["vs_control"])
        step = 0.8 / len(others)
        for i, name in enumerate(others):
            offsets = [j - 0.4 + step * (i + 0.5) for j in range(len(names))]
            diffs = [report["vs_control"][name][m] for m in names]
            ax.errorbar([d["diff"] for d in diffs], offsets, fmt="o", capsize=5, color=colors[name], label=name,
                        xerr=[[d["diff"] - d["ci_low"] for d in diffs], [d["ci_high"] - d["diff"] for d in diffs]])
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(len(names) - 0.5, -1.1)  # top to bottom, with room for the legend above the first row
        ax.set_title(f"difference vs {report['control']}")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    queries = ", ".join(f"{v}: {report['variants'][v]['queries']} q" for v in variants)
    fig.suptitle(f"{report['experiment'] or 'experiment'} — {report['confidence']:.0%} bootstrap CI ({queries})",
                 fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
