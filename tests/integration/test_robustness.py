"""The robustness suite end to end on two tiny collections: real OpenSearch, the real bundled model.

The collections are built so that BM25 is lured by repeated words while the answer says the same thing
in other words; the model and the vectors see through it. The suite must index, fetch every first
stage, score the windows once (a second run loads nothing), compute every fusion with the sidecar's
own fusion code, and choose by leave-one-collection-out.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sidecar.experiments.robustness import fusion_grid

pytestmark = pytest.mark.integration

COLLECTIONS = {
    "robust-tiny-geo": (
        {"g1": ("Paris", "Paris is the capital and largest city of France."),
         "g2": ("Capital gains tax in France", "France taxes capital gains; the capital rules of France changed, "
                                               "so capital held in France is taxed as capital income."),
         "g3": ("Capital letters", "Capital letters start sentences in French and in English."),
         "g4": ("Rome", "Rome, on the Tiber, is the seat of Italy's government and its biggest city."),
         "g5": ("Italian capital markets", "Italy's capital markets: capital city banks of Italy raise capital."),
         "g6": ("The Loire", "The Loire is the longest river in France, flowing 1,006 km to the Atlantic."),
         "g7": ("Rivers of France", "France has rivers; river boats in France. River, river, France."),
         "g8": ("Lisbon", "Lisbon, on the Atlantic coast, is where Portugal's government sits.")},
        {"q1": ("capital of France", {"g1": 2}),
         "q2": ("what is the capital city of Italy", {"g4": 2}),
         "q3": ("longest river in France", {"g6": 2}),
         "q4": ("capital of Portugal", {"g8": 2})},
    ),
    "robust-tiny-health": (
        {"h1": ("Exercise and hypertension", "Regular aerobic exercise lowers blood pressure in adults with "
                                             "hypertension."),
         "h2": ("Pressure gauges", "High pressure gauges: how to reduce pressure in a high pressure tyre."),
         "h3": ("Vitamin D", "Vitamin D deficiency is common in northern countries during winter."),
         "h4": ("Vaccines", "Vaccines train the immune system to recognise a virus before an infection."),
         "h5": ("Bike tyres", "A bike tyre loses air slowly; check it weekly."),
         "h6": ("Sleep loss", "Sleep deprivation impairs memory consolidation in the hippocampus."),
         "h7": ("Smoking", "Tobacco smoking is the main cause of lung cancer."),
         "h8": ("Lung cancer cells", "Lung cancer cancer cells: what a lung cancer cell looks like under a lens.")},
        {"q1": ("does exercise reduce high blood pressure", {"h1": 2}),
         "q2": ("what causes lung cancer", {"h7": 2}),
         "q3": ("how does lack of sleep affect memory", {"h6": 2}),
         "q4": ("how do vaccines work", {"h4": 2})},
    ),
}


def write_collection(root: Path, docs: dict, queries: dict) -> Path:
    (root / "qrels").mkdir(parents=True)
    with (root / "corpus.jsonl").open("w") as fh:
        for doc_id, (title, text) in docs.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w") as fh:
        for qid, (text, _) in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with (root / "qrels" / "test.tsv").open("w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, (_, judged) in queries.items():
            for doc_id, grade in judged.items():
                fh.write(f"{qid}\t{doc_id}\t{grade}\n")
    return root


def run_suite(opensearch_url: str, roots: list[Path], cache: Path, out: Path, *extra: str):
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "robustness", "--url", opensearch_url,
         "--datasets", ",".join(map(str, roots)), "--cache", str(cache), "--out", str(out), *extra],
        capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def suite(opensearch_url, tmp_path_factory):
    base = tmp_path_factory.mktemp("robustness")
    roots = [write_collection(base / name, *spec) for name, spec in COLLECTIONS.items()]
    first = run_suite(opensearch_url, roots, base / "cache", base / "first.json")
    assert first.returncode == 0, first.stderr[-3000:]
    return base, roots, first


def test_every_stage_and_fusion_is_measured_on_every_collection(suite):
    base, _, first = suite
    report = json.loads((base / "first.json").read_text())
    assert set(report["results"]) == set(COLLECTIONS)
    for name, result in report["results"].items():
        rows = result["rows"]
        for stage in ("bm25", "knn", "hybrid", "hybrid-zscore-5", "hybrid-rrf60"):
            assert stage in rows, (name, stage)
        for stage in ("bm25", "knn", "hybrid"):
            for config in fusion_grid():
                assert f"{stage}+rerank:{config.name}" in rows
        for mode, row in rows.items():
            assert 0.0 <= row["NDCG@10"] <= 1.0 and 0.0 <= row["p"] <= 1.0, mode
            assert row["helped"] + row["hurt"] <= result["queries"] == 4
        best = result["best_first_stage"]
        assert rows[best]["p"] == 1.0 and rows[best]["helped"] == rows[best]["hurt"] == 0
    # Two collections: each held-out one gets a choice made on the other one.
    assert set(report["choices"]["rerank"]) == set(COLLECTIONS)
    assert "leave-one-collection-out" in first.stdout and "robust-tiny-geo" in first.stdout


def test_the_model_beats_bm25_where_bm25_is_lured_by_repeated_words(suite):
    base, _, _ = suite
    report = json.loads((base / "first.json").read_text())
    for name, result in report["results"].items():
        rows = result["rows"]
        assert rows["bm25+rerank:replace"]["NDCG@10"] > rows["bm25"]["NDCG@10"] + 0.1, name
        assert rows["bm25+rerank:calibrated(0.5/0.5,k=20,T=1)"]["MRR@10"] >= rows["bm25"]["MRR@10"], name


def test_cached_model_scores_are_the_sidecars_scores(suite, sidecar_url):
    base, roots, _ = suite
    name = roots[0].name
    scores = json.loads(next((base / "cache" / name).glob("scores-*.json")).read_text())
    corpus = {json.loads(line)["_id"]: json.loads(line) for line in (roots[0] / "corpus.jsonl").open()}
    query, _ = COLLECTIONS[name][1]["q1"]
    ids = sorted(scores["q1"])
    hits = [{"_id": d, "_score": 1.0, "_source": {"title": corpus[d]["title"], "text": corpus[d]["text"]}}
            for d in ids]
    out = requests.post(f"{sidecar_url}/v1/rescore", json={"query": query, "hits": hits}, timeout=120).json()
    served = {hit["_id"]: hit["_rerank_score"] for hit in out["hits"]}
    # INT8 dynamic ranges are per batch: a pair scored in another batch may differ by ~0.3 logits.
    assert all(abs(served[d] - scores["q1"][d]) < 0.35 for d in ids), (served, scores["q1"])


def test_a_second_run_reuses_runs_and_scores_without_the_model(suite, opensearch_url):
    base, roots, _ = suite
    cache = base / "cache"
    before = {p: p.read_bytes() for p in cache.rglob("*.json")}
    again = run_suite(opensearch_url, roots, cache, base / "second.json")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "robustness_model" in suite[2].stderr, "the first run logs the model it loads"
    assert "robustness_model" not in again.stderr, "the model was loaded although every score was cached"
    after = {p: p.read_bytes() for p in cache.rglob("*.json")}
    assert after == before
    first = json.loads((base / "first.json").read_text())
    second = json.loads((base / "second.json").read_text())
    assert second["results"] == first["results"] and second["choices"] == first["choices"]


def test_cached_only_needs_no_engine_when_everything_is_cached(suite):
    # Every list and every score is on disk: --cached-only evaluates them with no engine behind --url.
    base, roots, _ = suite
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens there
    again = run_suite(dead, roots, base / "cache", base / "offline.json", "--cached-only")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "engine_node_down" not in again.stderr and "robustness_model" not in again.stderr, again.stderr[-3000:]
    first = json.loads((base / "first.json").read_text())
    offline = json.loads((base / "offline.json").read_text())
    assert offline["results"] == first["results"] and offline["choices"] == first["choices"]


def test_cached_only_evaluates_the_queries_a_shorter_run_listed(suite):
    # A run with --max-queries 2 leaves lists and scores for two queries; --cached-only on all of
    # them evaluates those two and asks no engine for the lists of the others.
    import shutil

    base, roots, _ = suite
    partial = base / "partial-cache"
    shutil.copytree(base / "cache", partial)
    name = roots[0].name
    for path in (partial / name).rglob("*.json"):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "q1" in data:
            path.write_text(json.dumps({q: v for q, v in data.items() if q in ("q1", "q2")}))
    again = run_suite("http://127.0.0.1:9", roots, partial, base / "partial.json", "--cached-only")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "engine_node_down" not in again.stderr, again.stderr[-3000:]
    results = json.loads((base / "partial.json").read_text())["results"]
    assert results[name]["queries"] == 2 and results[roots[1].name]["queries"] == 4


def test_runs_made_elsewhere_are_rows_tested_against_the_best_first_stage(suite):
    # --runs DIR/<collection>/<mode>.json (evaluate.py --runs-out lists, e.g. passage modes) become rows
    # 'evaluate:<mode>' with the same metrics, helped/hurt and paired test as the suite's own rows.
    from sidecar.experiments.evaluation import evaluate_run, load_dataset

    base, roots, _ = suite
    first = json.loads((base / "first.json").read_text())
    runs = base / "external"
    name = roots[0].name
    bm25 = {q: [d for d, _ in hits] for q, hits in json.loads((base / "cache" / name / "runs" / "bm25.json")
                                                                    .read_text()).items()}
    (runs / name).mkdir(parents=True)
    (runs / name / "bm25-copy.json").write_text(json.dumps(bm25))
    flipped = {q: docs[::-1] for q, docs in bm25.items()}
    (runs / name / "flipped.json").write_text(json.dumps(flipped))
    judged = {q: judgments for q, (_, judgments) in COLLECTIONS[name][1].items()}
    oracle = {q: [*judged[q], *(d for d in docs if d not in judged[q])] for q, docs in bm25.items()}
    (runs / name / "oracle.json").write_text(json.dumps(oracle))
    again = run_suite("http://127.0.0.1:9", roots, base / "cache", base / "external.json", "--cached-only",
                      "--runs", str(runs))
    assert again.returncode == 0, again.stderr[-3000:]
    report = json.loads((base / "external.json").read_text())["results"]
    rows, best = report[name]["rows"], report[name]["best_first_stage"]
    assert rows["evaluate:bm25-copy"] == first["results"][name]["rows"]["bm25"]
    expected = evaluate_run(load_dataset(roots[0]), flipped)
    assert rows["evaluate:flipped"]["NDCG@10"] == pytest.approx(expected["NDCG@10"])
    assert rows["evaluate:oracle"]["NDCG@10"] == pytest.approx(1.0) and rows["evaluate:oracle"]["hurt"] == 0
    assert rows["evaluate:oracle"]["delta"] == pytest.approx(1.0 - rows[best]["NDCG@10"])
    assert rows["evaluate:oracle"]["helped"] >= 1, "the best first stage is not perfect on these collections"
    assert "evaluate:flipped" in again.stdout
    assert not any(m.startswith("evaluate:") for m in report[roots[1].name]["rows"]), \
        "a collection without a folder gets no rows"

    (runs / name / "short.json").write_text(json.dumps({"q1": bm25["q1"]}))
    short = run_suite("http://127.0.0.1:9", roots, base / "cache", base / "short.json", "--cached-only",
                      "--runs", str(runs))
    assert short.returncode == 2 and "--runs" in short.stderr and "short.json" in short.stderr, short.stderr[-2000:]
