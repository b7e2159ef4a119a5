#!/usr/bin/env python3
"""Make OpenSearch call the sidecar itself: ML Commons connector + model + rerank search pipeline."""
from __future__ import annotations

import argparse
import sys

from _common import add_connection_args, client_from_args, setup_logging

from sidecar.search.ml_pipeline import install_ml_rerank


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_connection_args(parser)
    parser.add_argument("--sidecar-url", default="http://127.0.0.1:8080", help="URL OpenSearch uses to reach the sidecar")
    parser.add_argument("--index", help="set the pipeline as this index's index.search.default_pipeline")
    parser.add_argument("--pipeline", default="rescore-sidecar-rerank")
    parser.add_argument("--fields", default="title,text", help="document fields sent to the reranker")
    args = parser.parse_args(argv)
    setup_logging()
    client, _ = client_from_args(args)
    result = install_ml_rerank(client, args.sidecar_url, index=args.index, pipeline_id=args.pipeline,
                               fields=tuple(f for f in args.fields.split(",") if f))
    print(f"connector {result.connector_id}, model {result.model_id}, pipeline {result.pipeline_id}"
          + (f", default for index {args.index}" if args.index else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
