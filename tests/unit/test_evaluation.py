import json
import math

import pytest

from sidecar.experiments.evaluation import compare, evaluate_run, format_table, load_dataset


@pytest.fixture
def dataset(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": q, "text": t}) for q, t in [("1", "one"), ("2", "two"), ("3", "unjudged")]))
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\ta\t2\n1\tb\t1\n2\tc\t1\n")
    return load_dataset(tmp_path)


def test_load_dataset(dataset):
    assert dataset.judged_queries() == {"1": "one", "2": "two"}
    assert dataset.qrels["1"] == {"a": 2, "b": 1}


def test_metrics_match_hand_computation(dataset):
    run = {"1": ["a", "x", "b"], "2": ["z", "c"]}
    metrics = evaluate_run(dataset, run)
    # trec_eval nDCG (linear gain): q1 DCG = 2/log2(2) + 1/log2(4) = 2.5, IDCG = 2 + 1/log2(3)
    q1 = 2.5 / (2 + 1 / math.log2(3))
    # q2: relevant at rank 2: DCG = 1/log2(3), IDCG = 1
    q2 = 1 / math.log2(3)
    assert metrics["NDCG@10"] == pytest.approx((q1 + q2) / 2)
    assert metrics["MRR@10"] == pytest.approx((1 + 0.5) / 2)
    assert metrics["Recall@100"] == pytest.approx(1.0)


def test_order_is_taken_from_the_list_not_ties(dataset):
    assert evaluate_run(dataset, {"1": ["b", "a"], "2": []})["MRR@10"] == pytest.approx(0.5)


def test_query_without_hits_counts_as_zero(dataset):
    metrics = evaluate_run(dataset, {"1": ["a", "b"], "2": []})
    assert metrics["MRR@10"] == pytest.approx(0.5)


def test_compare_counts_helped_and_hurt(dataset):
    base = {"1": ["x", "a"], "2": ["c"]}
    other = {"1": ["a", "x"], "2": ["z", "c"]}
    assert compare(dataset, base, other) == (1, 1, 0)


def test_format_table_lists_modes():
    table = format_table({"bm25": {"NDCG@10": 0.5, "MRR@10": 0.4, "Recall@100": 0.9}}, title="t")
    assert "bm25" in table and "0.5000" in table and table.startswith("t\n")


def test_compare_counts_only_the_queries_that_were_run(dataset):
    # Query 2 is judged but not run (e.g. --max-queries): it is neither helped, hurt nor unchanged.
    assert compare(dataset, {"1": ["x", "a"]}, {"1": ["a", "x"]}) == (1, 0, 0)
