#!/usr/bin/env python3
"""Build a long-document BEIR collection from a short one by concatenating documents.

Each long document joins --docs-per-long originals in a seeded random order (a relevant original
sits at any position, not always first); qrels are mapped: a long document is relevant to a query
when it contains a relevant original (highest grade). Evaluate it with and without passages:

  scripts/build_long_docs.py --dataset ../shared/datasets/scifact --out /tmp/scifact-long8
  scripts/evaluate.py --dataset /tmp/scifact-long8 --modes bm25,bm25+rerank,bm25+rerank:passages
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sidecar.experiments.long_docs import build_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR-layout directory to read")
    parser.add_argument("--out", type=Path, required=True, help="directory to write (BEIR layout)")
    parser.add_argument("--docs-per-long", type=int, default=8, help="originals per long document (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    args = parser.parse_args(argv)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        if not (args.dataset / name).is_file():
            parser.error(f"--dataset {args.dataset}: {name} not found (BEIR layout expected)")
    if args.docs_per_long < 1:
        parser.error("--docs-per-long must be >= 1")
    built = build_dir(args.dataset, args.out, docs_per_long=args.docs_per_long, seed=args.seed)
    words = sorted(len(d["text"].split()) for d in built.docs)
    positions = ", ".join(f"{p}: {n}" for p, n in sorted(built.relevant_positions.items()))
    print(f"{args.out}: {len(built.docs)} long documents of {args.docs_per_long} originals "
          f"(median {words[len(words) // 2]} words, max {words[-1]}); {len(built.qrels)} judged queries, "
          f"{sum(len(j) for j in built.qrels.values())} qrels; relevant originals by position: {positions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
