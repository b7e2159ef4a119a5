"""Build a long-document BEIR collection by concatenating the documents of a short one.

Each long document joins `docs_per_long` original documents, drawn in a seeded random order
so that a relevant original lands at any position (not always first: truncation matters).
Qrels are mapped: a long document is relevant to a query when it contains a relevant original,
with the highest grade among them.
"""
from __future__ import annotations

import csv
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SEPARATOR = "\n\n"


@dataclass(frozen=True)
class LongDocSet:
    """The built collection: long documents, mapped qrels and where relevant originals sit."""

    docs: list[dict]
    qrels: dict[str, dict[str, int]]
    # Position (0-based) of every relevant original inside its long document.
    relevant_positions: Counter = field(default_factory=Counter)


def build(corpus: list[dict], qrels: dict[str, dict[str, int]], *, docs_per_long: int, seed: int) -> LongDocSet:
    """Concatenate originals into long documents and map the qrels onto them."""
    if docs_per_long < 1:
        raise ValueError("docs_per_long must be >= 1")
    order = list(corpus)
    random.Random(seed).shuffle(order)
    docs: list[dict] = []
    where: dict[str, tuple[str, int]] = {}
    for start in range(0, len(order), docs_per_long):
        group = order[start:start + docs_per_long]
        long_id = f"L{len(docs):05d}"
        for position, doc in enumerate(group):
            where[str(doc["_id"])] = (long_id, position)
        text = SEPARATOR.join(_original_text(d) for d in group)
        docs.append({"_id": long_id, "title": "", "text": text, "parts": [str(d["_id"]) for d in group]})
    mapped: dict[str, dict[str, int]] = {}
    positions: Counter = Counter()
    for qid, judged in qrels.items():
        for doc_id, grade in judged.items():
            if grade <= 0 or doc_id not in where:
                continue
            long_id, position = where[doc_id]
            positions[position] += 1
            mapped.setdefault(qid, {})
            mapped[qid][long_id] = max(grade, mapped[qid].get(long_id, 0))
    return LongDocSet(docs=docs, qrels=mapped, relevant_positions=positions)


def build_dir(dataset: Path, out: Path, *, docs_per_long: int, seed: int) -> LongDocSet:
    """Read a BEIR-layout directory, build the long collection and write it in BEIR layout to out."""
    with (dataset / "corpus.jsonl").open() as fh:
        corpus = [json.loads(line) for line in fh if line.strip()]
    qrels: dict[str, dict[str, int]] = {}
    with (dataset / "qrels" / "test.tsv").open() as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if row and row[0] != "query-id":
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    built = build(corpus, qrels, docs_per_long=docs_per_long, seed=seed)
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w") as fh:
        for doc in built.docs:
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
    (out / "queries.jsonl").write_bytes((dataset / "queries.jsonl").read_bytes())
    with (out / "qrels" / "test.tsv").open("w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, judged in built.qrels.items():
            for doc_id, grade in sorted(judged.items()):
                fh.write(f"{qid}\t{doc_id}\t{grade}\n")
    return built


def _original_text(doc: dict) -> str:
    title = (doc.get("title") or "").strip()
    text = (doc.get("text") or "").strip()
    return f"{title}\n{text}" if title else text
