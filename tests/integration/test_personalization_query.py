"""Personalization and query understanding through the real sidecar (gunicorn), real OpenSearch
and the bundled MiniLM cross-encoder, on a small product index made here."""
from __future__ import annotations

import dataclasses

import pytest
import requests

from sidecar.search.query_understanding import QueryInfo
from tests.conftest import start_sidecar, stop_process

pytestmark = pytest.mark.integration

INDEX = "personal-products-test"
PRODUCTS = [
    {"id": "p1", "title": "Heavy steel anvil", "text": "Forged steel anvil for blacksmith work, 50 kg, hardened face.",
     "brand": "Zenith", "category": "tools"},
    {"id": "p2", "title": "Steel anvil", "text": "Steel anvil for the blacksmith workshop, 40 kg with a horn.",
     "brand": "ACME", "category": "tools"},
    {"id": "p3", "title": "Small steel anvil", "text": "Compact steel anvil for jewellery and blacksmith hobby work.",
     "brand": "Forgemaster", "category": "tools"},
    {"id": "p4", "title": "Cast iron anvil", "text": "Cast iron anvil shaped block for light hobby metal work.",
     "brand": "Ironline", "category": "tools"},
    {"id": "p5", "title": "Blacksmith hammer", "text": "Cross peen hammer for the blacksmith, hickory handle.",
     "brand": "Zenith", "category": "hand tools"},
    {"id": "p6", "title": "Garden hose", "text": "Twenty metre garden hose with brass fittings.",
     "brand": "Acme", "category": "garden"},
]
QUERY = "steel anvil for a blacksmith"
BROAD = {"query": {"match": {"text": {"query": "anvil blacksmith steel hammer hose", "operator": "or"}}}}


class SkuTagger:
    """A custom analyzer the sidecar loads by dotted path (RESCORE_QUERY_ANALYZERS)."""

    def analyze(self, info: QueryInfo) -> QueryInfo:
        if info.normalized.casefold().startswith("sku "):
            return dataclasses.replace(info, type="sku", rule="sku-tagger", instruction="Find the item with this SKU")
        return info


@pytest.fixture(scope="module")
def products(os_client) -> str:
    if os_client.indices.exists(index=INDEX):
        os_client.indices.delete(index=INDEX)
    os_client.indices.create(index=INDEX, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                                                "mappings": {"properties": {
                                                    "title": {"type": "text"}, "text": {"type": "text"},
                                                    "brand": {"type": "keyword"}, "category": {"type": "keyword"}}}})
    for product in PRODUCTS:
        doc = {k: v for k, v in product.items() if k != "id"}
        os_client.index(index=INDEX, id=product["id"], body=doc)
    os_client.indices.refresh(index=INDEX)
    return INDEX


@pytest.fixture(scope="module")
def personal_sidecar(opensearch_url):
    analyzers = f"normalize,language,rules,{__name__}:SkuTagger"
    proc, url, _ = start_sidecar(opensearch_url, RESCORE_PERSONALIZATION="on", RESCORE_QUERY_ANALYZERS=analyzers)
    try:
        yield url
    finally:
        stop_process(proc)


@pytest.fixture
def plain_sidecar(sidecar_url):
    """The session's sidecar with default settings: personalization off, query understanding on."""
    return sidecar_url


