"""Load-test the sidecar on loopback: N clients for T seconds mixing plain, template and rerank searches.

Every answer is checked against OpenSearch's own: plain and template searches must return the same
ids in the same order; a reranked search must return the first-stage window as a set (any order)
followed by the same tail. Bounded in clients, time and requests; stops by itself.
"""
from __future__ import annotations

import argparse
import json

from sidecar.experiments.loadtest import LIMITS

HELP = "load-test a running sidecar on loopback and check every answer against OpenSearch"
EPILOG = f"""examples:
  rescore loadtest --index demo                          # 8 clients, 10 s, sidecar :8080, OpenSearch :9200
  rescore loadtest --sidecar http://127.0.0.1:8081 --opensearch http://127.0.0.1:9201 --index demo \\
      --clients 32 --seconds 60 --json load.json

Loopback targets only; at most {LIMITS['clients']} clients, {LIMITS['seconds']} s and {LIMITS['requests']} requests.
Exit status 1 when any request failed or an answer did not match OpenSearch's."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sidecar", default="http://127.0.0.1:8080")
    parser.add_argument("--opensearch", default="http://127.0.0.1:9200")
    parser.add_argument("--index", default="demo")
    parser.add_argument("--clients", type=int, default=8, help=f"concurrent clients (at most {LIMITS['clients']})")
    parser.add_argument("--seconds", type=float, default=10, help=f"duration (at most {LIMITS['seconds']})")
    parser.add_argument("--max-requests", type=int, default=LIMITS["requests"])
    parser.add_argument("--json", help="write the report here")


def run(args: argparse.Namespace) -> int:
    from sidecar.experiments.loadtest import run_load

    report = run_load(args.sidecar, args.opensearch, args.index, args.clients, args.seconds, args.max_requests)
    print(f"{report['requests']} requests in {report['seconds']} s = {report['requests_per_s']} req/s "
          f"({report['clients']} clients); errors={report['errors']} 429={report['overloaded_429']} "
          f"mismatches={report['mismatches']} rerank_status={report['rerank_status']}")
    print(f"{'kind':10} {'count':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for kind, row in report["kinds"].items():
        print(f"{kind:10} {row['count']:>7} {row['p50_ms']!s:>8} {row['p99_ms']!s:>8}")
    for line in report["examples"]["errors"] + report["examples"]["mismatches"]:
        print("  " + line)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0 if not report["errors"] and not report["mismatches"] else 1
