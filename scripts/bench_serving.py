#!/usr/bin/env python3
"""Serving benchmark (issue 16 targets), side by side in one run, against a running stack:

  (a) /health and a plain search unloaded, then with --sockets slow/idle connections open (target <= 2x);
  (b) --clients x --seconds of 50% plain / 40% reranked / 10% _msearch with distinct queries; each
      plain search also goes straight to OpenSearch (the baseline): plain p99 <= direct p99 + 50 ms,
      reranked p99 <= timeout_ms + 250 ms, 0 errors, 0 circuit_open, reranked pages = first-stage sets.

  # scifact BM25-only, the sidecar behind nginx with default settings:
  rescore ingest /path/to/scifact --index scifact --url http://127.0.0.1:9200 --no-embed
  RESCORE_PORT=8081 rescore serve &
  NGINX_PORT=8080 NGINX_UPSTREAM=127.0.0.1:8081 bash scripts/nginx.sh start
  python scripts/bench_serving.py --url http://127.0.0.1:8080 --opensearch-url http://127.0.0.1:9200 \\
      --index scifact --queries /path/to/scifact/queries.jsonl

Prints one JSON report (latencies in ms, ratios, target checks); exit status 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import json
import sys

from sidecar.experiments.serving_bench import load_queries, mixed_load, slow_clients


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="what clients talk to (nginx in front of the sidecar)")
    parser.add_argument("--opensearch-url", required=True, help="the OpenSearch behind it (the baseline)")
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", required=True, help="BEIR queries.jsonl (distinct query texts)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--sockets", type=int, default=64)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--timeout-ms", type=int, default=30000, help="the rerank budget (default: the server's)")
    parser.add_argument("--rerank-url", help="send reranked searches and msearch here instead of --url "
                        "(a separate rerank pool; an experiment, README 'Serving')")
    parser.add_argument("--skip-slow", action="store_true")
    parser.add_argument("--skip-mixed", action="store_true")
    args = parser.parse_args(argv)
    queries = load_queries(args.queries)
    report: dict = {}
    if not args.skip_slow:
        report["slow_clients"] = slow_clients(args.url, f"/{args.index}/_search",
                                              {"query": {"match": {"text": queries[0]}}, "size": 10},
                                              sockets=args.sockets)
        print(json.dumps({"slow_clients": report["slow_clients"]}), file=sys.stderr, flush=True)
    if not args.skip_mixed:
        report["mixed"] = mixed_load(args.url, args.opensearch_url, args.index, queries[1:], clients=args.clients,
                                     seconds=args.seconds, window=args.window, timeout_ms=args.timeout_ms,
                                     rerank_url=args.rerank_url)
    print(json.dumps(report, indent=2))
    missed = [name for name, ok in report.get("mixed", {}).get("targets", {}).items()
              if name.endswith("_ok") and not ok]
    for name in ("health", "search"):
        row = report.get("slow_clients", {}).get(name)
        if row and row["ratio_p50"] > 2:
            missed.append(f"slow_clients.{name}")
    if missed:
        print(f"bench_serving: targets missed: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
