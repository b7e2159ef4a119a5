"""The sidecar's own ingest index analyses title and text as English (README "Robustness and fusion defaults").

es_templates/index/documents.json maps both fields with the engines' built-in `english` analyzer
(Lucene's EnglishAnalyzer: possessives, lower case, English stop words, Porter stemming), the
analysis of the BEIR BM25 baseline. Here on both engines, through the index install() makes and the
shipped bm25 template's query: a word matches its other inflections, a query of stop words alone
matches nothing, and the title's exact keyword stays as it was.
"""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

INDEX = "english-analysis-test"
DOCS = [
    {"_id": "reranked", "title": "Cross-encoders",
     "text": "The first-stage hits were reranked by a cross-encoder before the user saw them."},
    {"_id": "turbines", "title": "Wind turbines",
     "text": "Wind turbines turn the kinetic energy of moving air into electricity."},
    {"_id": "libraries", "title": "Book catalogues",
     "text": "A library's catalogue lists its books by author and subject."},
]


@pytest.fixture(scope="module", params=["opensearch", "elasticsearch"])
def client(request):
    from sidecar.search.ingest import ingest
    from sidecar.search.templates import install

    client = request.getfixturevalue("os_client" if request.param == "opensearch" else "es_client")
    install(client, INDEX, recreate=True, dimension=8)
    report = ingest(client, INDEX, [json.dumps(d) for d in DOCS], embedder=None)
    assert report.indexed == len(DOCS) and not report.rejected
    yield client
    client.indices.delete(index=INDEX, ignore=[404])


def bm25(client, query: str) -> list[str]:
    from sidecar.search import first_stage

    # Rendered here: Elasticsearch's integ-test-zip has no lang-mustache for stored templates.
    response = first_stage.search(client, INDEX, "bm25", query, size=10, templated=False)
    return [hit["_id"] for hit in response["hits"]["hits"]]


def test_title_and_text_use_the_english_analyzer(client):
    properties = client.indices.get_mapping(index=INDEX)[INDEX]["mappings"]["properties"]
    assert properties["title"]["analyzer"] == "english" and properties["text"]["analyzer"] == "english"
    assert properties["title"]["fields"]["raw"]["type"] == "keyword"


@pytest.mark.parametrize("query, expected", [
    ("reranking", ["reranked"]),            # stemmed: rerank-ing / rerank-ed
    ("turbine electric", ["turbines"]),     # plural in the title, "electricity" -> electr
    ("libraries", ["libraries"]),           # "library's" (possessive) and "libraries" -> librari
])
def test_a_word_matches_its_inflections(client, query, expected):
    assert bm25(client, query) == expected


def test_a_query_of_stop_words_alone_matches_nothing(client):
    assert bm25(client, "the by of") == []


def test_the_title_keyword_is_the_exact_title(client):
    hits = client.search(index=INDEX, body={"query": {"term": {"title.raw": "Wind turbines"}}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["turbines"]
