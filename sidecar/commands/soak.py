"""`rescore soak`: run a sidecar under mixed traffic with long, distinct texts and check its RSS stays flat."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "memory soak: start a sidecar, send mixed traffic with long distinct texts, check worker RSS growth"
EPILOG = """examples:
  rescore soak --opensearch http://127.0.0.1:9200 --index scifact \\
      --corpus /work/shared/datasets/scifact/corpus.jsonl --minutes 10     # the full soak (about 11 min)
  rescore soak --index scifact --minutes 1 --warmup-s 30 --json soak.json

The index must hold the corpus (rescore ingest CORPUS --index NAME --no-embed) and the stored
templates (rescore install-templates). Growth is measured per gunicorn worker from the end of the
warm-up to the end. Exit status 1 when a worker grew by more than --max-growth-pct or was replaced."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--opensearch", default="http://127.0.0.1:9200", help="OpenSearch the sidecar fronts")
    parser.add_argument("--index", default="scifact", help="index holding the corpus")
    parser.add_argument("--corpus", type=Path, help="BEIR corpus.jsonl to build query texts from "
                                                    "(default: generated words)")
    parser.add_argument("--minutes", type=float, default=10.0, help="measured duration after the warm-up")
    parser.add_argument("--warmup-s", type=float, default=60.0, help="traffic before the first RSS reference")
    parser.add_argument("--clients", type=int, default=3, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (RESCORE_WORKERS)")
    parser.add_argument("--port", type=int, default=18480, help="port of the sidecar the soak starts")
    parser.add_argument("--max-query-chars", type=int, default=20000, help="longest query text")
    parser.add_argument("--max-growth-pct", type=float, default=10.0, help="allowed RSS growth per worker")
    parser.add_argument("--json", help="write the full report (with the RSS timeline) here")


def run(args: argparse.Namespace) -> int:
    from sidecar.experiments.soak import run_soak

    report = run_soak(args.opensearch, args.index, seconds=args.minutes * 60, warmup_s=args.warmup_s,
                      clients=args.clients, workers=args.workers, port=args.port,
                      max_query_chars=args.max_query_chars, corpus=args.corpus)
    print(f"{report['requests']} requests ({report['kinds']}); statuses {report['statuses']}")
    print(f"{'worker':>8} {'warm MB':>9} {'end MB':>9} {'peak MB':>9} {'growth %':>9}")
    for pid, row in report["workers_rss"].items():
        print(f"{pid:>8} {row['rss_warm_mb']!s:>9} {row['rss_end_mb']!s:>9} {row['rss_peak_mb']!s:>9} "
              f"{row['growth_pct']!s:>9}")
    print(f"total RSS: {report['rss_warm_total_mb']} MB at warm-up end -> {report['rss_end_total_mb']} MB at the end; "
          f"max growth {report['max_growth_pct']}% (bound {args.max_growth_pct}%); score cache {report['score_cache']}")
    for line in report["unexpected"]:
        print("  unexpected: " + line)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if report["workers_replaced"]:
        print(f"FAIL: workers replaced during the soak: {report['workers_replaced']}")
        return 1
    growth = report["max_growth_pct"]
    if growth is None or growth > args.max_growth_pct:
        print(f"FAIL: RSS grew {growth}% (> {args.max_growth_pct}%)")
        return 1
    return 0
