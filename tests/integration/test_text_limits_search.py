"""RESCORE_MAX_TEXT_CHARS / RESCORE_TEXT_OVERFLOW in the search flow, with hits from the real OpenSearch."""
import pytest

from tests.api.test_text_limits import LIMIT, LONG, make_app

pytestmark = pytest.mark.integration

INDEX = "text-limits-test"


@pytest.fixture(scope="module")
def limits_index(os_client):
    if os_client.indices.exists(index=INDEX):
        os_client.indices.delete(index=INDEX)
    os_client.index(index=INDEX, id="a", body={"text": LONG, "rank": 2})
    os_client.index(index=INDEX, id="b", body={"text": "short", "rank": 1}, refresh=True)
    return INDEX


def _calls(app):
    return app.extensions["rescore"].reranker.calls


# Score = rank, so "a" (the long text) comes first; a sort would be refused next to a rerank, as the engines do.
SORTED = {"query": {"function_score": {"query": {"match_all": {}}, "field_value_factor": {"field": "rank"},
                                       "boost_mode": "replace"}}}


def test_search_flow_truncates_hit_texts_and_query(opensearch_url, limits_index):
    app = make_app("truncate", opensearch_url)
    body = {**SORTED, "ext": {"rerank": {"query_context": {"query_text": LONG}, "fields": ["text"]}}}
    response = app.test_client().post(f"/{limits_index}/_search", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["ext"]["rerank"]["truncated"] == 2
    assert _calls(app)[-1] == (LONG[:LIMIT], [LONG[:LIMIT], "short"])


def test_search_without_long_texts_reports_zero(opensearch_url, limits_index):
    app = make_app("truncate", opensearch_url)
    body = {**SORTED, "ext": {"rerank": {"query_context": {"query_text": "q"}, "fields": ["_id"]}}}
    response = app.test_client().post(f"/{limits_index}/_search", json=body)
    assert response.get_json()["ext"]["rerank"]["truncated"] == 0


@pytest.mark.parametrize("body, field", [
    ({**SORTED, "ext": {"rerank": {"query_context": {"query_text": "q"}, "fields": ["text"]}}}, "hits.hits[0]"),
    ({**SORTED, "ext": {"rerank": {"query_context": {"query_text": LONG}}}}, "ext.rerank.query_text"),
])
def test_reject_mode_is_422_naming_the_field(opensearch_url, limits_index, body, field):
    app = make_app("reject", opensearch_url)
    response = app.test_client().post(f"/{limits_index}/_search", json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["field"] == field
    assert _calls(app) == []
