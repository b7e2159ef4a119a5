#!/usr/bin/env python3
"""Send one search through the sidecar with opensearch-py (exactly as an existing app would) and print the hits."""
from __future__ import annotations

import argparse
import sys

from opensearchpy import OpenSearch

from sidecar.config import Settings
from sidecar.embed import OnnxEmbedder
from sidecar.search.first_stage import template_request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("query", nargs="?", default="repair flat bicycle tire")
    parser.add_argument("--sidecar", default="http://127.0.0.1:8080", help="sidecar URL (the app's only endpoint)")
    parser.add_argument("--index", default="demo")
    parser.add_argument("--mode", default="hybrid", help="bm25 | knn | hybrid | hybrid-rrf")
    parser.add_argument("--size", type=int, default=5)
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    embedder = OnnxEmbedder(settings.embed_model_dir or None, query_prefix=settings.embed_query_prefix)
    client = OpenSearch(hosts=[args.sidecar], timeout=60)
    body, params = template_request(args.mode, args.query, size=args.size,
                                    query_vector=embedder.embed_query(args.query))
    response = client.search_template(index=args.index, body=body, params=params)
    hits = response["hits"]["hits"]
    print(f"query: {args.query!r}  mode: {args.mode}  via sidecar {args.sidecar}  "
          f"hits: {len(hits)} of {response['hits']['total']['value']}")
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank:>2}. {hit['_score']:.4f}  {hit['_id']:<16} {hit['_source'].get('title', '')}")
    return 0 if hits else 1


if __name__ == "__main__":
    sys.exit(main())
