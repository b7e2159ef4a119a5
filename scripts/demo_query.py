#!/usr/bin/env python3
"""Send one search through the sidecar with opensearch-py (exactly as an existing app would).

Runs the stored template twice, first stage only and with {"rerank": true}, and prints both lists.
"""
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
    first = client.search_template(index=args.index, body=body, params=params)
    body["params"]["rerank"] = True
    reranked = client.search_template(index=args.index, body=body, params=params)
    info = reranked.get("ext", {}).get("rerank", {})
    print(f"query: {args.query!r}  mode: {args.mode}  via sidecar {args.sidecar}")
    print(f"rerank: status={info.get('status')} model={info.get('model')} window={info.get('window')} "
          f"fusion={info.get('fusion')} took_ms={info.get('took_ms')}")
    print(f"    {'first stage':<40} reranked")
    first_hits, new_hits = first["hits"]["hits"], reranked["hits"]["hits"]
    for rank in range(max(len(first_hits), len(new_hits))):
        left = _label(first_hits[rank]) if rank < len(first_hits) else ""
        right = _label(new_hits[rank]) if rank < len(new_hits) else ""
        print(f"{rank + 1:>2}. {left:<40} {right}")
    return 0 if new_hits and info.get("status") == "ok" else 1


def _label(hit: dict) -> str:
    return f"{hit['_score']:.3f} {hit['_source'].get('title', hit['_id'])}"[:38]


if __name__ == "__main__":
    sys.exit(main())
