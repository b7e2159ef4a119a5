"""Make OpenSearch call the sidecar itself: ML Commons connector + model + rerank search pipeline."""
from __future__ import annotations

import argparse

from sidecar.commands.common import add_connection_args, client_from_args, setup_logging

HELP = "make OpenSearch call the sidecar (ML Commons connector, model, rerank pipeline)"
EPILOG = """examples:
  rescore install-ml-pipeline --sidecar-url http://127.0.0.1:8080
  rescore install-ml-pipeline --sidecar-url http://sidecar:8080 --index demo   # index default pipeline
  rescore install-ml-pipeline --sidecar-url http://sidecar:8080 --fields title,text --pipeline my-rerank

Also sets the ML Commons cluster settings that admit a local endpoint (trusted connector regex).
The pipeline reranks only searches that carry ext.rerank.query_context; others (Dashboards, plain
apps) are answered in first-stage order (the processor has ignore_failure). To rerank those,
send them through the sidecar with a rerank policy (RESCORE_POLICIES_FILE, README "Rerank policies")."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_args(parser)
    parser.add_argument("--sidecar-url", default="http://127.0.0.1:8080",
                        help="URL OpenSearch uses to reach the sidecar")
    parser.add_argument("--index", help="set the pipeline as this index's index.search.default_pipeline")
    parser.add_argument("--pipeline", default="rescore-sidecar-rerank", help="search pipeline id")
    parser.add_argument("--fields", default="title,text", help="document fields sent to the reranker")


def run(args: argparse.Namespace) -> int:
    from sidecar.search.ml_pipeline import install_ml_rerank

    setup_logging()
    client, _ = client_from_args(args)
    result = install_ml_rerank(client, args.sidecar_url, index=args.index, pipeline_id=args.pipeline,
                               fields=tuple(f for f in args.fields.split(",") if f))
    print(f"connector {result.connector_id}, model {result.model_id}, pipeline {result.pipeline_id}"
          + (f", default for index {args.index}" if args.index else ""))
    return 0
