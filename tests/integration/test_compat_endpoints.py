"""Cohere, Jina, TEI and vLLM rerank shapes, and /v1/rescore, over HTTP with the real model."""
import math

import pytest
import requests

from tests.conftest import BROAD_QUERY

pytestmark = pytest.mark.integration

# The request examples of the public API references, verbatim in substance.
COHERE_DOCS = [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. Its capital is Saipan.",
    "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) is the "
    "capital of the United States. It is a federal district.",
    "Capitalization or capitalisation in English grammar is the use of a capital letter at the start of a word. "
    "English usage varies from capitalization in other languages.",
    "Capital punishment has existed in the United States since beforethe United States was a country. As of 2017, "
    "capital punishment is legal in 30 of the 50 states.",
]
COHERE_QUERY = "What is the capital of the United States?"


def post(url: str, body) -> requests.Response:
    return requests.post(url, json=body, timeout=60)


def test_cohere_v1_rerank_example(sidecar_url):
    body = {"model": "rerank-english-v3.0", "query": COHERE_QUERY, "top_n": 3, "documents": COHERE_DOCS}
    response = post(f"{sidecar_url}/v1/rerank", body)
    assert response.status_code == 200
    out = response.json()
    assert set(out) >= {"id", "results", "meta"}
    assert out["meta"]["api_version"]["version"] == "1" and out["meta"]["billed_units"]["search_units"] == 1
    results = out["results"]
    assert len(results) == 3 and results[0]["index"] == 2
    assert all(set(r) == {"index", "relevance_score"} for r in results), "no documents unless asked"
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)


def test_cohere_v2_rerank_example(sidecar_url):
    body = {"model": "rerank-v3.5", "query": COHERE_QUERY, "top_n": 2, "documents": COHERE_DOCS}
    out = post(f"{sidecar_url}/v2/rerank", body).json()
    assert out["meta"]["api_version"]["version"] == "2"
    assert [r["index"] for r in out["results"]][0] == 2 and len(out["results"]) == 2


def test_jina_rerank_example_with_documents(sidecar_url):
    documents = [
        "Organic skincare for sensitive skin with aloe vera and chamomile: Imagine the soothing embrace of nature "
        "with our organic skincare range, crafted specifically for sensitive skin.",
        "New makeup trends focus on bold colors and innovative techniques: Step into the world of cutting-edge "
        "beauty with this seasons makeup trends.",
        "Bio-Hautpflege für empfindliche Haut mit Aloe Vera und Kamille.",
        "Neue Make-up-Trends setzen auf kräftige Farben und innovative Techniken.",
    ]
    body = {"model": "jina-reranker-v2-base-multilingual", "query": "Organic skincare products for sensitive skin",
            "top_n": 3, "documents": documents, "return_documents": True}
    out = post(f"{sidecar_url}/v1/rerank", body).json()
    assert out["model"] == "jina-reranker-v2-base-multilingual"
    assert out["usage"]["total_tokens"] > 0
    first = out["results"][0]
    assert first["index"] == 0 and first["document"] == {"text": documents[0]}
    assert len(out["results"]) == 3


def test_documents_may_be_objects_with_text(sidecar_url):
    body = {"query": COHERE_QUERY, "documents": [{"text": d} for d in COHERE_DOCS], "return_documents": True}
    out = post(f"{sidecar_url}/v1/rerank", body).json()
    assert len(out["results"]) == 5 and out["results"][0]["document"]["text"] == COHERE_DOCS[2]


def test_tei_rerank_example(sidecar_url):
    body = {"query": "What is Deep Learning?",
            "texts": ["Deep Learning is not...", "Deep learning is a subset of machine learning that uses "
                                                 "neural networks with many layers."]}
    out = post(f"{sidecar_url}/rerank", body).json()
    assert isinstance(out, list) and [set(r) for r in out] == [{"index", "score"}] * 2
    assert out[0]["index"] == 1 and 0.0 <= out[1]["score"] <= out[0]["score"] <= 1.0
    raw = post(f"{sidecar_url}/rerank", {**body, "raw_scores": True, "return_text": True}).json()
    assert raw[0]["text"] == body["texts"][1]
    # raw_scores returns the logit; the default is its sigmoid
    assert 1 / (1 + math.exp(-raw[0]["score"])) == pytest.approx(out[0]["score"], rel=1e-6)


def test_vllm_score_example(sidecar_url):
    body = {"model": "BAAI/bge-reranker-v2-m3", "text_1": "What is the capital of France?",
            "text_2": ["The capital of Brazil is Brasilia.", "The capital of France is Paris."]}
    out = post(f"{sidecar_url}/score", body).json()
    assert out["object"] == "list" and out["model"] == "BAAI/bge-reranker-v2-m3" and out["id"].startswith("score-")
    data = out["data"]
    assert [d["index"] for d in data] == [0, 1] and all(d["object"] == "score" for d in data)
    assert data[1]["score"] > data[0]["score"]
    assert out["usage"]["prompt_tokens"] > 0
    pairs = post(f"{sidecar_url}/v1/score", {"text_1": ["q1 capital France", "q2 capital Brazil"],
                                             "text_2": ["Paris is the capital of France.", "Brasilia."]}).json()
    assert len(pairs["data"]) == 2


