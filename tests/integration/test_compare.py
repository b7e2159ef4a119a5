"""POST /v1/compare against real OpenSearch and the real cross-encoder: one first stage, both lists."""
import pytest
import requests

from sidecar.engine import engine_for_client
from sidecar.search.first_stage import VECTOR_MODES, template_request
from sidecar.search.templates import MODES

pytestmark = pytest.mark.integration

QUERY = "repair flat bicycle tire"
REORDERED = "energy from the sun"  # a query whose hybrid top 10 the default fusion reorders (solar above photosynthesis)


def compare(sidecar_url: str, index: str, **body) -> requests.Response:
    body.setdefault("query", QUERY)
    return requests.post(f"{sidecar_url}/v1/compare", json={"index": index, **body}, timeout=120)


def direct_hits(os_client, embedder, index: str, mode: str, size: int, query: str = QUERY) -> list[dict]:
    vector = embedder.embed_query(query) if mode in VECTOR_MODES else None
    body, params = template_request(mode, query, engine=engine_for_client(os_client), size=size, query_vector=vector)
    return os_client.search_template(index=index, body=body, params=params)["hits"]["hits"]


def ids(rows: list[dict]) -> list[str]:
    return [row["id"] for row in rows]


# BM25 gets words that are in the corpus: QUERY shares none with "Fixing a punctured bike tyre".
@pytest.mark.parametrize("mode, query", [("bm25", "bike tyre chain oil"), ("knn", QUERY), ("hybrid", QUERY)])
def test_both_lists_come_from_one_first_stage(sidecar_url, os_client, embedder, demo_index, mode, query):
    response = compare(sidecar_url, demo_index, template=mode, query=query, size=8, window_size=8)
    assert response.status_code == 200, response.text
    data = response.json()
    direct = direct_hits(os_client, embedder, demo_index, mode, 8, query)
    assert ids(data["first_stage"]) == [h["_id"] for h in direct] and direct
    assert [r["score"] for r in data["first_stage"]] == pytest.approx([h["_score"] for h in direct], rel=1e-5)
    assert [r["rank"] for r in data["first_stage"]] == list(range(1, len(direct) + 1))
    assert sorted(ids(data["reranked"])) == sorted(ids(data["first_stage"])), "same window, new order"
    first_rank = {r["id"]: r["rank"] for r in data["first_stage"]}
    for rank, row in enumerate(data["reranked"], start=1):
        assert row["rank"] == rank
        assert row["first_stage_rank"] == first_rank[row["id"]]
        assert row["rank_change"] == row["first_stage_rank"] - rank
        assert isinstance(row["rerank_score"], float)
    if mode != "bm25":
        assert data["first_stage"][0]["id"] == "bike-tyre", "kNN finds the tyre without a shared word"
    scores = [r["score"] for r in data["reranked"]]
    assert scores == sorted(scores, reverse=True)
    assert data["rerank"]["status"] == "ok" and data["rerank"]["window"] == len(direct)
    timings = data["timings"]
    assert timings["first_stage_ms"] > 0 and timings["rerank_ms"] > 0
    assert (timings["embed_ms"] > 0) == (mode in VECTOR_MODES)
    assert timings["total_ms"] >= timings["embed_ms"] + timings["first_stage_ms"] + timings["rerank_ms"] - 0.3


def test_reranked_list_is_what_the_rescore_api_makes_of_the_same_hits(sidecar_url, os_client, embedder,
                                                                       demo_index):
    data = compare(sidecar_url, demo_index, template="hybrid", query=REORDERED, size=10, window_size=10).json()
    hits = direct_hits(os_client, embedder, demo_index, "hybrid", 10, REORDERED)
    rescored = requests.post(f"{sidecar_url}/v1/rescore",
                             json={"query": REORDERED, "hits": hits, "window_size": 10}, timeout=120).json()
    assert ids(data["reranked"]) == [h["_id"] for h in rescored["hits"]]
    assert [r["score"] for r in data["reranked"]] == pytest.approx([h["_score"] for h in rescored["hits"]])
    assert ids(data["reranked"]) != ids(data["first_stage"]), "this query is reordered by the model"
    assert any(r["rank_change"] > 0 for r in data["reranked"]) and any(r["rank_change"] < 0 for r in data["reranked"])


