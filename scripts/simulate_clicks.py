#!/usr/bin/env python3
"""Simulate an A/B click log on a BEIR-layout dataset: position-biased clicks judged by its qrels.

Ranked lists come from run files written by `scripts/evaluate.py --runs-out DIR` (DIR/<mode>.json,
{query id: [doc ids]}). Each variant is mapped to a mode; simulated users are bucketed into the
variants by the sidecar's own A/B bucketing (sidecar/experiments/ab.py), so the log looks like the
one the sidecar's users would produce. Writes the events as JSONL (--out) and/or POSTs them to a
sidecar's /v1/feedback (--feedback-url), from where scripts/experiment_report.py reads them.

    python scripts/evaluate.py --dataset ../shared/datasets/scifact --modes hybrid,hybrid+rerank --runs-out runs
    python scripts/simulate_clicks.py --dataset ../shared/datasets/scifact --runs runs \\
        --variants control=hybrid,treatment=hybrid+rerank --out events.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import setup_logging

from sidecar.experiments.ab import Experiment, Variant
from sidecar.experiments.clicks import MODELS, ClickModel, simulate_log
from sidecar.experiments.evaluation import load_dataset


def parse_variants(raw: str) -> dict[str, str]:
    """Parse "control=bm25,treatment=bm25+rerank" into {variant: mode}."""
    out: dict[str, str] = {}
    for item in raw.split(","):
        name, sep, mode = item.strip().partition("=")
        if not sep or not name or not mode or name in out:
            raise ValueError(f"bad variant {item!r}; expected NAME=MODE, names unique")
        out[name] = mode
    if len(out) < 2:
        raise ValueError("give at least two variants, e.g. control=bm25,treatment=bm25+rerank")
    return out


def post_events(url: str, events: list[dict], api_key: str | None, batch: int = 1000) -> int:
    """POST the events to URL/v1/feedback in batches; return how many were accepted."""
    import requests

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    accepted = 0
    with requests.Session() as session:
        for start in range(0, len(events), batch):
            response = session.post(f"{url.rstrip('/')}/v1/feedback", json={"events": events[start:start + batch]},
                                    headers=headers, timeout=120)
            if response.status_code != 200:
                raise SystemExit(f"/v1/feedback answered {response.status_code}: {response.text[:500]}")
            accepted += response.json()["accepted"]
    return accepted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR-layout directory (queries, qrels)")
    parser.add_argument("--runs", type=Path, required=True, help="directory of <mode>.json run files")
    parser.add_argument("--variants", required=True, help="NAME=MODE,... e.g. control=hybrid,treatment=hybrid+rerank")
    parser.add_argument("--weights", help="traffic weights per variant, e.g. 50,50 (default: equal)")
    parser.add_argument("--experiment", default="simulated", help="experiment name written into the events")
    parser.add_argument("--searches", type=int, default=0,
                        help="simulated searches (default: 4 per judged query)")
    parser.add_argument("--users", type=int, default=2000, help="distinct simulated users")
    parser.add_argument("--model", choices=MODELS, default="pbm", help="click model")
    parser.add_argument("--shown", type=int, default=10, help="results shown per search (impressions)")
    parser.add_argument("--eta", type=float, default=1.0, help="pbm position-bias exponent")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the events as JSONL here")
    parser.add_argument("--feedback-url", help="also POST the events to this sidecar's /v1/feedback")
    parser.add_argument("--api-key", help="bearer key for --feedback-url (RESCORE_API_KEYS)")
    args = parser.parse_args(argv)
    setup_logging()
    if not args.out and not args.feedback_url:
        parser.error("give --out and/or --feedback-url")
    try:
        variants = parse_variants(args.variants)
    except ValueError as exc:
        parser.error(str(exc))
    weights = [1.0] * len(variants)
    if args.weights:
        weights = [float(w) for w in args.weights.split(",")]
        if len(weights) != len(variants):
            parser.error("--weights needs one weight per variant")
    runs = {}
    for name, mode in variants.items():
        path = args.runs / f"{mode}.json"
        if not path.is_file():
            parser.error(f"no run file {path} (scripts/evaluate.py --modes {mode} --runs-out {args.runs})")
        runs[name] = json.loads(path.read_text())
    dataset = load_dataset(args.dataset)
    experiment = Experiment(name=args.experiment, salt=f"sim-{args.seed}", unit="user",
                            variants=tuple(Variant(name=n, weight=w) for n, w in zip(variants, weights)))
    searches = args.searches or 4 * len(dataset.judged_queries())
    events = simulate_log(experiment=experiment, runs=runs, qrels=dataset.qrels, queries=dataset.queries,
                          model=ClickModel(model=args.model, shown=args.shown, eta=args.eta),
                          searches=searches, users=args.users, seed=args.seed)
    clicks = sum(e["click"] for e in events)
    print(f"{searches} searches, {len(events)} events ({clicks} clicks) for variants "
          f"{', '.join(f'{n}={m}' for n, m in variants.items())}", file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w") as fh:
            for event in events:
                fh.write(json.dumps(event) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    if args.feedback_url:
        accepted = post_events(args.feedback_url, events, args.api_key)
        print(f"POSTed {accepted} events to {args.feedback_url}/v1/feedback", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
