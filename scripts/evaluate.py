#!/usr/bin/env python3
"""Evaluate search modes on a BEIR-layout dataset against a real OpenSearch.

Prints NDCG@10, MRR@10 and Recall@100 per mode; --out writes {mode: {metric: value}} as JSON.
The corpus is indexed (with embeddings) into --index first if that index is missing.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import add_connection_args, client_from_args, setup_logging
from tqdm import tqdm

from sidecar.experiments.evaluation import evaluate_run, format_table, load_dataset, run_queries
from sidecar.search import first_stage
from sidecar.search.ingest import count_lines, ingest
from sidecar.search.templates import MODES, install

DEPTH = 100


def ensure_index(client, index: str, dataset, embedder, reindex: bool) -> None:
    expected = count_lines(dataset.corpus_path)
    if not reindex and client.indices.exists(index=index):
        have = client.count(index=index)["count"]
        if have >= expected * 0.99:
            install(client)  # templates/pipelines may be newer than the index
            return
    install(client, index, recreate=True, dimension=embedder.dimension)
    with dataset.corpus_path.open() as fh, tqdm(total=expected, unit="doc", desc=f"index {index}",
                                                file=sys.stderr) as bar:
        report = ingest(client, index, fh, embedder=embedder, batch_size=64, progress=bar)
    print(f"indexed {report.indexed} docs into {index} ({len(report.rejected)} rejected) "
          f"in {report.seconds:.0f}s", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_connection_args(parser)
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR-layout directory")
    parser.add_argument("--modes", default="bm25,knn,hybrid",
                        help=f"comma-separated; available: {', '.join(MODES)}")
    parser.add_argument("--index", help="index name (default: beir-<dataset name>)")
    parser.add_argument("--reindex", action="store_true", help="rebuild the index even if it exists")
    parser.add_argument("--max-queries", type=int, default=0, help="evaluate only the first N judged queries")
    parser.add_argument("--out", type=Path, help="write the metrics as JSON to this file")
    args = parser.parse_args(argv)
    setup_logging()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; available: {', '.join(MODES)}")

    from sidecar.embed import OnnxEmbedder

    client, settings = client_from_args(args)
    embedder = OnnxEmbedder(settings.embed_model_dir or None, query_prefix=settings.embed_query_prefix)
    dataset = load_dataset(args.dataset)
    index = args.index or f"beir-{dataset.name.lower()}"
    ensure_index(client, index, dataset, embedder, args.reindex)
    queries = dataset.judged_queries()
    if args.max_queries:
        queries = dict(list(queries.items())[: args.max_queries])

    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        def search(text: str, mode: str = mode) -> list[str]:
            response = first_stage.search(client, index, mode, text, embedder=embedder, size=DEPTH)
            return [hit["_id"] for hit in response["hits"]["hits"]]

        with tqdm(total=len(queries), unit="q", desc=mode, file=sys.stderr) as bar:
            run = run_queries(queries, search, progress=bar)
        results[mode] = evaluate_run(dataset, run)

    print(format_table(results, title=f"{dataset.name}: {len(queries)} queries, index {index}"))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
