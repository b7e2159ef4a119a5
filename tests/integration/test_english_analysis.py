"""The sidecar's own ingest index analyses title and text as English (README "Robustness and fusion defaults").

es_templates/index/documents.json maps both fields with the engines' built-in `english` analyzer
(Lucene's EnglishAnalyzer: possessives, lower case, English stop words, Porter stemming), the
analysis of the BEIR BM25 baseline. Here on both engines, through the index install() makes and the
shipped bm25 template's query: a word matches its other inflections, a query of stop words alone
matches nothing, and the title's exact keyword stays as it was. A cluster without those analyzers
(Elasticsearch's integ-test-zip has no analysis-common) gets the index with standard analysis and a
report that says so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Indexed:
    client: object
    report: object  # install()'s InstallReport
    english: bool   # the cluster has the analyzers (analysis-common)


@pytest.fixture(scope="module", params=["opensearch", "elasticsearch"])
def indexed(request):
    from sidecar.engine import engine_for_client
    from sidecar.search.ingest import ingest
    from sidecar.search.templates import install

    client = request.getfixturevalue("os_client" if request.param == "opensearch" else "es_client")
    engine = engine_for_client(client)
    english = engine.analysis_module in engine.modules(client)
    assert english or request.param == "elasticsearch"  # every OpenSearch here has analysis-common
    report = install(client, INDEX, recreate=True, dimension=8)
    result = ingest(client, INDEX, [json.dumps(d) for d in DOCS], embedder=None)
    assert result.indexed == len(DOCS) and not result.rejected
    yield Indexed(client, report, english)
    client.indices.delete(index=INDEX, ignore=[404])


@pytest.fixture()
def client(indexed):
    if not indexed.english:
        pytest.skip("this Elasticsearch (integ-test-zip) has no analysis-common: see the fallback test")
    return indexed.client


def bm25(client, query: str) -> list[str]:
    from sidecar.search import first_stage

    # Rendered here: Elasticsearch's integ-test-zip has no lang-mustache for stored templates.
    response = first_stage.search(client, INDEX, "bm25", query, size=10, templated=False)
    return [hit["_id"] for hit in response["hits"]["hits"]]


def test_title_and_text_use_the_english_analyzer(client):
    properties = client.indices.get_mapping(index=INDEX)[INDEX]["mappings"]["properties"]
    assert properties["title"]["analyzer"] == "english" and properties["text"]["analyzer"] == "english"
    assert properties["title"]["fields"]["raw"]["type"] == "keyword"


def test_report_says_nothing_when_the_analyzers_are_there(indexed, client):
    assert indexed.report.index_created and indexed.report.analysis == ""


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


def test_without_analysis_common_the_index_has_standard_analysis_and_says_so(indexed):
    """Elasticsearch's integ-test-zip lacks analysis-common (README "Modules missing from the
    integ-test-zip"): the index is still made, with standard analysis, and install() reports why."""
    if indexed.english:
        pytest.skip("this cluster has analysis-common")
    client = indexed.client
    assert indexed.report.index_created
    assert "analysis-common" in indexed.report.analysis and "english" in indexed.report.analysis
    properties = client.indices.get_mapping(index=INDEX)[INDEX]["mappings"]["properties"]
    assert "analyzer" not in properties["title"] and "analyzer" not in properties["text"]
    assert bm25(client, "reranked") == ["reranked"] and bm25(client, "reranking") == []
