import pytest

from sidecar.api.errors import ValidationFailed
from sidecar.search.syntax import RerankDefaults, plan_search, wants_rerank

D = RerankDefaults()


def test_plain_body_has_no_rerank():
    plan = plan_search({"query": {"match_all": {}}}, D)
    assert plan.rerank is None and plan.body == {"query": {"match_all": {}}}


def test_opensearch_ext_rerank_with_query_text_and_our_keys():
    body = {"query": {"match": {"text": "q"}}, "size": 5,
            "ext": {"rerank": {"query_context": {"query_text": "hello"}, "window_size": 20, "fusion": "rrf",
                               "fields": ["body"], "instruction": "Find docs", "min_score": 0.1,
                               "timeout_ms": 500, "weights": [0.2, 0.8]}, "other": {"x": 1}}}
    plan = plan_search(body, D)
    spec = plan.rerank
    assert spec.query_text == "hello" and spec.window_size == 20 and spec.fusion == "rrf"
    assert spec.fields == ("body",) and spec.instruction == "Find docs" and spec.min_score == 0.1
    assert spec.timeout_ms == 500 and spec.weights == (0.2, 0.8) and spec.syntax == "opensearch"
    assert plan.body == {"query": {"match": {"text": "q"}}, "size": 5, "ext": {"other": {"x": 1}}}
    assert "rerank" in body["ext"], "the caller's body must not be mutated"


def test_query_text_path_resolves_into_the_request():
    body = {"query": {"match": {"text": {"query": "from the query"}}},
            "ext": {"rerank": {"query_context": {"query_text_path": "query.match.text.query"}}}}
    assert plan_search(body, D).rerank.query_text == "from the query"
    body["ext"]["rerank"]["query_context"]["query_text_path"] = "query.match.text"
    assert plan_search(body, D).rerank.query_text == "from the query"
    assert "ext" not in plan_search(body, D).body


def test_es_rescore_rerank_entry_is_removed_and_others_kept():
    body = {"query": {"match": {"text": "q"}}, "rescore": [
        {"window_size": 10, "query": {"rescore_query": {"match": {"title": "q"}}}},
        {"window_size": 30, "rerank": {"query_text": "q", "fields": ["text"]}}]}
    plan = plan_search(body, D)
    assert plan.rerank.window_size == 30 and plan.rerank.fields == ("text",) and plan.rerank.syntax == "es-rescore"
    assert plan.body["rescore"] == [{"window_size": 10, "query": {"rescore_query": {"match": {"title": "q"}}}}]
    single = plan_search({"rescore": {"window_size": 7, "rerank": {"query_text": "z"}}}, D)
    assert single.rerank.window_size == 7 and "rescore" not in single.body


def test_es_text_similarity_reranker_retriever_translates_to_a_query():
    body = {"retriever": {"text_similarity_reranker": {
        "retriever": {"standard": {"query": {"match": {"text": "q"}}, "filter": {"term": {"lang": "en"}}}},
        "field": "text", "inference_text": "what is q", "rank_window_size": 25, "min_score": 0.5,
        "inference_id": "default"}}, "size": 3}
    plan = plan_search(body, D)
    assert plan.body == {"size": 3, "query": {"bool": {"must": [{"match": {"text": "q"}}],
                                                       "filter": [{"term": {"lang": "en"}}]}}}
    spec = plan.rerank
    assert (spec.query_text, spec.window_size, spec.fields, spec.min_score, spec.syntax) == \
        ("what is q", 25, ("text",), 0.5, "es-retriever")


def test_knn_and_rrf_retrievers_translate():
    knn = {"retriever": {"knn": {"field": "embedding", "query_vector": [0.1, 0.2], "k": 5, "num_candidates": 50}}}
    plan = plan_search(knn, D)
    assert plan.body["query"] == {"knn": {"embedding": {"vector": [0.1, 0.2], "k": 5}}} and plan.rerank is None
    rrf = {"retriever": {"rrf": {"retrievers": [{"standard": {"query": {"match": {"text": "q"}}}}, knn["retriever"]]}}}
    plan = plan_search(rrf, D)
    assert "hybrid" in plan.body["query"] and plan.params == {"search_pipeline": "rescore-hybrid-rrf"}


