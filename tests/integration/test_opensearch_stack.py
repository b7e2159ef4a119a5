"""The assembled OpenSearch: modules, plugins, stored templates, kNN and hybrid on the demo corpus."""
import json

import pytest

from sidecar.search import first_stage
from sidecar.engine import ENGINES

pytestmark = pytest.mark.integration


def ids(response: dict) -> list[str]:
    return [hit["_id"] for hit in response["hits"]["hits"]]


def test_plugins_and_modules_are_loaded(os_client):
    plugins = {row["component"] for row in os_client.cat.plugins(format="json")}
    assert {"opensearch-job-scheduler", "opensearch-ml", "opensearch-knn", "opensearch-neural-search"} <= plugins
    nodes = os_client.nodes.info(metric="plugins")["nodes"]
    modules = {m["name"] for node in nodes.values() for m in node["modules"]}
    assert {"lang-mustache", "lang-painless"} <= modules


def test_every_stored_template_renders_to_the_expected_query(os_client, demo_index):
    vector = [0.0] * 384
    rendered = {}
    for template_id in ENGINES["opensearch"].search_templates():
        params = {"query_text": 'say "hi"', "size": 3, "query_vector": vector, "k": 7}
        out = os_client.transport.perform_request(
            "POST", "/_render/template", body={"id": template_id, "params": params})
        rendered[template_id] = out["template_output"]
    assert rendered["rescore-bm25"]["query"]["multi_match"]["query"] == 'say "hi"'
    assert rendered["rescore-bm25"]["size"] == 3 and rendered["rescore-bm25"]["from"] == 0
    # kNN: the best of the whole-document vector and the passage vectors (README "Passage vectors").
    whole, passages = rendered["rescore-knn"]["query"]["dis_max"]["queries"]
    assert whole["knn"]["embedding"]["k"] == 7 and len(whole["knn"]["embedding"]["vector"]) == 384
    assert passages["nested"]["path"] == "embedding_passages" and passages["nested"]["score_mode"] == "max"
    assert passages["nested"]["query"]["knn"]["embedding_passages.embedding"]["k"] == 7
    hybrid = rendered["rescore-hybrid"]["query"]["hybrid"]["queries"]
    assert hybrid[0]["multi_match"]["query"] == 'say "hi"' and hybrid[1]["dis_max"]["queries"] == [whole, passages]


def test_template_parameters_cannot_inject_query_structure(os_client, demo_index):
    hostile = '"}}, "match_all": {}, "x": {"y": "'
    out = os_client.transport.perform_request(
        "POST", "/_render/template", body={"id": "rescore-bm25", "params": {"query_text": hostile}})
    assert out["template_output"]["query"]["multi_match"]["query"] == hostile
    response = first_stage.search(os_client, demo_index, "bm25", hostile)
    assert response["hits"]["total"]["value"] == 0


def test_bm25_template_returns_the_matching_document(os_client, demo_index):
    response = first_stage.search(os_client, demo_index, "bm25", "sourdough starter yeast")
    assert ids(response)[0] == "bread-sourdough"


def test_knn_finds_a_paraphrase_that_bm25_misses(os_client, demo_index, embedder):
    query = "repair flat bicycle tire"
    bm25 = first_stage.search(os_client, demo_index, "bm25", query, size=10)
    assert "bike-tyre" not in ids(bm25)
    knn = first_stage.search(os_client, demo_index, "knn", query, embedder=embedder, size=3)
    assert ids(knn)[0] == "bike-tyre"


@pytest.mark.parametrize("mode", ["hybrid", "hybrid-rrf"])
def test_hybrid_returns_the_union_with_agreed_documents_first(os_client, demo_index, embedder, mode):
    # BM25 matches "oil" and "chain" literally; kNN adds the paraphrased tyre document.
    query = "bicycle chain oil puncture"
    bm25 = ids(first_stage.search(os_client, demo_index, "bm25", query, size=5))
    knn = ids(first_stage.search(os_client, demo_index, "knn", query, embedder=embedder, size=5))
    hybrid = ids(first_stage.search(os_client, demo_index, mode, query, embedder=embedder, size=10))
    assert set(bm25) | set(knn) <= set(hybrid) or len(set(bm25) | set(knn)) > 10
    assert len(hybrid) == len(set(hybrid))
    both = [d for d in hybrid if d in bm25 and d in knn]
    only_one = [d for d in hybrid if (d in bm25) != (d in knn)]
    assert both, "some document should be found by both retrievers"
    assert hybrid.index(both[0]) < min(hybrid.index(d) for d in only_one)


def test_hybrid_scores_are_normalized(os_client, demo_index, embedder):
    response = first_stage.search(os_client, demo_index, "hybrid", "solar electricity", embedder=embedder, size=10)
    scores = [hit["_score"] for hit in response["hits"]["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert 0.0 <= min(scores) and max(scores) <= 1.0


def test_painless_script_score_works(os_client, demo_index):
    match = {"match": {"text": "water"}}
    plain = os_client.search(index=demo_index, body={"query": match})["hits"]["hits"]
    body = {"query": {"script_score": {"query": match,
                                       "script": {"source": "_score * 2 + doc['doc_id'].size()"}}}}
    scripted = os_client.search(index=demo_index, body=body)["hits"]["hits"]
    assert len(plain) >= 2 and [h["_id"] for h in scripted] == [h["_id"] for h in plain]
    for a, b in zip(plain, scripted):
        assert b["_score"] == pytest.approx(2 * a["_score"] + 1, rel=1e-5)


def test_templates_are_installed_for_every_mode(os_client, demo_index):
    for template_id, _ in ENGINES["opensearch"].modes.values():
        script = os_client.get_script(id=template_id)
        assert script["found"] and script["script"]["lang"] == "mustache"
        assert "{{query_text}}" in script["script"]["source"]
    assert json.dumps(os_client.transport.perform_request("GET", "/_search/pipeline/rescore-hybrid-rrf"))
