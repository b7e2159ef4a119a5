"""Offline A/B report: metrics match a hand-computed example, bootstrap CIs, Markdown, PNG chart, script."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.experiments.feedback import parse_event
from sidecar.experiments.report import build_report, collect_queries, draw_chart, ndcg_at_k, to_markdown

ROOT = Path(__file__).resolve().parents[2]


def ev(query_id, variant, position, click=False, dwell_ms=None, experiment="exp"):
    raw = {"query_id": query_id, "doc_id": f"{query_id}-d{position}", "position": position, "click": click,
           "variant": variant, "experiment": experiment, "timestamp": "2025-01-01T00:00:00Z"}
    if dwell_ms is not None:
        raw["dwell_ms"] = dwell_ms
    return raw


def impressions(query_id, variant, n=5):
    return [ev(query_id, variant, p) for p in range(1, n + 1)]


# Hand-made log, k = 3. Gain per clicked position: 1, or 2 if a click on it has dwell >= 30 s.
#
# A (control): shown 1-5; clicks at 2 (dwell 40 s -> gain 2) and 4 (5 s -> gain 1).
#    CTR@3 = 1 (click at 2 <= 3); RR = 1/2;
#    DCG@3 = 2/log2(3) = 1.261860 (position 4 is beyond k); ideal [2, 1]: 2/log2(2) + 1/log2(3) = 2.630930;
#    NDCG@3 = 1.261860 / 2.630930 = 0.479625.
# B (control): shown 1-5, no click: CTR 0, RR 0, NDCG 0.
# C (treatment): shown 1-5; clicks at 1 (no dwell -> 1), 1 again (31 s -> gain 2: the best click counts),
#    3 (1 s -> 1). CTR@3 = 1; RR = 1; DCG@3 = 2/1 + 1/log2(4) = 2.5; ideal [2, 1] = 2.630930;
#    NDCG@3 = 0.950234.
# D (treatment): shown 1-5; click at 5 (60 s -> 2). CTR@3 = 0 (5 > 3); RR = 1/5 = 0.2 (no cut-off);
#    NDCG@3 = 0 (nothing clicked in the top 3).
# Means: control CTR 0.5, MRR 0.25, NDCG 0.239812; treatment CTR 0.5, MRR 0.6, NDCG 0.475117.
# Differences: CTR 0, MRR +0.35, NDCG +0.235305. Impressions 10 and 10; clicked results 2 and 3.
# Bootstrap over 2 queries: a resample mean of control CTR is 0, 0.5 or 1 (p = 1/4, 1/2, 1/4), so the
# 95% percentile interval is [0, 1]; MRR control [0, 0.5], treatment [0.2, 1]; the MRR difference
# reaches its extremes -0.3 and +1.0 with p = 1/16 each (> 2.5%), so its interval is [-0.3, 1.0].
# Noise that must not count: an event of another experiment, and a query whose events name two variants.
HAND_LOG = [
    *impressions("A", "control"), ev("A", "control", 2, True, 40000), ev("A", "control", 4, True, 5000),
    *impressions("B", "control"),
    *impressions("C", "treatment"), ev("C", "treatment", 1, True), ev("C", "treatment", 1, True, 31000),
    ev("C", "treatment", 3, True, 1000),
    *impressions("D", "treatment"), ev("D", "treatment", 5, True, 60000),
    ev("X", "treatment", 1, True, 50000, experiment="other"),
    ev("E", "control", 1), ev("E", "treatment", 2, True, 40000),
]


def hand_events():
    return [parse_event(raw) for raw in HAND_LOG]


def test_metrics_match_the_hand_computed_example():
    report = build_report(hand_events(), k=3, experiment="exp", resamples=2000, seed=7)
    assert report["metrics"] == ["CTR@3", "MRR", "NDCG@3"]
    control, treatment = report["variants"]["control"], report["variants"]["treatment"]
    assert (control["queries"], control["impressions"], control["clicked_results"]) == (2, 10, 2)
    assert (treatment["queries"], treatment["impressions"], treatment["clicked_results"]) == (2, 10, 3)
    ndcg_a = (2 / math.log2(3)) / (2 + 1 / math.log2(3))
    ndcg_c = 2.5 / (2 + 1 / math.log2(3))
    assert ndcg_a == pytest.approx(0.479625, abs=1e-6) and ndcg_c == pytest.approx(0.950234, abs=1e-6)
    expected = {"control": {"CTR@3": 0.5, "MRR": 0.25, "NDCG@3": ndcg_a / 2},
                "treatment": {"CTR@3": 0.5, "MRR": 0.6, "NDCG@3": ndcg_c / 2}}
    for variant, metrics in expected.items():
        for metric, value in metrics.items():
            assert report["variants"][variant]["metrics"][metric]["mean"] == pytest.approx(value, abs=1e-9)
    diff = report["vs_control"]["treatment"]
    assert diff["CTR@3"]["diff"] == pytest.approx(0.0, abs=1e-12)
    assert diff["MRR"]["diff"] == pytest.approx(0.35)
    assert diff["NDCG@3"]["diff"] == pytest.approx(0.235305, abs=1e-6)
    assert diff["MRR"]["relative"] == pytest.approx(0.35 / 0.25)
    # Bootstrap intervals worked out by hand in the comment above.
    ci = {v: {m: (x["ci_low"], x["ci_high"]) for m, x in report["variants"][v]["metrics"].items()}
          for v in report["variants"]}
    assert ci["control"]["CTR@3"] == (0.0, 1.0)
    assert ci["control"]["MRR"] == (0.0, 0.5)
    assert ci["treatment"]["MRR"] == pytest.approx((0.2, 1.0))
    assert (diff["MRR"]["ci_low"], diff["MRR"]["ci_high"]) == pytest.approx((-0.3, 1.0))
    assert diff["MRR"]["significant"] is False
    assert report["dropped"] == {"conflicting_variant_queries": 1, "other_experiment_events": 1}
    assert report["control"] == "control" and report["experiment"] == "exp"


def test_ndcg_ideal_uses_clicks_beyond_k():
    [query] = [q for q in collect_queries(hand_events(), experiment="exp")[0] if q.query_id == "A"]
    assert query.gains == {2: 2, 4: 1}
    assert ndcg_at_k(query, 3) == pytest.approx(0.479625, abs=1e-6)
    assert ndcg_at_k(query, 10) == pytest.approx((2 / math.log2(3) + 1 / math.log2(5)) / (2 + 1 / math.log2(3)))


def test_several_experiments_need_a_choice_and_unknown_control_is_an_error():
    with pytest.raises(ValueError, match="several experiments"):
        build_report(hand_events(), k=3)
    with pytest.raises(ValueError, match="control variant 'nope'"):
        build_report(hand_events(), k=3, experiment="exp", control="nope")
    with pytest.raises(ValueError, match="no feedback events"):
        build_report(hand_events(), experiment="missing")


def _synthetic(rates: dict[str, float], n: int) -> list:
    """n queries per variant; a share `rate` of them get a top click (deterministic pattern)."""
    events = []
    for variant, rate in rates.items():
        for i in range(n):
            qid = f"{variant}-{i}"
            events += [parse_event(ev(qid, variant, p)) for p in (1, 2, 3)]
            if i < round(rate * n):
                events.append(parse_event(ev(qid, variant, 1, True, 45000)))
    return events


def test_bootstrap_is_seeded_and_detects_a_real_difference_only():
    events = _synthetic({"control": 0.3, "treatment": 0.6}, 300)
    first = build_report(events, resamples=2000, seed=1)
    assert first == build_report(events, resamples=2000, seed=1)
    assert first != build_report(events, resamples=2000, seed=2)
    ctr = first["variants"]["control"]["metrics"]["CTR@10"]
    assert ctr["mean"] == pytest.approx(0.3)
    # Normal approximation: 0.3 +- 1.96 * sqrt(0.3 * 0.7 / 300) = +- 0.052.
    assert ctr["ci_low"] == pytest.approx(0.248, abs=0.015) and ctr["ci_high"] == pytest.approx(0.352, abs=0.015)
    assert first["vs_control"]["treatment"]["CTR@10"]["significant"] is True
    assert first["vs_control"]["treatment"]["CTR@10"]["ci_low"] > 0.2
    same = build_report(_synthetic({"control": 0.4, "treatment": 0.4}, 300), resamples=2000, seed=1)
    d = same["vs_control"]["treatment"]["CTR@10"]
    assert d["ci_low"] < 0 < d["ci_high"] and d["significant"] is False


def test_markdown_lists_every_variant_and_difference():
    report = build_report(hand_events(), k=3, experiment="exp")
    text = to_markdown(report)
    assert text.startswith("# Experiment report: exp")
    assert "| control | 2 | 10 | 2 | 0.5000 [0.0000, 1.0000] | 0.2500 [0.0000, 0.5000] |" in text
    assert "| treatment | MRR | +0.3500 | [-0.3000, +1.0000] | +140.0% | no |" in text


def test_chart_is_a_valid_png(tmp_path):
    from matplotlib import image

    report = build_report(_synthetic({"control": 0.3, "treatment": 0.6}, 50), resamples=200)
    path = draw_chart(report, tmp_path / "out" / "report.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(path)
    height, width = pixels.shape[:2]
    assert width > 800 and height > 300
    assert pixels.std() > 0.05  # something was drawn


def test_report_script_writes_json_markdown_and_png(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(raw) + "\n" for raw in HAND_LOG))
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "scripts/experiment_report.py", "--events", str(events), "--out", str(out),
                           "--k", "3", "--experiment", "exp", "--seed", "7"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report == build_report(hand_events(), k=3, experiment="exp", seed=7)
    assert (out / "report.md").read_text() == done.stdout.rstrip("\n") + "\n"
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**HAND_LOG[0], "position": 0}) + "\n")
    done = subprocess.run([sys.executable, "scripts/experiment_report.py", "--events", str(bad), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "event 1.position" in done.stderr
