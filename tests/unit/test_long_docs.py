"""The long-document collection builder (scripts/build_long_docs.py)."""
from __future__ import annotations

import json

from sidecar.experiments.evaluation import load_dataset
from sidecar.experiments.long_docs import SEPARATOR, build, build_dir

CORPUS = [{"_id": str(i), "title": f"T{i}", "text": f"text {i}"} for i in range(10)]
QRELS = {"q1": {"3": 1, "4": 2, "9": 0}, "q2": {"7": 1}, "q3": {"missing": 1}}


def test_every_original_lands_in_exactly_one_long_document_in_seeded_order():
    built = build(CORPUS, QRELS, docs_per_long=4, seed=1)
    parts = [p for doc in built.docs for p in doc["parts"]]
    assert sorted(parts, key=int) == [d["_id"] for d in CORPUS] and len(built.docs) == 3
    assert [len(d["parts"]) for d in built.docs] == [4, 4, 2]
    assert parts != [d["_id"] for d in CORPUS], "shuffled, so relevant originals are not always first"
    assert build(CORPUS, QRELS, docs_per_long=4, seed=1) == built, "deterministic for a seed"
    for doc in built.docs:
        assert doc["text"] == SEPARATOR.join(f"T{p}\ntext {p}" for p in doc["parts"])


def test_qrels_map_to_the_long_document_with_the_highest_grade():
    built = build(CORPUS, QRELS, docs_per_long=10, seed=0)
    assert built.qrels == {"q1": {"L00000": 2}, "q2": {"L00000": 1}}, "grade 0 and unknown ids dropped"
    assert sum(built.relevant_positions.values()) == 3
    split = build(CORPUS, QRELS, docs_per_long=1, seed=0)
    owner = {d["parts"][0]: d["_id"] for d in split.docs}
    assert split.qrels["q1"] == {owner["3"]: 1, owner["4"]: 2}


def test_build_dir_writes_a_beir_layout_that_loads(tmp_path):
    source = tmp_path / "src"
    (source / "qrels").mkdir(parents=True)
    (source / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in CORPUS))
    (source / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "query"}) + "\n")
    (source / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\t3\t1\nq1\t4\t2\n")
    build_dir(source, tmp_path / "out", docs_per_long=3, seed=0)
    dataset = load_dataset(tmp_path / "out")
    assert dataset.queries == {"q1": "query"} and list(dataset.qrels["q1"].values()) in ([2], [1, 2], [2, 1])
    assert sum(1 for _ in (tmp_path / "out" / "corpus.jsonl").open()) == 4