@pytest.mark.parametrize("path, body, field", [
    ("/v1/rerank", {"query": "q"}, "documents"),
    ("/v1/rerank", {"query": "", "documents": ["a"]}, "query"),
    ("/v1/rerank", {"query": "q", "documents": ["a", 3]}, "documents[1]"),
    ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
    ("/v2/rerank", {"query": "q", "documents": ["a"], "return_documents": "yes"}, "return_documents"),
    ("/rerank", {"query": "q", "texts": []}, "texts"),
    ("/score", {"text_1": ["a", "b"], "text_2": ["c", "d", "e"]}, "text_1"),
    ("/v1/rescore", {"query": "q", "documents": ["a"], "hits": []}, "hits"),
    ("/v1/rescore", {"query": "q", "documents": ["a"], "fusion": "best"}, "body.fusion"),
])
def test_bad_requests_are_422_naming_the_field(sidecar_url, path, body, field):
    response = post(f"{sidecar_url}{path}", body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field and response.json()["error_type"] == "validation_error"


def test_malformed_json_is_400(sidecar_url):
    response = requests.post(f"{sidecar_url}/v1/rerank", data=b'{"query": ', timeout=10,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["field"] == "body"


def test_rescore_api_reorders_es_hits_and_keeps_the_rest(engine_stack):
    # Hits as each engine returns them (its own _index, _score, _source shape), rescored by the sidecar.
    search = post(f"{engine_stack.url}/{engine_stack.index}/_search",
                  {"query": BROAD_QUERY, "size": 12}).json()
    hits = search["hits"]["hits"]
    assert len(hits) == 12
    out = post(f"{engine_stack.sidecar}/v1/rescore", {"query": "electricity from sunlight", "hits": hits,
                                             "window_size": 8, "fields": ["title", "text"]}).json()
    assert out["ext"]["rerank"]["status"] == "ok" and out["ext"]["rerank"]["window"] == 8
    got = [h["_id"] for h in out["hits"]]
    assert sorted(got) == sorted(h["_id"] for h in hits)
    assert got[8:] == [h["_id"] for h in hits[8:]]
    assert all("_rerank_score" in h for h in out["hits"][:8])


def test_rescore_api_with_plain_documents(sidecar_url):
    out = post(f"{sidecar_url}/v1/rescore", {"query": COHERE_QUERY, "documents": COHERE_DOCS,
                                             "fusion": "replace"}).json()
    assert out["hits"][0]["_id"] == "2" and out["hits"][0]["_source"]["text"] == COHERE_DOCS[2]


# Issue 12 item 6: plain documents carry no first-stage evidence, and tiny windows must not tie a hit
# the model rejects with one it is sure about.
def test_rescore_plain_documents_rank_by_the_model_by_default(sidecar_url):
    docs = ["Berlin is in Germany.", "Paris is the capital of France."]
    out = post(f"{sidecar_url}/v1/rescore", {"query": "capital of France", "documents": docs}).json()
    assert out["ext"]["rerank"]["fusion"] == "replace"
    assert [h["_id"] for h in out["hits"]] == ["1", "0"]
    assert out["hits"][0]["_score"] == out["hits"][0]["_rerank_score"] > out["hits"][1]["_score"]
    # Asking for a fusion still fuses list order with the model.
    fused = post(f"{sidecar_url}/v1/rescore", {"query": "capital of France", "documents": docs,
                                               "fusion": "linear"}).json()
    assert fused["ext"]["rerank"]["fusion"] == "linear"


@pytest.mark.parametrize("extra", [[], ["Wind turbines turn moving air into electricity."]])
def test_default_fusion_ranks_a_tiny_window_of_hits_by_a_sure_model(sidecar_url, extra):
    # The first stage barely prefers the off-topic hit; min-max on two hits made that a tie (0.5 / 0.5).
    texts = ["A vaccine trains the immune system to recognise a pathogen.",
             "Fixing a punctured bike tyre: take the wheel off, find the hole in the inner tube and patch it.",
             *extra]
    hits = [{"_id": str(i), "_score": 5.2 - 0.1 * i, "_source": {"text": t}} for i, t in enumerate(texts)]
    out = post(f"{sidecar_url}/v1/rescore", {"query": "how do I fix a flat bike tyre", "hits": hits}).json()
    assert out["ext"]["rerank"]["status"] == "ok"
    scores = {h["_id"]: h["_rerank_score"] for h in out["hits"]}
    assert scores["1"] > 3 and scores["0"] < -3, scores  # the model is sure about both
    assert out["hits"][0]["_id"] == "1"
    assert out["hits"][0]["_score"] > out["hits"][1]["_score"] + 0.1, "a clear margin, not a tie broken by order"
