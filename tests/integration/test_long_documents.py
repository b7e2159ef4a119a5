"""Long documents (passages) and document templates through the real sidecar, OpenSearch and MiniLM.

Long documents: ~1800 tokens of unrelated text, then the paragraph that answers the query. The
bundled cross-encoder reads 512 tokens, so without passages the answer is cut away; with
passages its last passage carries it. Products: the brand is only in the `brand` keyword field;
the products template (es_templates/doc_text/products.json) puts it into the model input.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LONG_INDEX = "longdocs-test"
PRODUCT_INDEX = "products-test"  # matches the bundled template's "products*"
QUERY = "how do solar panels produce electricity"

FILLER = [
    "The old stone bridge over the river was rebuilt twice after spring floods in the last century.",
    "Knead the dough for ten minutes until it is smooth and elastic, then let it rise in a warm place.",
    "Chess players often study endgames to learn how a single pawn can decide the whole game.",
    "The castle's great hall was heated by a fireplace large enough to roast an entire ox.",
    "Tomato seedlings need plenty of light, or they grow tall and weak while reaching for the window.",
    "Knitting a sweater starts with a gauge swatch so that the finished piece has the right size.",
    "The night train crossed the mountains slowly, stopping at small villages wrapped in snow.",
    "Migratory birds follow coastlines and rivers, resting in wetlands along the way south.",
    "A good risotto needs warm stock added one ladle at a time while the rice is stirred constantly.",
    "Roman roads were built in layers of gravel and stone, and many of them are still in use today.",
    "The library kept its rarest manuscripts in a cool room with the curtains drawn at all times.",
    "Pruning fruit trees in late winter encourages strong new growth and a better harvest.",
    "The orchestra tuned to a single note from the oboe before the conductor raised the baton.",
    "Medieval monks copied books by hand, decorating the first letter of each chapter in gold.",
    "A sourdough starter is a living culture of yeast and bacteria that must be fed every day.",
    "The museum's new wing displays pottery, coins and tools found at the ancient harbour.",
    "Watercolour painters wet the paper first so that the colours spread into soft edges.",
    "The football club celebrated its centenary with a parade through the streets of the town.",
    "Beekeepers wear veils and use smoke to calm the bees before they open the hives.",
    "A well-tended compost heap turns kitchen scraps and leaves into rich soil within a year.",
    "The lighthouse keeper climbed the spiral staircase every evening to light the lamp.",
    "Folk dances in the region are performed in long lines with the dancers holding hands.",
    "The recipe calls for two eggs, a cup of flour, a pinch of salt and a little melted butter.",
    "Old maps show sea monsters in the corners where the cartographers knew nothing of the ocean.",
]
# The other documents open with a sentence near the query's words (but no answer), so a model that
# reads only the head prefers them: truncation has a visible cost.
HEADS = [
    "Electricity prices rose sharply this winter, and many households looked for ways to cut their power bills.",
    "The town council discussed new panels of experts to advise on energy use in public buildings.",
    "Power cuts during the storm left several streets without electricity for most of the night.",
    "The school science fair had projects on batteries, magnets and simple electric circuits.",
    "Roof repairs are cheaper in summer, when the weather lets builders replace tiles and panels quickly.",
]
TAILS = {
    "bread": "To bake a crusty loaf, preheat the oven with a cast iron pot inside and bake the dough covered "
             "for the first twenty minutes.",
    "bike": "To repair a flat bicycle tyre, remove the wheel, find the puncture in the inner tube, and glue a "
            "patch over the hole.",
    "solar": "Solar panels produce electricity through the photovoltaic effect: sunlight striking the silicon "
             "cells knocks electrons loose, and the electric field across the cell drives them into a current "
             "that an inverter turns into household power.",
    "whale": "Humpback whales sing long, complex songs that change slowly from one breeding season to the next.",
    "tax": "Income tax returns must be filed by the end of April, and late filings are charged interest on the "
           "amount due.",
    "volcano": "Volcanoes erupt when molten rock rises through cracks in the crust and pressure from dissolved "
               "gases builds up.",
}
BRAND_QUERIES = {"Hoka running shoes": "Hoka", "Brooks running shoe": "Brooks", "Asics running shoes": "Asics",
                 "Sony headphones": "Sony", "Bose headphones": "Bose", "Makita drill": "Makita",
                 "Osprey backpack": "Osprey", "Garmin watch": "Garmin", "Dyson vacuum": "Dyson"}


def long_documents(seed: int = 7, filler_words: int = 1500) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    for k, (name, tail) in enumerate(TAILS.items()):
        parts = [] if name == "solar" else [HEADS[k % len(HEADS)]]
        while sum(len(p.split()) for p in parts) < filler_words:
            parts.append(rng.choice(FILLER))
        docs.append({"_id": name, "title": "", "text": " ".join(parts) + "\n\n" + tail})
    return docs


@pytest.fixture(scope="module")
def long_index(engine_stack) -> str:
    from sidecar.search.ingest import ingest
    from sidecar.search.templates import install

    os_client = engine_stack.client
    install(os_client, LONG_INDEX, recreate=True)
    report = ingest(os_client, LONG_INDEX, [json.dumps(d) for d in long_documents()], embedder=None)
    assert report.indexed == len(TAILS) and not report.rejected
    return LONG_INDEX


@pytest.fixture(scope="module")
def product_index(engine_stack, embedder) -> str:
    from sidecar.search.ingest import ingest_records
    from sidecar.search.templates import install

    os_client = engine_stack.client
    install(os_client, PRODUCT_INDEX, recreate=True, mapping="products", dimension=embedder.dimension)
    with (ROOT / "demo" / "products.jsonl").open() as fh:
        report = ingest_records(os_client, PRODUCT_INDEX, fh, embedder=embedder)
    assert report.indexed == 40 and not report.rejected
    mapping = os_client.indices.get_mapping(index=PRODUCT_INDEX)[PRODUCT_INDEX]["mappings"]["properties"]
    assert mapping["brand"]["type"] == "keyword" and mapping["embedding"]["type"] in ("knn_vector", "dense_vector")
    return PRODUCT_INDEX


def search(base: str, index: str, body: dict) -> dict:
    response = requests.post(f"{base}/{index}/_search", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()


def long_body(**rerank) -> dict:
    return {"query": {"match_all": {}}, "size": len(TAILS),
            "ext": {"rerank": {"query_context": {"query_text": QUERY}, "window_size": len(TAILS),
                               "fusion": "replace", "timeout_ms": 120000, **rerank}}}


def ids(response: dict) -> list[str]:
    return [h["_id"] for h in response["hits"]["hits"]]


def test_answer_at_the_end_of_a_long_document_is_found_only_with_passages(engine_stack, long_index):
    sidecar_url = engine_stack.sidecar
    truncated = search(sidecar_url, long_index, long_body(passages=False))
    assert truncated["ext"]["rerank"]["status"] == "ok" and "passages" not in truncated["ext"]["rerank"]
    assert ids(truncated).index("solar") >= 3, "the model reads 512 tokens: the answer is cut away"

    body = long_body(passages={"max_tokens": 256, "overlap": 32})
    body["explain"] = True
    reranked = search(sidecar_url, long_index, body)
    rerank = reranked["ext"]["rerank"]
    assert rerank["status"] == "ok" and ids(reranked)[0] == "solar"
    assert rerank["passages"]["docs_split"] == len(TAILS)
    assert rerank["passages"]["passages"] == rerank["passages"]["passages_scored"] == len(TAILS) * 8
    top = reranked["hits"]["hits"][0]
    passage = top["highlight"]["_rerank_passage"][0]
    assert "photovoltaic effect" in passage and passage in top["_source"]["text"], "an exact substring"
    assert passage.endswith("household power.")
    scores = [h["_score"] for h in reranked["hits"]["hits"]]
    assert scores[0] - scores[1] > 5, "the answer passage stands out by a wide margin of logits"
    rerank_detail = top["_explanation"]["details"][1]
    assert rerank_detail["details"][0]["description"].startswith("best passage 8 of 8")

    mean = search(sidecar_url, long_index, long_body(passages={"aggregate": "mean", "top_k": 2}))
    assert ids(mean)[0] == "solar"
    assert mean["hits"]["hits"][0]["_score"] < scores[0], "mean of the 2 best < the best"


def test_chunk_rescorer_of_the_retriever_reranks_by_passages(engine_stack, long_index):
    body = {"size": len(TAILS), "retriever": {"text_similarity_reranker": {
        "retriever": {"standard": {"query": {"match_all": {}}}}, "field": "text", "inference_text": QUERY,
        "rank_window_size": len(TAILS), "fusion": "replace",
        "chunk_rescorer": {"size": 2, "chunking_settings": {"max_chunk_size": 256}}}}}
    reranked = search(engine_stack.sidecar, long_index, body)
    assert reranked["ext"]["rerank"]["status"] == "ok" and ids(reranked)[0] == "solar"
    assert reranked["ext"]["rerank"]["passages"]["docs_split"] == len(TAILS)


def test_passage_highlight_joins_the_callers_highlight_and_source_filter(engine_stack, long_index):
    sidecar_url = engine_stack.sidecar
    body = long_body(passages=True)
    body.update({"query": {"bool": {"should": [{"match_all": {}}, {"match": {"text": "electricity"}}]}},
                 "_source": ["title"],
                 "highlight": {"fields": {"text": {}}}})
    response = search(sidecar_url, long_index, body)
    top = response["hits"]["hits"][0]
    assert top["_id"] == "solar" and top["_source"] == {"title": ""}, "text was widened in, then filtered out"
    assert set(top["highlight"]) == {"text", "_rerank_passage"}
    assert "<em>electricity</em>" in " ".join(top["highlight"]["text"]).lower()


def test_product_template_ranks_the_named_brand_first(engine_stack, product_index):
    sidecar_url = engine_stack.sidecar
    def top_brands(**rerank) -> dict[str, str]:
        out = {}
        for query in BRAND_QUERIES:
            body = {"query": {"multi_match": {"query": query, "fields": ["title", "description"]}}, "size": 10,
                    "ext": {"rerank": {"query_context": {"query_text": query}, "window_size": 10,
                                       "fusion": "replace", "timeout_ms": 120000, **rerank}}}
            response = search(sidecar_url, product_index, body)
            assert response["ext"]["rerank"]["status"] == "ok"
            hits = response["hits"]["hits"]
            assert len(hits) >= 3, f"{query}: the first stage finds the category by title/description"
            out[query] = hits[0]["_source"]["brand"]
        return out

    with_template = top_brands()  # the index matches products* in es_templates/doc_text
    assert with_template == BRAND_QUERIES
    without = top_brands(doc_template=False, fields=["title", "description"])
    assert sum(without[q] == b for q, b in BRAND_QUERIES.items()) <= 2, without
    assert top_brands(doc_template="products") == BRAND_QUERIES, "the template by name"


def test_stored_search_template_passes_passage_options(engine_stack, long_index):
    sidecar_url = engine_stack.sidecar
    engine_stack.require("lang-mustache")
    body = {"id": "rescore-bm25", "params": {"query_text": QUERY, "size": 3, "rerank": True, "fusion": "replace",
                                             "passages": {"max_tokens": 256, "aggregate": "max"}}}
    response = requests.post(f"{sidecar_url}/{long_index}/_search/template", json=body, timeout=300)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ext"]["rerank"]["passages"]["docs_split"] >= 1 and ids(result)[0] == "solar"


def test_template_fields_are_fetched_even_when_the_source_filter_drops_them(engine_stack, product_index):
    sidecar_url = engine_stack.sidecar
    query = "Hoka running shoes"
    body = {"query": {"multi_match": {"query": query, "fields": ["title", "description"]}}, "size": 3,
            "_source": ["title"], "ext": {"rerank": {"query_context": {"query_text": query}, "fusion": "replace"}}}
    response = search(sidecar_url, product_index, body)
    top = response["hits"]["hits"][0]
    assert top["_id"] == "p01" and top["_source"] == {"title": "Max-Cushion Road Running Shoe"}


@pytest.mark.parametrize("body,field", [
    (long_body(passages={"max_tokens": 4}), "ext.rerank.passages.max_tokens"),
    (long_body(passages={"aggregate": "median"}), "ext.rerank.passages.aggregate"),
    (long_body(passages={"chunk": 3}), "ext.rerank.passages.chunk"),
    (long_body(doc_template="{title"), "ext.rerank.doc_template"),
    ({"query": {"match_all": {}}, "rescore": {"rerank": {"query_text": QUERY, "passages": {"top_k": 99}}}},
     "rescore.rerank.passages.top_k"),
])
def test_bad_passage_and_template_options_are_422_naming_the_field(engine_stack, long_index, body, field):
    sidecar_url = engine_stack.sidecar
    response = requests.post(f"{sidecar_url}/{long_index}/_search", json=body, timeout=60)
    assert response.status_code == 422 and response.json()["field"] == field


def test_rescore_api_takes_passages_and_templates(sidecar_url):
    documents = [d["text"] for d in long_documents()]
    response = requests.post(f"{sidecar_url}/v1/rescore", json={
        "query": QUERY, "documents": documents, "fusion": "replace", "passages": {"max_passages": 8}}, timeout=300)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["hits"][0]["_source"]["text"] == documents[list(TAILS).index("solar")]
    assert "photovoltaic" in body["hits"][0]["highlight"]["_rerank_passage"][0]
    assert body["ext"]["rerank"]["passages"]["docs_split"] == len(TAILS)
    bad = requests.post(f"{sidecar_url}/v1/rescore", json={"query": QUERY, "documents": ["a"],
                                                          "passages": {"overlap": -1}}, timeout=60)
    assert bad.status_code == 422 and bad.json()["field"] == "body.passages.overlap"
