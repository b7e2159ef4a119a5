"""Simulated click logs: position bias, relevance-driven clicks and dwell, seeded reproducibility."""
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sidecar.experiments.ab import Experiment, Variant, assign
from sidecar.experiments.clicks import ClickModel, simulate_clicks, simulate_log
from sidecar.experiments.feedback import parse_event
from sidecar.experiments.report import build_report

ROOT = Path(__file__).resolve().parents[2]
DOCS = [f"d{i}" for i in range(1, 11)]


@pytest.mark.parametrize("model", ["pbm", "cascade"])
def test_click_rate_falls_with_rank_when_every_result_is_relevant(model):
    rng = random.Random(0)
    judged = dict.fromkeys(DOCS, 1)  # equal relevance: only the position differs
    counts = Counter()
    for _ in range(4000):
        counts.update(c.position for c in simulate_clicks(DOCS, judged, ClickModel(model=model), rng))
    assert counts[1] > 3 * counts[10]
    assert counts[1] > counts[3] > counts[10]


def test_relevant_results_get_more_and_longer_clicks():
    rng = random.Random(1)
    judged = {d: (1 if i % 2 else 0) for i, d in enumerate(DOCS)}  # d2, d4, ... relevant
    clicks = [c for _ in range(4000) for c in simulate_clicks(DOCS, judged, ClickModel(), rng)]
    relevant = [c for c in clicks if judged[c.doc_id]]
    other = [c for c in clicks if not judged[c.doc_id]]
    # Rank 2 (relevant) beats rank 1 (not relevant) despite the position bias.
    by_rank = Counter(c.position for c in clicks)
    assert by_rank[2] > by_rank[1]
    long_share = lambda cs: sum(c.dwell_ms >= 30000 for c in cs) / len(cs)  # noqa: E731
    assert long_share(relevant) > 0.8 and long_share(other) < 0.05


def test_attractiveness_grows_with_grade():
    model = ClickModel(click_noise=0.05, click_max=0.9)
    assert model.attractiveness(0, 2) == 0.05
    assert model.attractiveness(1, 2) == pytest.approx(0.05 + 0.85 / 3)
    assert model.attractiveness(2, 2) == pytest.approx(0.9)
    assert model.examination(1) == 1 and model.examination(4) == pytest.approx(0.25)


def _inputs():
    queries = {f"q{i}": f"query {i}" for i in range(20)}
    qrels = {q: {f"{q}-rel": 1} for q in queries}
    good = {q: [f"{q}-rel"] + [f"{q}-x{j}" for j in range(9)] for q in queries}  # relevant doc on top
    bad = {q: [f"{q}-x{j}" for j in range(9)] + [f"{q}-rel"] for q in queries}  # relevant doc last
    experiment = Experiment(name="sim", salt="s", unit="user",
                            variants=(Variant(name="control", weight=1), Variant(name="treatment", weight=1)))
    return dict(experiment=experiment, runs={"control": bad, "treatment": good}, qrels=qrels, queries=queries)


def test_simulated_log_is_reproducible_with_a_seed_and_valid_feedback():
    first = simulate_log(**_inputs(), model=ClickModel(), searches=300, users=50, seed=3)
    assert first == simulate_log(**_inputs(), model=ClickModel(), searches=300, users=50, seed=3)
    assert first != simulate_log(**_inputs(), model=ClickModel(), searches=300, users=50, seed=4)
    events = [parse_event(e) for e in first]  # every event passes the /v1/feedback validation
    impressions = [e for e in events if not e.click]
    assert len(impressions) == 300 * 10
    # Variants come from the real bucketing: one user, one variant.
    inputs = _inputs()
    for e in events:
        assert e.variant == assign(inputs["experiment"], {"user": e.user_id}).variant.name
    report = build_report(events, resamples=500)
    assert report["variants"]["treatment"]["metrics"]["MRR"]["mean"] > \
        report["variants"]["control"]["metrics"]["MRR"]["mean"] + 0.3
    assert report["vs_control"]["treatment"]["NDCG@10"]["significant"] is True


def test_simulate_clicks_script(tmp_path):
    dataset = tmp_path / "tiny"
    (dataset / "qrels").mkdir(parents=True)
    inputs = _inputs()
    (dataset / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n"
                                                   for q, t in inputs["queries"].items()))
    (dataset / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{g}\n" for q, docs in inputs["qrels"].items() for d, g in docs.items()))
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "bm25.json").write_text(json.dumps(inputs["runs"]["control"]))
    (runs / "bm25+rerank.json").write_text(json.dumps(inputs["runs"]["treatment"]))
    out = tmp_path / "events.jsonl"
    command = [sys.executable, "scripts/simulate_clicks.py", "--dataset", str(dataset), "--runs", str(runs),
               "--variants", "control=bm25,treatment=bm25+rerank", "--seed", "5", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert len([e for e in events if not e["click"]]) == 4 * 20 * 10  # 4 searches per query, 10 shown
    assert {e["variant"] for e in events} == {"control", "treatment"}
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and out.read_text().splitlines() == lines
