#!/usr/bin/env python3
"""Offline A/B report from click feedback: CTR@k, MRR, NDCG@k per variant with 95% bootstrap CIs.

Reads the events stored by POST /v1/feedback (--opensearch-url, index RESCORE_FEEDBACK_INDEX) or a
JSONL file of events (--events, e.g. from scripts/simulate_clicks.py), and writes DIR/report.json,
DIR/report.md and DIR/report.png (bars with CI error bars per metric and variant). Metric
definitions: sidecar/experiments/report.py and README "Experiments and feedback".

    python scripts/experiment_report.py --events events.jsonl --out report/
    python scripts/experiment_report.py --opensearch-url http://127.0.0.1:9200 --experiment window-fusion --out report/
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import setup_logging

from sidecar.api.errors import ValidationFailed
from sidecar.config import Settings
from sidecar.experiments.feedback import parse_event
from sidecar.experiments.report import build_report, draw_chart, to_markdown


def read_jsonl(path: Path) -> list[dict]:
    """Return the JSON objects of a JSONL file (blank lines skipped)."""
    records = []
    with path.open() as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise SystemExit(f"{path}:{number}: not JSON: {exc}") from None
    return records


def read_opensearch(url: str, index: str, experiment: str | None) -> list[dict]:
    """Return the stored feedback events of one index (optionally one experiment)."""
    from sidecar.search.feedback_store import FeedbackStore
    from sidecar.engine.client import ConnectionInfo, make_client

    settings = Settings.from_env()
    info = ConnectionInfo(url=url, user=settings.opensearch_user, password=settings.opensearch_password,
                          verify_certs=settings.opensearch_verify_certs, ca_certs=settings.opensearch_ca_certs,
                          timeout_s=max(settings.opensearch_timeout_s, 60.0))
    store = FeedbackStore(make_client(info), index)
    if store.client.indices.exists(index=index):
        store.refresh()  # events POSTed a moment ago are not searchable before a refresh
    return list(store.iter_events(experiment=experiment))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--opensearch-url", help="read events from this OpenSearch")
    source.add_argument("--events", type=Path, help="read events from this JSONL file")
    parser.add_argument("--index", help="feedback index (default: RESCORE_FEEDBACK_INDEX or rescore-feedback)")
    parser.add_argument("--out", type=Path, required=True, help="directory for report.json, report.md, report.png")
    parser.add_argument("--k", type=int, default=10, help="cut-off of CTR@k and NDCG@k")
    parser.add_argument("--experiment", help="only this experiment's events (needed when several are present)")
    parser.add_argument("--control", help="control variant (default: 'control', else the first by name)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    setup_logging()
    if args.events:
        records = read_jsonl(args.events)
    else:
        records = read_opensearch(args.opensearch_url, args.index or Settings.from_env().feedback_index,
                                  args.experiment)
    events = []
    for number, record in enumerate(records, start=1):
        try:
            events.append(parse_event(record, f"event {number}"))
        except ValidationFailed as exc:
            raise SystemExit(f"invalid event: {exc.field}: {exc.message}") from None
    try:
        report = build_report(events, k=args.k, experiment=args.experiment, control=args.control,
                              resamples=args.resamples, seed=args.seed)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = to_markdown(report)
    (args.out / "report.md").write_text(markdown)
    chart = draw_chart(report, args.out / "report.png")
    print(markdown)
    print(f"wrote {args.out / 'report.json'}, {args.out / 'report.md'}, {chart}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
