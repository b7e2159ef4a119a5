"""OpenSearch calls the sidecar from its own search pipeline (ML Commons connector + rerank processor)."""
import pytest
import requests

from sidecar.search.ingest import ingest
from sidecar.search.ml_pipeline import install_ml_rerank
from sidecar.search.templates import install
from tests.conftest import BROAD_QUERY, DEMO_CORPUS

pytestmark = pytest.mark.integration

INDEX = "demo-native"
QUERY = "how do solar panels produce electricity"
BROAD = {"query": BROAD_QUERY, "size": 30}


@pytest.fixture(scope="module")
def native_index(os_client, sidecar_url):
    install(os_client, INDEX, recreate=True)
    with DEMO_CORPUS.open() as fh:
        assert ingest(os_client, INDEX, fh, embedder=None).indexed == 30
    result = install_ml_rerank(os_client, sidecar_url, index=INDEX, pipeline_id="rescore-native-test")
    assert result.model_id and result.connector_id
    return INDEX


def test_plain_search_straight_to_opensearch_comes_back_reranked(opensearch_url, sidecar_url, native_index):
    body = {**BROAD, "ext": {"rerank": {"query_context": {"query_text": QUERY}}}}
    reranked = requests.post(f"{opensearch_url}/{native_index}/_search", json=body, timeout=120)
    assert reranked.status_code == 200, reranked.text
    hits = reranked.json()["hits"]["hits"]
    plain = requests.post(f"{opensearch_url}/{native_index}/_search?search_pipeline=_none", json=BROAD,
                          timeout=60).json()["hits"]["hits"]
    assert sorted(h["_id"] for h in hits) == sorted(h["_id"] for h in plain)
    assert [h["_id"] for h in hits] != [h["_id"] for h in plain]
    assert hits[0]["_id"] == "solar"

    # The order is the sidecar's: the same documents scored through its Cohere endpoint. OpenSearch
    # joins document_fields its own way, so near-ties further down may swap; compare the head.
    texts = [f"{h['_source']['title']}\n{h['_source']['text']}" for h in plain]
    cohere = requests.post(f"{sidecar_url}/v1/rerank", json={"query": QUERY, "documents": texts}, timeout=60).json()
    expected = [plain[r["index"]]["_id"] for r in cohere["results"]]
    assert [h["_id"] for h in hits][:3] == expected[:3]
    scores = [h["_score"] for h in hits]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)


def test_installer_is_idempotent(os_client, sidecar_url, native_index):
    first = install_ml_rerank(os_client, sidecar_url, index=native_index, pipeline_id="rescore-native-test")
    second = install_ml_rerank(os_client, sidecar_url, index=native_index, pipeline_id="rescore-native-test")
    assert first.model_id == second.model_id and first.connector_id == second.connector_id


def test_index_default_pipeline_never_breaks_plain_searches(opensearch_url, sidecar_url, native_index):
    """After install_ml_rerank(index=...) a search without ext.rerank answers 200 in first-stage order."""
    settings = requests.get(f"{opensearch_url}/{native_index}/_settings", timeout=30).json()
    assert settings[native_index]["settings"]["index"]["search"]["default_pipeline"] == "rescore-native-test"
    dashboards = {"query": {"bool": {"filter": [{"multi_match": {"type": "best_fields", "query": "solar",
                                                                  "lenient": True}}]}}, "size": 30}
    for body in (BROAD, dashboards, {"query": {"match_all": {}}}):
        plain = requests.post(f"{opensearch_url}/{native_index}/_search", json=body, timeout=60)
        assert plain.status_code == 200, plain.text
        direct = requests.post(f"{opensearch_url}/{native_index}/_search?search_pipeline=_none", json=body,
                               timeout=60).json()
        assert [h["_id"] for h in plain.json()["hits"]["hits"]] == [h["_id"] for h in direct["hits"]["hits"]]
    # The sidecar strips ext.rerank before its first stage: that search must work on this index too.
    own = {**BROAD, "ext": {"rerank": {"query_context": {"query_text": QUERY}, "fusion": "replace"}}}
    through = requests.post(f"{sidecar_url}/{native_index}/_search", json=own, timeout=120)
    assert through.status_code == 200, through.text
    assert through.json()["ext"]["rerank"]["status"] == "ok"
    assert through.json()["hits"]["hits"][0]["_id"] == "solar"
