#!/usr/bin/env python3
"""Send one search through the sidecar with opensearch-py (exactly as an existing app would).

Runs the stored template twice: once with the header X-Rescore-Rerank: false (the first stage, as
the engine answers it) and once unchanged. With a rerank policy on the index (the quickstart's
demo/policies.yaml) the unchanged request comes back reranked; without one the script asks for
the rerank itself ({"rerank": true} template param). Prints both lists and the window used.
"""
from __future__ import annotations

import argparse
import sys

from opensearchpy import OpenSearch

from sidecar.config import Settings
from sidecar.embed import OnnxEmbedder
from sidecar.engine import engine_for_client
from sidecar.search.first_stage import template_request

# A query where the first stage puts the wrong document first (solar panels) and the reranker
# fixes it (photosynthesis).
DEFAULT_QUERY = "how do plants make food from sunlight"

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("query", nargs="?", default=DEFAULT_QUERY)
    parser.add_argument("--sidecar", default="http://127.0.0.1:8080", help="sidecar URL (the app's only endpoint)")
    parser.add_argument("--index", default="demo")
    parser.add_argument("--mode", default="hybrid", help="bm25 | knn | hybrid | hybrid-rrf")
    parser.add_argument("--size", type=int, default=5)
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    embedder = OnnxEmbedder(settings.embed_model_dir or None, query_prefix=settings.embed_query_prefix)
    client = OpenSearch(hosts=[args.sidecar], timeout=60)
    body, params = template_request(args.mode, args.query, engine=engine_for_client(client), size=args.size,
                                    query_vector=embedder.embed_query(args.query))
    first = client.search_template(index=args.index, body=body, params=params,
                                   headers={"X-Rescore-Rerank": "false"})
    reranked = client.search_template(index=args.index, body=body, params=params)
    info = reranked.get("ext", {}).get("rerank", {})
    how = f"by policy {info['policy']!r} (the request is unchanged)" if info.get("policy") else ""
    if not info:  # no policy covers the index: ask for the rerank in the request
        body["params"]["rerank"] = True
        reranked = client.search_template(index=args.index, body=body, params=params)
        info = reranked.get("ext", {}).get("rerank", {})
        how = "on request (template param rerank: true)"
    print(f"query: {args.query!r}  mode: {args.mode}  via sidecar {args.sidecar}")
    print(f"rerank: {how} status={info.get('status')} model={info.get('model')} fusion={info.get('fusion')} "
          f"took_ms={info.get('took_ms')}")
    window, window_size = info.get("window"), info.get("window_size")
    short = (f"; the first stage found only {window} candidates"
             if isinstance(window, int) and isinstance(window_size, int) and window < window_size else "")
    print(f"window: {window} hits reranked (window_size {window_size}{short})")
    print(f"    {'first stage':<40} reranked")
    first_hits, new_hits = first["hits"]["hits"], reranked["hits"]["hits"]
    for rank in range(max(len(first_hits), len(new_hits))):
        left = _label(first_hits[rank]) if rank < len(first_hits) else ""
        right = _label(new_hits[rank]) if rank < len(new_hits) else ""
        moved = "" if rank < len(first_hits) and rank < len(new_hits) and \
            first_hits[rank]["_id"] == new_hits[rank]["_id"] else "  <- moved"
        print(f"{rank + 1:>2}. {left:<40} {right}{moved}")
    changed = [h["_id"] for h in first_hits] != [h["_id"] for h in new_hits]
    print(f"order changed by the reranker: {'yes' if changed else 'no'}")
    return 0 if new_hits and info.get("status") == "ok" else 1


def _label(hit: dict) -> str:
    return f"{hit['_score']:.3f} {hit['_source'].get('title', hit['_id'])}"[:38]


if __name__ == "__main__":
    sys.exit(main())