def test_hits_beyond_the_window_keep_first_stage_order(sidecar_url, demo_index):
    data = compare(sidecar_url, demo_index, template="hybrid", size=10, window_size=3).json()
    first, reranked = ids(data["first_stage"]), ids(data["reranked"])
    assert len(first) == 10 and data["rerank"]["window"] == 3
    assert sorted(reranked[:3]) == sorted(first[:3])
    assert reranked[3:] == first[3:]
    assert all(r["rank_change"] == 0 and r["rerank_score"] is None for r in data["reranked"][3:])


def test_window_larger_than_size_can_bring_in_new_hits(sidecar_url, demo_index):
    small = compare(sidecar_url, demo_index, template="hybrid", size=3, window_size=20).json()
    full = compare(sidecar_url, demo_index, template="hybrid", size=20, window_size=20).json()
    assert len(small["first_stage"]) == len(small["reranked"]) == 3
    assert ids(small["first_stage"]) == ids(full["first_stage"])[:3]
    assert ids(small["reranked"]) == ids(full["reranked"])[:3]
    assert all(1 <= r["first_stage_rank"] <= 20 for r in small["reranked"])


def test_no_hits_skips_the_reranker(sidecar_url, demo_index):
    data = compare(sidecar_url, demo_index, template="bm25", query="zzyzx qwvfj").json()
    assert data["first_stage"] == data["reranked"] == []
    assert data["rerank"]["status"] == "skipped"


def test_unknown_index_and_an_index_without_vectors_are_422_naming_index(sidecar_url, os_client):
    response = compare(sidecar_url, "no-such-index", template="bm25")
    assert response.status_code == 422 and response.json()["field"] == "index"
    os_client.index(index="compare-plain", id="1", body={"title": "Flat tire repair", "text": "patch the tube"},
                    refresh=True)
    try:
        assert compare(sidecar_url, "compare-plain", template="bm25", query="tire").json()["first_stage"]
        response = compare(sidecar_url, "compare-plain", template="knn")
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "index" and "rescore-knn" in response.json()["error"]
    finally:
        os_client.indices.delete(index="compare-plain")


def test_options_list_visible_indices_and_the_templates(sidecar_url, os_client, demo_index):
    options = requests.get(f"{sidecar_url}/v1/compare/options", timeout=30).json()
    names = [i["name"] for i in options["indices"]]
    assert demo_index in names and not any(n.startswith(".") for n in names)
    assert {"name": demo_index, "docs": 30} in options["indices"]
    assert options["templates"] == list(MODES)
    assert options["defaults"]["window_size"] == 50 and options["defaults"]["size"] == 10


@pytest.mark.parametrize("mode, missing", [("bm25", "script:rescore-bm25"),
                                           ("hybrid", "pipeline:rescore-hybrid-minmax")])
def test_a_template_missing_from_the_cluster_is_a_422_naming_template(sidecar_url, os_client, demo_index, mode,
                                                                       missing):
    from sidecar.search.templates import install

    kind, name = missing.split(":")
    if kind == "script":
        os_client.delete_script(id=name)
    else:
        os_client.transport.perform_request("DELETE", f"/_search/pipeline/{name}")
    try:
        response = compare(sidecar_url, demo_index, template=mode)
        assert response.status_code == 422, response.text
        error = response.json()
        assert error["field"] == "template" and name in error["error"] and "install_templates" in error["error"]
    finally:
        install(os_client)
    assert compare(sidecar_url, demo_index, template=mode).status_code == 200
