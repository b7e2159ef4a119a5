"""The engine layer on both engines: retrievers, errors, readiness, templates and install (real engines)."""
from __future__ import annotations

import pytest
import requests

from sidecar.api.errors import RerankFailed
from sidecar.engine import engine_for_client
from sidecar.search.flow import search_with_rerank
from sidecar.search.syntax import RerankDefaults, plan_search
from tests.conftest import BROAD_QUERY

pytestmark = pytest.mark.integration

QUERY = "how do solar panels produce electricity"
BROAD = {"query": BROAD_QUERY}


def ids(body: dict) -> list[str]:
    return [h["_id"] for h in body["hits"]["hits"]]


def post(base: str, path: str, body) -> requests.Response:
    return requests.post(base + path, json=body, timeout=120)


def test_engine_is_detected_and_the_sidecar_is_ready(engine_stack):
    assert engine_for_client(engine_stack.client).name == engine_stack.name
    ready = requests.get(f"{engine_stack.sidecar}/ready", timeout=30)
    assert ready.status_code == 200, ready.text


def test_knn_retriever_answers_like_the_engine(engine_stack, embedder):
    vector = embedder.embed_query("coffee extraction pressure")
    retriever = {"knn": {"field": "embedding", "query_vector": vector, "k": 5, "num_candidates": 20}}
    through = post(engine_stack.sidecar, f"/{engine_stack.index}/_search", {"retriever": retriever, "size": 5})
    assert through.status_code == 200, through.text
    assert ids(through.json())[0] == "espresso"
    reranked = post(engine_stack.sidecar, f"/{engine_stack.index}/_search", {"size": 5, "retriever": {
        "text_similarity_reranker": {"retriever": retriever, "field": "text",
                                     "inference_text": "coffee extraction pressure"}}})
    assert reranked.status_code == 200, reranked.text
    body = reranked.json()
    assert body["ext"]["rerank"]["status"] == "ok" and body["ext"]["rerank"]["window_size"] == 10
    assert ids(body)[0] == "espresso"


def test_retriever_error_keeps_the_engines_status(engine_stack):
    bad = {"retriever": {"standard": {"query": {"no_such_query": {}}}}}
    through = post(engine_stack.sidecar, f"/{engine_stack.index}/_search", bad)
    assert through.status_code == 400, through.text
    assert "no_such_query" in through.text
    missing = post(engine_stack.sidecar, "/no-such-index/_search", {"retriever": {"standard": {"query": {"match_all": {}}}}})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "index_not_found_exception"


def test_sort_with_rerank_is_a_400_like_the_engines(engine_stack):
    index = engine_stack.index
    direct = post(engine_stack.url, f"/{index}/_search", {
        **BROAD, "sort": [{"doc_id": "asc"}],
        "rescore": {"window_size": 5, "query": {"rescore_query": {"match": {"text": "solar"}}}}})
    through = post(engine_stack.sidecar, f"/{index}/_search", {
        **BROAD, "sort": [{"doc_id": "asc"}], "ext": {"rerank": {"query_context": {"query_text": QUERY}}}})
    assert direct.status_code == through.status_code == 400
    assert "Cannot use [sort] option in conjunction with [rescore]" in direct.text
    assert "Cannot use [sort] option in conjunction with [rescore]" in through.text
    assert through.json()["field"] == "sort"


@pytest.mark.parametrize("sort", [[{"_score": "desc"}], ["_score"], [{"_score": {"order": "desc"}}]])
def test_sort_by_score_alone_is_the_default_order_and_reranks(engine_stack, sort):
    """Both engines accept a rescore under a sort by descending _score only (Dashboards sends one)."""
    index = engine_stack.index
    direct = post(engine_stack.url, f"/{index}/_search", {
        **BROAD, "sort": sort, "rescore": {"window_size": 5, "query": {"rescore_query": {"match": {"text": "solar"}}}}})
    through = post(engine_stack.sidecar, f"/{index}/_search", {
        **BROAD, "sort": sort, "ext": {"rerank": {"query_context": {"query_text": QUERY}, "window_size": 5}}})
    assert direct.status_code == through.status_code == 200, through.text
    assert through.json()["ext"]["rerank"]["status"] == "ok"


