"""Reranking through the sidecar's ES/OpenSearch-compatible endpoints, real OpenSearch and model."""
import json

import pytest
import requests
from opensearchpy import OpenSearch

from tests.conftest import BROAD_QUERY

pytestmark = pytest.mark.integration

QUERY = "how do solar panels produce electricity"
BROAD = {"query": BROAD_QUERY}


def ids(body: dict) -> list[str]:
    return [h["_id"] for h in body["hits"]["hits"]]


def post(base: str, path: str, body, **kwargs) -> requests.Response:
    return requests.post(base + path, json=body, timeout=120, **kwargs)


def ext_body(query_text=QUERY, size=10, **options):
    return {**BROAD, "size": size,
            "ext": {"rerank": {"query_context": {"query_text": query_text}, "fusion": "replace", **options}}}


def test_ext_rerank_reorders_the_window_by_model_score(engine_stack):
    sidecar_url, opensearch_url, demo_index = engine_stack.sidecar, engine_stack.url, engine_stack.index
    direct = post(opensearch_url, f"/{demo_index}/_search", {**BROAD, "size": 30}).json()
    reranked = post(sidecar_url, f"/{demo_index}/_search", ext_body(window_size=30, size=30)).json()
    assert reranked["ext"]["rerank"]["status"] == "ok"
    assert reranked["ext"]["rerank"]["window"] == len(ids(direct)) > 20
    assert sorted(ids(reranked)) == sorted(ids(direct)), "same hits, new order"
    assert ids(reranked)[0] == "solar"
    scores = [h["_score"] for h in reranked["hits"]["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert ids(reranked) != ids(direct)


def test_three_syntaxes_rerank_the_same_way(engine_stack):
    sidecar_url, demo_index = engine_stack.sidecar, engine_stack.index
    opensearch_syntax = post(sidecar_url, f"/{demo_index}/_search", ext_body(window_size=15, size=8)).json()
    es_rescore = post(sidecar_url, f"/{demo_index}/_search", {
        **BROAD, "size": 8,
        "rescore": {"window_size": 15, "rerank": {"query_text": QUERY, "fusion": "replace"}}}).json()
    es_retriever = post(sidecar_url, f"/{demo_index}/_search", {
        "size": 8, "retriever": {"text_similarity_reranker": {
            "retriever": {"standard": BROAD}, "inference_text": QUERY, "rank_window_size": 15,
            "fusion": "replace"}}}).json()
    assert ids(opensearch_syntax) == ids(es_rescore) == ids(es_retriever)
    for body in (opensearch_syntax, es_rescore, es_retriever):
        assert body["ext"]["rerank"]["status"] == "ok"


def test_hits_beyond_the_window_keep_first_stage_order(engine_stack):
    sidecar_url, opensearch_url, demo_index = engine_stack.sidecar, engine_stack.url, engine_stack.index
    direct = ids(post(opensearch_url, f"/{demo_index}/_search", {**BROAD, "size": 20}).json())
    reranked = ids(post(sidecar_url, f"/{demo_index}/_search", ext_body(window_size=5, size=20)).json())
    assert sorted(reranked[:5]) == sorted(direct[:5])
    assert reranked[5:] == direct[5:]


def test_pages_concatenate_to_the_reranked_list(engine_stack):
    sidecar_url, demo_index = engine_stack.sidecar, engine_stack.index
    total = 14
    full = ids(post(sidecar_url, f"/{demo_index}/_search", ext_body(window_size=10, size=total)).json())
    pages = []
    for start in range(0, total, 3):
        body = ext_body(window_size=10, size=3)
        body["from"] = start
        pages += ids(post(sidecar_url, f"/{demo_index}/_search", body).json())
    assert pages[:total] == full
    assert len(set(pages)) == len(pages)


def test_query_string_size_and_from_are_honoured(engine_stack):
    sidecar_url, demo_index = engine_stack.sidecar, engine_stack.index
    full = ids(post(sidecar_url, f"/{demo_index}/_search", ext_body(window_size=10, size=6)).json())
    page = ids(post(sidecar_url, f"/{demo_index}/_search?size=2&from=2", ext_body(window_size=10)).json())
    assert page == full[2:4]


def test_explain_shows_first_stage_rerank_and_fusion(engine_stack):
    sidecar_url, demo_index = engine_stack.sidecar, engine_stack.index
    body = ext_body(window_size=5, size=3)
    body["explain"] = True
    body["ext"]["rerank"]["fusion"] = "linear"
    hit = post(sidecar_url, f"/{demo_index}/_search", body).json()["hits"]["hits"][0]
    explanation = hit["_explanation"]
    assert explanation["value"] == hit["_score"]
    assert explanation["description"].startswith("rerank fusion=linear")
    first, rerank = explanation["details"]
    assert first["description"] == "first-stage score" and first["details"], "OpenSearch's own explanation kept"
    assert rerank["description"].startswith("rerank score")


def test_linear_fusion_scores_are_in_unit_interval(engine_stack):
    sidecar_url, demo_index = engine_stack.sidecar, engine_stack.index
    body = ext_body(window_size=10)
    body["ext"]["rerank"]["fusion"] = "linear"
    hits = post(sidecar_url, f"/{demo_index}/_search", body).json()["hits"]["hits"]
    assert all(0.0 <= h["_score"] <= 1.0 for h in hits)


def test_min_score_drops_low_scoring_window_hits(engine_stack):
    sidecar_url, opensearch_url, demo_index = engine_stack.sidecar, engine_stack.url, engine_stack.index
    direct = ids(post(opensearch_url, f"/{demo_index}/_search", {**BROAD, "size": 30}).json())
    everything = post(sidecar_url, f"/{demo_index}/_search", ext_body(window_size=10)).json()
    strict = post(sidecar_url, f"/{demo_index}/_search", ext_body(window_size=10, min_score=0.0)).json()
    kept = [h["_id"] for h in everything["hits"]["hits"] if h["_score"] >= 0.0]
    # Dropped window hits make room: the page fills up with hits beyond the window, in first-stage order.
    assert ids(strict) == (kept + direct[10:])[:10]
    assert strict["ext"]["rerank"]["min_score_removed"] == 10 - len(kept)


def test_forced_deadline_falls_back_to_first_stage_order(engine_stack):
    sidecar_url, opensearch_url, demo_index = engine_stack.sidecar, engine_stack.url, engine_stack.index
    direct = ids(post(opensearch_url, f"/{demo_index}/_search", {**BROAD, "size": 30}).json())
    body = ext_body(query_text="a query nobody asked before: deadline test 7d1e", window_size=30, size=30,
                    timeout_ms=1)
    response = post(sidecar_url, f"/{demo_index}/_search", body).json()
    assert response["ext"]["rerank"]["status"] in ("timeout", "partial")
    got = ids(response)
    assert sorted(got) == sorted(direct), "nothing lost or duplicated"
    assert response["ext"]["rerank"]["scored"] < 30


def test_source_filters_are_respected_while_reranking(engine_stack):
    sidecar_url, demo_index = engine_stack.sidecar, engine_stack.index
    body = ext_body(window_size=30, size=5)
    body["_source"] = False
    no_source = post(sidecar_url, f"/{demo_index}/_search", body).json()
    assert all("_source" not in h for h in no_source["hits"]["hits"])
    assert ids(no_source)[0] == "solar"
    body["_source"] = ["attributes.*"]
    attrs = post(sidecar_url, f"/{demo_index}/_search", body).json()
    assert attrs["hits"]["hits"][0]["_source"] == {"attributes": {"category": "energy"}}


def test_stored_template_param_switches_rerank_on(engine_stack):
    sidecar_url, demo_index = engine_stack.sidecar, engine_stack.index
    engine_stack.require("lang-mustache")
    params = {"query_text": "heat for houses from outside air", "size": 5}
    plain = post(sidecar_url, f"/{demo_index}/_search/template", {"id": "rescore-bm25", "params": params}).json()
    assert "ext" not in plain or "rerank" not in plain["ext"]
    reranked = post(sidecar_url, f"/{demo_index}/_search/template",
                    {"id": "rescore-bm25", "params": {**params, "rerank": True, "window_size": 10}}).json()
    assert reranked["ext"]["rerank"]["status"] == "ok" and reranked["ext"]["rerank"]["window"] <= 10
    assert ids(reranked)[0] == "heat-pump"


def test_inline_template_with_rerank_block(engine_stack):
    sidecar_url, demo_index = engine_stack.sidecar, engine_stack.index
    engine_stack.require("lang-mustache")
    source = json.dumps({"query": {"match": {"text": "{{q}}"}}, "size": 3,
                         "ext": {"rerank": {"query_context": {"query_text": "{{q}}"}, "fusion": "replace"}}})
    body = {"source": source, "params": {"q": "coffee extraction pressure"}}
    response = post(sidecar_url, f"/{demo_index}/_search/template", body).json()
    assert response["ext"]["rerank"]["status"] == "ok"
    assert ids(response)[0] == "espresso"


def test_hybrid_template_with_rerank_via_pipeline(engine_stack, embedder):
    sidecar_url, demo_index = engine_stack.sidecar, engine_stack.index
    engine_stack.require("lang-mustache")
    query = "my bike tire keeps going flat"
    params = {"query_text": query, "query_vector": embedder.embed_query(query), "size": 5, "rerank": True}
    response = post(sidecar_url, f"/{demo_index}/_search/template?search_pipeline=rescore-hybrid-minmax",
                    {"id": "rescore-hybrid", "params": params}).json()
    assert response["ext"]["rerank"]["status"] == "ok"
    assert ids(response)[0] == "bike-tyre"


def test_msearch_mixes_reranked_and_plain(engine_stack):
    sidecar_url, demo_index = engine_stack.sidecar, engine_stack.index
    lines = [{"index": demo_index}, ext_body(window_size=30, size=3),
             {"index": demo_index}, {"query": {"match": {"title": "marathon"}}, "size": 1}]
    data = "".join(json.dumps(x) + "\n" for x in lines)
    out = requests.post(f"{sidecar_url}/_msearch", data=data, timeout=60,
                        headers={"Content-Type": "application/x-ndjson"}).json()
    first, second = out["responses"]
    assert first["status"] == 200 and first["ext"]["rerank"]["status"] == "ok" and ids(first)[0] == "solar"
    assert second["status"] == 200 and ids(second) == ["marathon"]


def test_msearch_template_mixes_reranked_and_plain(engine_stack):
    sidecar_url, demo_index = engine_stack.sidecar, engine_stack.index
    engine_stack.require("lang-mustache")
    lines = [{"index": demo_index}, {"id": "rescore-bm25", "params": {"query_text": "marathon", "size": 2}},
             {"index": demo_index}, {"id": "rescore-bm25", "params": {"query_text": "coffee", "rerank": True}}]
    data = "".join(json.dumps(x) + "\n" for x in lines)
    out = requests.post(f"{sidecar_url}/_msearch/template", data=data, timeout=60,
                        headers={"Content-Type": "application/x-ndjson"}).json()
    plain, reranked = out["responses"]
    assert ids(plain)[0] == "marathon" and "ext" not in plain
    assert reranked["ext"]["rerank"]["status"] == "ok"


def test_opensearch_py_against_the_sidecar_gets_reranked_results(engine_stack):
    sidecar_url, demo_index = engine_stack.sidecar, engine_stack.index
    client = OpenSearch(hosts=[sidecar_url], timeout=60)
    result = client.search(index=demo_index, body=ext_body(window_size=30, size=3))
    assert result["ext"]["rerank"]["status"] == "ok" and result["hits"]["hits"][0]["_id"] == "solar"
    engine_stack.require("lang-mustache")
    result = client.search_template(index=demo_index, body={
        "id": "rescore-bm25", "params": {"query_text": "puppy sit treat", "rerank": True}})
    assert result["hits"]["hits"][0]["_id"] == "dog-training"


def test_errors_from_opensearch_pass_through_with_rerank(engine_stack):
    sidecar_url, opensearch_url = engine_stack.sidecar, engine_stack.url
    direct = post(opensearch_url, "/no-such-index/_search", BROAD)
    proxied = post(sidecar_url, "/no-such-index/_search", ext_body())
    assert proxied.status_code == direct.status_code == 404
    assert proxied.json()["error"]["type"] == direct.json()["error"]["type"]


def test_invalid_rerank_request_is_a_422_naming_the_field(engine_stack):
    sidecar_url, demo_index = engine_stack.sidecar, engine_stack.index
    response = post(sidecar_url, f"/{demo_index}/_search", ext_body(window_size=-1))
    assert response.status_code == 422
    assert response.json()["field"] == "ext.rerank.window_size"
    response = post(sidecar_url, f"/{demo_index}/_search", {**ext_body(), "search_after": [1]})
    assert response.status_code == 422 and response.json()["field"] == "search_after"


def test_default_fusion_reranks_a_two_hit_search_window_by_a_sure_model(sidecar_url, opensearch_url, demo_index):
    # Issue 12 item 6: min-max over two hits turned a near-tie of the first stage into 1 vs 0, which
    # tied the off-topic hit (model -11) with the relevant one (model +8) and kept the off-topic first.
    query = {"bool": {"should": [{"term": {"_id": {"value": "vaccines", "boost": 1.05}}},
                                 {"term": {"_id": {"value": "bike-tyre"}}}]}}
    direct = post(opensearch_url, f"/{demo_index}/_search", {"query": query}).json()
    assert ids(direct) == ["vaccines", "bike-tyre"]
    body = {"query": query, "ext": {"rerank": {"query_context": {"query_text": "how do I fix a flat bike tyre"}}}}
    reranked = post(sidecar_url, f"/{demo_index}/_search", body).json()
    assert reranked["ext"]["rerank"]["status"] == "ok" and reranked["ext"]["rerank"]["window"] == 2
    assert ids(reranked) == ["bike-tyre", "vaccines"]
    top, other = reranked["hits"]["hits"]
    assert top["_score"] > other["_score"] + 0.1, "a clear margin, not a tie broken by first-stage order"


def test_default_fusion_is_relative_to_the_top_first_stage_score(engine_stack):
    # The shipped default (README "Current figures and defaults"): each window hit gets
    # 0.3 * first-stage score / the window's top score + 0.7 * sigmoid(model logit / 8).
    from sidecar.search.fusion import sigmoid

    sidecar_url, demo_index = engine_stack.sidecar, engine_stack.index
    body = {**BROAD, "size": 10, "explain": True, "ext": {"rerank": {"query_context": {"query_text": QUERY},
                                                                      "window_size": 10}}}
    hits = post(sidecar_url, f"/{demo_index}/_search", body).json()["hits"]["hits"]
    assert len(hits) == 10
    explained = [h["_explanation"] for h in hits]
    assert {e["description"] for e in explained} == {"rerank fusion=relative, weights=[0.3, 0.7]"}
    first = [e["details"][0]["value"] for e in explained]
    logits = [e["details"][1]["value"] for e in explained]
    top = max(first)
    expected = [0.3 * f / top + 0.7 * sigmoid(x / 8) for f, x in zip(first, logits)]
    assert [h["_score"] for h in hits] == pytest.approx(expected, rel=1e-4)
    assert len({round(f / top, 3) for f in first}) > 3, "the first stage's gaps are in the score, not ranks"
