#!/usr/bin/env python3
"""Bulk-index a BEIR-layout corpus.jsonl (with embeddings for kNN) into OpenSearch."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import add_connection_args, client_from_args, setup_logging
from tqdm import tqdm

from sidecar.search.ingest import count_lines, ingest
from sidecar.search.templates import install


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_connection_args(parser)
    parser.add_argument("corpus", type=Path, help="corpus.jsonl, or a BEIR dataset directory holding it")
    parser.add_argument("--index", required=True, help="target index (created with es_templates/ mapping if absent)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--recreate", action="store_true", help="delete and recreate the index first")
    parser.add_argument("--no-embed", action="store_true", help="skip embeddings (BM25 only)")
    parser.add_argument("--show-rejected", type=int, default=20, help="print at most this many rejected lines")
    args = parser.parse_args(argv)
    setup_logging()
    path = args.corpus / "corpus.jsonl" if args.corpus.is_dir() else args.corpus
    if not path.is_file():
        parser.error(f"corpus file not found: {path}")
    client, settings = client_from_args(args)
    embedder = None
    if not args.no_embed:
        from sidecar.embed import OnnxEmbedder
        embedder = OnnxEmbedder(settings.embed_model_dir or None, query_prefix=settings.embed_query_prefix)
    install(client, args.index, recreate=args.recreate, dimension=embedder.dimension if embedder else None)
    with path.open(encoding="utf-8", errors="replace") as fh, tqdm(
            total=count_lines(path), unit="doc", desc=f"ingest {args.index}", file=sys.stderr) as bar:
        report = ingest(client, args.index, fh, embedder=embedder, batch_size=args.batch_size, progress=bar)
    print(f"indexed {report.indexed} documents into {args.index} in {report.seconds:.1f}s; "
          f"rejected {len(report.rejected)} lines")
    for rejection in report.rejected[: args.show_rejected]:
        print(f"  line {rejection.line}: {rejection.reason}")
    return 0 if report.indexed or not report.rejected else 1


if __name__ == "__main__":
    sys.exit(main())
