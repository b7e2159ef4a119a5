#!/usr/bin/env python3
"""Latency of the sidecar in front of OpenSearch, measured in one run against the same index.

Rows: direct OpenSearch search (baseline), the same request through the sidecar (pass-through),
and through the sidecar with a rerank of the top-N window (cold cache: every query new to the
sidecar; warm: the same queries again, served from the score cache).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import requests


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def timed(session: requests.Session, url: str, body: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    response = session.post(url, json=body, timeout=300)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, response.json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--opensearch", required=True)
    parser.add_argument("--sidecar", required=True)
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", type=Path, required=True, help="queries.jsonl (BEIR layout)")
    parser.add_argument("-n", type=int, default=100, help="queries per row")
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    texts = [json.loads(line)["text"] for line in args.queries.open() if line.strip()][: args.n]
    session = requests.Session()

    def body(text: str, rerank: bool) -> dict:
        out = {"query": {"multi_match": {"query": text, "fields": ["title^2", "text"]}}, "size": 10,
               "_source": {"excludes": ["embedding"]}}
        if rerank:
            out["ext"] = {"rerank": {"query_context": {"query_text": text}, "window_size": args.window}}
        return out

    for text in texts[:5]:  # warm both paths' connections and OpenSearch caches
        timed(session, f"{args.opensearch}/{args.index}/_search", body(text, False))
        timed(session, f"{args.sidecar}/{args.index}/_search", body(text, False))

    rows: dict[str, list[float]] = {"direct": [], "sidecar pass-through": []}
    for text in texts:  # interleaved so both see the same machine state
        rows["direct"].append(timed(session, f"{args.opensearch}/{args.index}/_search", body(text, False))[0])
        rows["sidecar pass-through"].append(timed(session, f"{args.sidecar}/{args.index}/_search", body(text, False))[0])
    for label in (f"sidecar rerank top-{args.window} (cold)", f"sidecar rerank top-{args.window} (cached)"):
        rows[label] = []
        for text in texts:
            elapsed, result = timed(session, f"{args.sidecar}/{args.index}/_search", body(text, True))
            status = result["ext"]["rerank"]["status"]
            if status != "ok":
                print(f"warning: rerank status {status} for {text!r}", file=sys.stderr)
            rows[label].append(elapsed)

    base_p50 = statistics.median(rows["direct"])
    print(f"{'path':<34} {'n':>4} {'p50 ms':>9} {'p99 ms':>9} {'p50 vs direct':>14}")
    report = {}
    for label, values in rows.items():
        p50, p99 = statistics.median(values), percentile(values, 99)
        report[label] = {"n": len(values), "p50_ms": p50, "p99_ms": p99, "p50_added_ms": p50 - base_p50}
        print(f"{label:<34} {len(values):>4} {p50:>9.2f} {p99:>9.2f} {p50 - base_p50:>+13.2f}ms")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