def test_reranker_filter_and_name_are_kept(engine_stack):
    body = {"size": 10, "retriever": {"text_similarity_reranker": {
        "retriever": {"standard": BROAD}, "field": "text", "inference_text": QUERY, "_name": "rr",
        "filter": {"term": {"doc_id": "solar"}}}}}
    out = post(engine_stack.sidecar, f"/{engine_stack.index}/_search", body)
    assert out.status_code == 200, out.text
    assert ids(out.json()) == ["solar"] and out.json()["ext"]["rerank"]["name"] == "rr"


@pytest.mark.parametrize("allow", [False, True])
def test_allow_rerank_failures(engine_stack, allow):
    """A reranker that fails: the search fails (false, Elasticsearch's default) or keeps first-stage order."""
    def broken():
        raise RuntimeError("model unavailable")

    body = {"size": 5, "retriever": {"text_similarity_reranker": {
        "retriever": {"standard": BROAD}, "field": "text", "inference_text": QUERY,
        "allow_rerank_failures": allow}}}
    engine = engine_for_client(engine_stack.client)
    plan = plan_search(body, RerankDefaults(), engine)
    first = engine_stack.client.search(index=engine_stack.index, body={**plan.body, "size": 10}, params=plan.params)
    if not allow:
        with pytest.raises(RerankFailed) as failed:
            search_with_rerank(engine_stack.client, broken, engine_stack.index, plan.body, plan.rerank, plan.params)
        assert failed.value.status == 500 and failed.value.to_dict()["rerank"]["status"] == "error"
        return
    out = search_with_rerank(engine_stack.client, broken, engine_stack.index, plan.body, plan.rerank, plan.params)
    assert out["ext"]["rerank"]["status"] == "error"
    assert ids(out) == ids(first)[:5]


def test_vector_template_embeds_query_text_or_names_the_parameter(engine_stack):
    missing = post(engine_stack.sidecar, f"/{engine_stack.index}/_search/template",
                   {"id": "rescore-knn", "params": {"size": 3}})
    assert missing.status_code == 400 and missing.json()["field"] == "params.query_vector"
    engine_stack.require("lang-mustache")
    out = post(engine_stack.sidecar, f"/{engine_stack.index}/_search/template",
               {"id": "rescore-knn", "params": {"query_text": "coffee extraction pressure", "size": 3}})
    assert out.status_code == 200, out.text
    assert ids(out.json())[0] == "espresso"


def test_install_reports_what_the_engine_refused(engine_stack, embedder):
    from sidecar.search.templates import install

    report = install(engine_stack.client, None)
    assert report.engine == engine_stack.name
    mapping = engine_stack.client.indices.get_mapping(index=engine_stack.index)[engine_stack.index]
    assert mapping["mappings"]["properties"]["embedding"]["type"] in ("knn_vector", "dense_vector")
    if "lang-mustache" in engine_stack.modules:
        assert not report.failed and "rescore-knn" in report.templates
    else:
        assert "rescore-knn" in report.failed and not report.templates
        assert all("mustache" in reason for reason in report.failed.values()), report.failed


def test_reranker_below_the_root_is_served(engine_stack):
    """A text_similarity_reranker inside another one's retriever: the inner one is reranked first."""
    inner = {"text_similarity_reranker": {"retriever": {"standard": BROAD}, "field": "text",
                                          "inference_text": QUERY, "rank_window_size": 20, "_name": "inner"}}
    body = {"size": 5, "retriever": {"text_similarity_reranker": {
        "retriever": inner, "field": "text", "inference_text": "coffee extraction pressure", "rank_window_size": 20,
        "fusion": "replace"}}}
    out = post(engine_stack.sidecar, f"/{engine_stack.index}/_search", body)
    assert out.status_code == 200, out.text
    ext = out.json()["ext"]["rerank"]
    assert ext["status"] == "ok" and ext["window"] == 20
    assert ext["nested"] == [{"path": "retriever.text_similarity_reranker.retriever", "status": "ok",
                              "window": 20, "name": "inner"}]
    assert ids(out.json())[0] == "espresso"
    alone = post(engine_stack.sidecar, f"/{engine_stack.index}/_search", {"size": 20, "retriever": inner}).json()
    # The outer reranker saw exactly the inner one's window.
    assert len(ids(alone)) == 20 and "espresso" in ids(alone)
