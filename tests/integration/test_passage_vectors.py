"""kNN reads a long document whole: passage vectors at ingest, the stored templates take the best one.

The long documents of test_long_documents (~1,900 tokens of unrelated text, the answer last): the
embedder reads 512 tokens, so the whole-document `embedding` never sees the answer; each document
longer than that also gets `embedding_passages` (a nested field of passage vectors), and the
shipped knn and hybrid templates score a document by the best of its vectors.
"""
from __future__ import annotations

import json

import pytest

from tests.integration.test_long_documents import QUERY, TAILS, long_documents

pytestmark = pytest.mark.integration

INDEX = "passage-vectors-test"
OLD_INDEX = "passage-vectors-old-mapping"


@pytest.fixture(scope="module")
def indexed(os_client, embedder):
    from opensearchpy import helpers

    from sidecar.search.ingest import PASSAGE_VECTORS, ingest, maps_passages
    from sidecar.search.templates import index_body, install

    docs = long_documents(filler_words=900) + [{
        "_id": "short", "title": "Wind turbines",
        "text": "Wind turbines turn the kinetic energy of moving air into electricity."}]
    install(os_client, INDEX, recreate=True, dimension=embedder.dimension)
    report = ingest(os_client, INDEX, [json.dumps(d) for d in docs], embedder=embedder)
    assert report.indexed == len(docs) and not report.rejected
    # An index made before the nested field existed: ingest leaves it as it was (no passage
    # vectors); its documents here are the same ones without them.
    os_client.indices.delete(index=OLD_INDEX, ignore=[404])
    body = index_body(dimension=embedder.dimension)
    del body["mappings"]["properties"][PASSAGE_VECTORS]
    os_client.indices.create(index=OLD_INDEX, body=body)
    assert maps_passages(os_client, INDEX) and not maps_passages(os_client, OLD_INDEX)
    sources = {d["_id"]: os_client.get(index=INDEX, id=d["_id"])["_source"] for d in docs}
    helpers.bulk(os_client, [{"_index": OLD_INDEX, "_id": i, "_source": {k: v for k, v in s.items() if k != PASSAGE_VECTORS}}
                             for i, s in sources.items()], refresh=True)
    yield sources
    for name in (INDEX, OLD_INDEX):
        os_client.indices.delete(index=name, ignore=[404])


def ranked(os_client, embedder, index: str, mode: str) -> list[str]:
    from sidecar.search import first_stage

    response = first_stage.search(os_client, index, mode, QUERY, embedder=embedder, size=10)
    hits = response["hits"]["hits"]
    assert all("embedding" not in h["_source"] and "embedding_passages" not in h["_source"] for h in hits)
    return [h["_id"] for h in hits]


def test_long_documents_get_passage_vectors_short_ones_do_not(indexed):
    for doc_id, source in indexed.items():
        assert len(source["embedding"]) == 384
        passages = source.get("embedding_passages", [])
        if doc_id == "short":
            assert passages == [], "a text the embedder reads whole has its one vector"
            continue
        assert 4 <= len(passages) <= 8, len(passages)
        text = source["text"]  # no title: the embedded text is the text itself
        last = passages[-1]
        assert text[last["start"]:last["end"]].endswith(TAILS[doc_id][-40:]), "the last passage covers the end"
        assert passages[0]["start"] == 0 and all(len(p["embedding"]) == 384 for p in passages)


@pytest.mark.parametrize("mode", ["knn", "hybrid"])
def test_knn_finds_a_long_document_by_its_last_passage(os_client, embedder, indexed, mode):
    """Fails with the whole-document vector alone: its 512 tokens hold none of the answer."""
    assert ranked(os_client, embedder, INDEX, mode)[0] == "solar"
    # The same query on the index without passage vectors (templates ignore the missing field).
    before = ranked(os_client, embedder, OLD_INDEX, "knn")
    assert before[0] != "solar" and before.index("solar") >= 2, before


def test_without_passage_vectors_the_templates_score_exactly_as_the_plain_knn_query(os_client, embedder, indexed):
    """An index with no passage vectors (made before them, or of texts that fit) ranks and scores as
    before; so does a document without them in an index that has some."""
    from sidecar.search import first_stage

    vector = embedder.embed_query(QUERY)

    def plain(index: str) -> dict[str, float]:
        body = {"size": 10, "query": {"knn": {"embedding": {"vector": vector, "k": 10}}}}
        return {h["_id"]: h["_score"] for h in os_client.search(index=index, body=body)["hits"]["hits"]}

    def templated(index: str) -> dict[str, float]:
        hits = first_stage.search(os_client, index, "knn", QUERY, embedder=embedder, size=10)["hits"]["hits"]
        return {h["_id"]: h["_score"] for h in hits}

    assert templated(OLD_INDEX) == plain(OLD_INDEX)
    assert templated(INDEX)["short"] == plain(INDEX)["short"]