@pytest.mark.parametrize("body, field", [
    ({"ext": {"rerank": {}}}, "ext.rerank.query_context.query_text"),
    ({"ext": {"rerank": "yes"}}, "ext.rerank"),
    ({"ext": {"rerank": {"query_context": {"query_text": ""}}}}, "ext.rerank.query_text"),
    ({"ext": {"rerank": {"query_context": {"query_text": "q"}, "window_size": 0}}}, "ext.rerank.window_size"),
    ({"ext": {"rerank": {"query_context": {"query_text": "q"}, "window_size": "50"}}}, "ext.rerank.window_size"),
    ({"ext": {"rerank": {"query_context": {"query_text": "q"}, "window_size": 5000}}}, "ext.rerank.window_size"),
    ({"ext": {"rerank": {"query_context": {"query_text": "q"}, "fusion": "max"}}}, "ext.rerank.fusion"),
    ({"ext": {"rerank": {"query_context": {"query_text": "q"}, "weights": [1]}}}, "ext.rerank.weights"),
    ({"ext": {"rerank": {"query_context": {"query_text": "q"}, "weights": [-1, 2]}}}, "ext.rerank.weights"),
    ({"ext": {"rerank": {"query_context": {"query_text": "q"}, "fields": []}}}, "ext.rerank.fields"),
    ({"ext": {"rerank": {"query_context": {"query_text": "q"}, "min_score": "high"}}}, "ext.rerank.min_score"),
    ({"ext": {"rerank": {"query_context": {"query_text": "q"}, "timeout_ms": 0}}}, "ext.rerank.timeout_ms"),
    ({"ext": {"rerank": {"query_context": {"query_text": "q"}, "timeout_ms": 300_001}}}, "ext.rerank.timeout_ms"),
    ({"ext": {"rerank": {"query_context": {"query_text": "q"}, "timeout_ms": 1e30}}}, "ext.rerank.timeout_ms"),
    ({"ext": {"rerank": {"query_context": {"query_text": "q"}, "timeout_ms": 10**30}}}, "ext.rerank.timeout_ms"),
    ({"ext": {"rerank": {"query_context": {"query_text": "lone \ud800"}}}}, "ext.rerank.query_text"),
    ({"ext": {"rerank": {"query_context": {"query_text": "q"}, "windw_size": 5}}}, "ext.rerank.windw_size"),
    ({"ext": {"rerank": {"query_context": {"query_text_path": "query.nope"}}}},
     "ext.rerank.query_context.query_text_path"),
    ({"rescore": {"rerank": {}}}, "rescore.rerank.query_text"),
    ({"rescore": [{"rerank": {"query_text": "a"}}, {"query": {}}]}, "rescore[0]"),
    ({"retriever": {"text_similarity_reranker": {"retriever": {"standard": {}}}}},
     "retriever.text_similarity_reranker.inference_text"),
    ({"retriever": {"linear": {}}}, "retriever.linear"),
])
def test_invalid_requests_name_the_field(body, field):
    with pytest.raises(ValidationFailed) as err:
        plan_search(body, D)
    assert err.value.field == field


def test_wants_rerank_detects_every_syntax():
    assert wants_rerank({"ext": {"rerank": {}}})
    assert wants_rerank({"rescore": {"rerank": {}}})
    assert wants_rerank({"rescore": [{"query": {}}, {"rerank": {}}]})
    assert wants_rerank({"retriever": {"text_similarity_reranker": {}}})
    assert not wants_rerank({"query": {"match": {"text": "rerank"}}})
    assert not wants_rerank(["not", "a", "dict"])


def test_explain_flag_is_carried():
    plan = plan_search({"explain": True, "ext": {"rerank": {"query_context": {"query_text": "q"}}}}, D)
    assert plan.rerank.explain is True


@pytest.mark.parametrize("timeout_ms", [1, 300_000])
def test_timeout_ms_range_ends_are_accepted(timeout_ms):
    plan = plan_search({"ext": {"rerank": {"query_context": {"query_text": "q"}, "timeout_ms": timeout_ms}}}, D)
    assert plan.rerank.timeout_ms == timeout_ms