def search(url: str, rerank: dict, **extra) -> dict:
    body = {**BROAD, "size": 6, **extra, "ext": {"rerank": {"query_context": {"query_text": QUERY}, **rerank}}}
    response = requests.post(f"{url}/{INDEX}/_search", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def ids(body: dict) -> list[str]:
    return [h["_id"] for h in body["hits"]["hits"]]


PREFER_ACME = {"preferred_brands": ["acme"], "weight": 0.3}


def test_preferred_brand_moves_up_and_the_term_is_explained(personal_sidecar, products):
    plain = search(personal_sidecar, {})
    personal = search(personal_sidecar, {"user_context": PREFER_ACME}, explain=True)
    assert sorted(ids(plain)) == sorted(ids(personal)), "same hits, new order"
    assert ids(plain).index("p2") > 0, "the ACME anvil is not first on relevance alone"
    assert ids(personal).index("p2") < ids(plain).index("p2")
    assert personal["ext"]["rerank"]["personalization"]["applied"] is True
    assert personal["ext"]["rerank"]["personalization"]["boosted"] == 2, "p2 and p6 are ACME"
    hit = personal["hits"]["hits"][ids(personal).index("p2")]
    explanation = hit["_explanation"]
    assert explanation["value"] == hit["_score"] and explanation["description"].endswith("+ personalization")
    first, rerank, term = explanation["details"]
    assert term["description"].startswith("personalization weight=0.3")
    assert term["value"] == pytest.approx(0.3 * 1.0 * 0.5), "linear (0.5, 0.5): scale 1, one preference: 0.5"
    assert [d["description"] for d in term["details"]] == ["matched brand=acme"]
    assert first["value"] is not None and rerank["description"].startswith("rerank score")
    other = personal["hits"]["hits"][ids(personal).index("p1")]["_explanation"]["details"][2]
    assert other["value"] == 0 and other["details"] == []


def test_personalization_reads_brand_even_when_source_filter_drops_it(personal_sidecar, products):
    plain = search(personal_sidecar, {}, _source=["title"])
    personal = search(personal_sidecar, {"user_context": PREFER_ACME}, _source=["title"])
    assert personal["ext"]["rerank"]["personalization"]["boosted"] == 2
    assert ids(personal).index("p2") < ids(plain).index("p2")
    assert all(set(h["_source"]) == {"title"} for h in personal["hits"]["hits"])


def test_with_personalization_off_user_context_is_ignored_and_reported(plain_sidecar, products):
    without = search(plain_sidecar, {})
    ignored = search(plain_sidecar, {"user_context": PREFER_ACME})
    assert ids(ignored) == ids(without)
    assert [h["_score"] for h in ignored["hits"]["hits"]] == [h["_score"] for h in without["hits"]["hits"]]
    assert ignored["ext"]["rerank"]["personalization"] == {
        "applied": False, "reason": "RESCORE_PERSONALIZATION is off; user_context was ignored"}


def test_bad_user_context_is_a_422_naming_the_key(plain_sidecar, personal_sidecar, products):
    context = {"boosts": [{"field": "brand", "value": "acme", "weight": 0.2}, {"field": "color", "value": "red",
                                                                               "weight": 7}]}
    for url in (plain_sidecar, personal_sidecar):
        body = {**BROAD, "ext": {"rerank": {"query_context": {"query_text": QUERY}, "user_context": context}}}
        response = requests.post(f"{url}/{INDEX}/_search", json=body, timeout=60)
        assert response.status_code == 422
        assert response.json()["field"] == "ext.rerank.user_context.boosts[1].weight"


def test_rescore_api_takes_the_same_user_context(personal_sidecar, os_client, products):
    hits = os_client.search(index=INDEX, body={**BROAD, "size": 6})["hits"]["hits"]
    body = {"query": QUERY, "hits": hits}
    plain = requests.post(f"{personal_sidecar}/v1/rescore", json=body, timeout=60).json()
    personal = requests.post(f"{personal_sidecar}/v1/rescore", json={**body, "user_context": PREFER_ACME},
                             timeout=60).json()
    order = lambda response: [h["_id"] for h in response["hits"]]  # noqa: E731
    assert order(personal).index("p2") < order(plain).index("p2")
    assert personal["ext"]["rerank"]["personalization"]["applied"] is True


def test_query_understanding_reports_normalization_language_and_rule(plain_sidecar, products):
    body = {**BROAD, "size": 3,
            "ext": {"rerank": {"query_context": {"query_text": "  How  do I choose\ta steel anvil? "}}}}
    response = requests.post(f"{plain_sidecar}/{INDEX}/_search", json=body, timeout=60).json()
    assert response["ext"]["rerank"]["query"] == {
        "normalized": "How do I choose a steel anvil?", "language": "en", "type": "question", "rule": "question",
        "instruction": "Given a question, retrieve passages that answer it", "instruction_source": "rule"}
    assert response["ext"]["rerank"]["status"] == "ok"


def test_request_instruction_wins_and_the_switch_skips_the_step(plain_sidecar, products):
    mine = search(plain_sidecar, {"instruction": "Find anvils"})["ext"]["rerank"]["query"]
    assert mine["instruction"] == "Find anvils" and mine["instruction_source"] == "request"
    off = search(plain_sidecar, {"query_understanding": False})["ext"]["rerank"]
    assert "query" not in off and off["status"] == "ok"


def test_custom_analyzer_loaded_by_dotted_path_runs_in_the_sidecar(personal_sidecar, products):
    body = {**BROAD, "size": 3, "ext": {"rerank": {"query_context": {"query_text": "SKU  A-1138"}}}}
    query = requests.post(f"{personal_sidecar}/{INDEX}/_search", json=body, timeout=60).json()["ext"]["rerank"]["query"]
    assert query["rule"] == "sku-tagger" and query["type"] == "sku" and query["normalized"] == "SKU A-1138"
    assert query["instruction"] == "Find the item with this SKU"
