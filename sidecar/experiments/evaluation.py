"""Offline evaluation on BEIR-layout collections: load data, run a search mode, compute metrics."""
from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import ir_measures
from ir_measures import RR, R, nDCG

log = logging.getLogger(__name__)

MEASURES = {"NDCG@10": nDCG @ 10, "MRR@10": RR @ 10, "Recall@100": R @ 100}

# A ranked run: query id -> document ids, best first.
Run = dict[str, list[str]]


@dataclass(frozen=True)
class Dataset:
    """A BEIR-layout collection: corpus.jsonl, queries.jsonl, qrels/test.tsv."""

    name: str
    root: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def corpus_path(self) -> Path:
        return self.root / "corpus.jsonl"

    def judged_queries(self) -> dict[str, str]:
        """Return the queries that have at least one judgment, in id order."""
        return {qid: text for qid, text in self.queries.items() if qid in self.qrels}


def load_dataset(root: str | Path, split: str = "test") -> Dataset:
    """Read queries and qrels of a BEIR-layout directory."""
    root = Path(root)
    queries: dict[str, str] = {}
    with (root / "queries.jsonl").open() as fh:
        for line in fh:
            if line.strip():
                record = json.loads(line)
                queries[str(record["_id"])] = record["text"]
    qrels: dict[str, dict[str, int]] = {}
    with (root / "qrels" / f"{split}.tsv").open() as fh:
        reader = csv.reader(fh, delimiter="\t")
        for row in reader:
            if not row or row[0] == "query-id":
                continue
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return Dataset(name=root.name, root=root, queries=queries, qrels=qrels)


def _qrels(dataset: Dataset) -> list[ir_measures.Qrel]:
    return [ir_measures.Qrel(q, d, rel) for q, docs in dataset.qrels.items() for d, rel in docs.items()]


def _scored(run: Run) -> list[ir_measures.ScoredDoc]:
    # Scores from rank, so ties in the engine's scores never reorder what the engine returned.
    return [ir_measures.ScoredDoc(q, d, float(len(docs) - i)) for q, docs in run.items()
            for i, d in enumerate(docs)]


def evaluate_run(dataset: Dataset, run: Run) -> dict[str, float]:
    """Return the mean of each metric over the judged queries of `run` (no hits scores 0)."""
    judged = {qid: docs for qid, docs in run.items() if qid in dataset.qrels}
    return {name: (sum(values.values()) / len(judged) if judged else 0.0)
            for name, values in per_query(dataset, judged).items()}


def per_query(dataset: Dataset, run: Run) -> dict[str, dict[str, float]]:
    """Return {metric: {query id: value}} for every judged query in `run`."""
    out: dict[str, dict[str, float]] = {name: dict.fromkeys(run, 0.0) for name in MEASURES}
    by_measure = {measure: name for name, measure in MEASURES.items()}
    for metric in ir_measures.iter_calc(list(MEASURES.values()), _qrels(dataset), _scored(run)):
        # The backend also reports (as 0) judged queries the run does not have: not ours to count.
        if metric.query_id in out[by_measure[metric.measure]]:
            out[by_measure[metric.measure]][metric.query_id] = metric.value
    return out


def run_queries(queries: dict[str, str], search: Callable[[str], list[str]], *,
                workers: int = 4, progress=None) -> Run:
    """Run `search` for every query concurrently and collect the ranked ids."""
    def one(item: tuple[str, str]) -> tuple[str, list[str]]:
        qid, text = item
        return qid, search(text)

    run: Run = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for qid, ids in pool.map(one, queries.items()):
            run[qid] = ids
            if progress is not None:
                progress.update(1)
    return run


def format_table(results: dict[str, dict[str, float]], title: str = "") -> str:
    """Render {mode: {metric: value}} as a fixed-width table."""
    names = list(MEASURES)
    width = max([len("mode")] + [len(m) for m in results])
    lines = [title] if title else []
    lines.append(f"{'mode':<{width}}  " + "  ".join(f"{n:>10}" for n in names))
    for mode, metrics in results.items():
        lines.append(f"{mode:<{width}}  " + "  ".join(f"{metrics[n]:>10.4f}" for n in names))
    return "\n".join(lines)


def compare(dataset: Dataset, base: Run, other: Run, metric: str = "NDCG@10") -> tuple[int, int, int]:
    """Count queries where `other` is better, worse, or equal to `base` on `metric`."""
    a = per_query(dataset, base)[metric]
    b = per_query(dataset, other)[metric]
    helped = sum(1 for q in a if b.get(q, 0.0) > a[q] + 1e-9)
    hurt = sum(1 for q in a if b.get(q, 0.0) < a[q] - 1e-9)
    return helped, hurt, len(a) - helped - hurt
