"""Bulk-index a BEIR-layout corpus.jsonl (with embeddings for kNN) into OpenSearch."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sidecar.commands.common import (
    UsageError,
    add_connection_args,
    client_from_args,
    non_negative_int,
    positive_int,
    setup_logging,
)

HELP = "bulk-index a BEIR corpus.jsonl (with embeddings) into an index"
EPILOG = """examples:
  rescore ingest demo --index demo --recreate        # the demo corpus (demo/corpus.jsonl)
  rescore ingest ../shared/datasets/scifact --index beir-scifact
  rescore ingest corpus.jsonl --index docs --no-embed --url https://search.internal:9200

Each line is {"_id", "title", "text", ...}. Rejected lines (bad JSON, missing _id or text) are
reported and skipped; the exit status is 1 only when nothing was indexed and lines were rejected.
The index is created from es_templates/index/documents.json when absent."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_args(parser)
    parser.add_argument("corpus", type=Path, help="corpus.jsonl, or a BEIR dataset directory holding it")
    parser.add_argument("--index", required=True, help="target index (created with es_templates/ mapping if absent)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="documents per bulk request (default 64)")
    parser.add_argument("--recreate", action="store_true", help="delete and recreate the index first")
    parser.add_argument("--no-embed", action="store_true", help="skip embeddings (BM25 only)")
    parser.add_argument("--show-rejected", type=non_negative_int, default=20,
                        help="print at most this many rejected lines")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sidecar.search.ingest import count_lines, ingest
    from sidecar.search.templates import install

    setup_logging()
    path = args.corpus / "corpus.jsonl" if args.corpus.is_dir() else args.corpus
    if not path.is_file():
        raise UsageError(f"corpus file not found: {path}")
    client, settings = client_from_args(args)
    embedder = None
    if not args.no_embed:
        from sidecar.embed import OnnxEmbedder
        embedder = OnnxEmbedder(settings.embed_model_dir or None, query_prefix=settings.embed_query_prefix)
    from sidecar.engine import engine_for_client

    installed = install(client, args.index, recreate=args.recreate,
                        dimension=embedder.dimension if embedder else None,
                        engine=engine_for_client(client, settings.engine))
    for template_id, reason in installed.failed.items():
        print(f"warning: template {template_id} refused by {installed.engine}: {reason}", file=sys.stderr)
    if installed.analysis:
        print(f"warning: index {args.index}: {installed.analysis}", file=sys.stderr)
    with path.open(encoding="utf-8", errors="replace") as fh, tqdm(
            total=count_lines(path), unit="doc", desc=f"ingest {args.index}", file=sys.stderr) as bar:
        report = ingest(client, args.index, fh, embedder=embedder, batch_size=args.batch_size, progress=bar)
    print(f"indexed {report.indexed} documents into {args.index} in {report.seconds:.1f}s; "
          f"rejected {len(report.rejected)} lines")
    for rejection in report.rejected[: args.show_rejected]:
        print(f"  line {rejection.line}: {rejection.reason}")
    return 0 if report.indexed or not report.rejected else 1
