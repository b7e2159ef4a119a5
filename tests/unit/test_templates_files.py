import json

import pytest

from sidecar.engine import ENGINES
from sidecar.search.first_stage import UnknownMode, template_request
from sidecar.search.templates import MODES, index_body

OS, ES = ENGINES["opensearch"], ENGINES["elasticsearch"]


@pytest.mark.parametrize("engine", [OS, ES], ids=lambda e: e.name)
def test_every_mode_has_its_template_and_pipeline_files(engine):
    templates, pipes = engine.search_templates(), engine.search_pipelines()
    assert set(engine.modes) == set(MODES)
    for mode, (template_id, pipeline) in engine.modes.items():
        assert template_id in templates, mode
        assert pipeline is None or pipeline in pipes, mode


def test_elasticsearch_index_body_has_dense_vector_and_no_knn_setting():
    body = index_body(dimension=8, engine=ES)
    assert body["mappings"]["properties"]["embedding"] == {
        "type": "dense_vector", "dims": 8, "index": True, "similarity": "cosine",
        "index_options": {"type": "hnsw", "m": 16, "ef_construction": 128}}
    assert "knn" not in body["settings"]["index"]
    assert index_body(dimension=8, engine=OS)["mappings"]["properties"]["embedding"]["type"] == "knn_vector"
    # A long document's passage vectors: a nested field whose vector is converted (and resized) too.
    nested = body["mappings"]["properties"]["embedding_passages"]
    assert nested["type"] == "nested" and nested["properties"]["embedding"]["type"] == "dense_vector"
    assert nested["properties"]["embedding"]["dims"] == 8
    os_nested = index_body(dimension=8, engine=OS)["mappings"]["properties"]["embedding_passages"]["properties"]
    assert os_nested["embedding"]["type"] == "knn_vector" and os_nested["embedding"]["dimension"] == 8


def test_index_body_has_lucene_hnsw_vector_and_dimension_override():
    body = index_body(dimension=8)
    vector = body["mappings"]["properties"]["embedding"]
    assert vector["type"] == "knn_vector" and vector["dimension"] == 8
    assert vector["method"]["engine"] == "lucene" and vector["method"]["name"] == "hnsw"
    assert body["settings"]["index"]["knn"] is True


def test_pipelines_are_normalization_and_rrf():
    pipes = OS.search_pipelines()
    minmax = pipes["rescore-hybrid-minmax"]["phase_results_processors"][0]["normalization-processor"]
    assert minmax["normalization"]["technique"] == "min_max"
    assert sum(minmax["combination"]["parameters"]["weights"]) == pytest.approx(1.0)
    rrf = pipes["rescore-hybrid-rrf"]["phase_results_processors"][0]["score-ranker-processor"]
    assert rrf["combination"]["technique"] == "rrf"


def test_template_request_per_mode():
    body, query = template_request("bm25", "q", engine=OS, size=5, from_=10)
    assert body == {"id": "rescore-bm25", "params": {"query_text": "q", "size": 5, "from": 10}}
    assert query == {}
    body, query = template_request("hybrid-rrf", "q", engine=OS, size=5, query_vector=[0.1, 0.2])
    assert body["id"] == "rescore-hybrid" and body["params"]["query_vector"] == [0.1, 0.2]
    assert body["params"]["k"] == 10
    assert query == {"search_pipeline": "rescore-hybrid-rrf"}
    body, query = template_request("hybrid-rrf", "q", engine=ES, size=5, query_vector=[0.1, 0.2])
    assert body["id"] == "rescore-hybrid-rrf" and query == {}


def test_template_request_rejects_unknown_mode_and_missing_vector():
    with pytest.raises(UnknownMode, match="bm26"):
        template_request("bm26", "q", engine=OS)
    with pytest.raises(ValueError, match="query vector"):
        template_request("knn", "q", engine=ES)


def test_mapping_file_is_valid_json():
    from sidecar.search.templates import TEMPLATES_DIR
    json.loads((TEMPLATES_DIR / "index" / "documents.json").read_text())


def test_engine_detection_from_the_root_endpoint():
    from sidecar.engine import detect

    opensearch = b'{"version": {"distribution": "opensearch", "number": "3.6.0"}}'
    assert detect(200, [("content-type", "application/json")], opensearch) is OS
    assert detect(405, [("X-elastic-product", "Elasticsearch")], b'{"error": "..."}') is ES
    assert detect(200, {}, b'{"version": {"number": "9.5.3"}, "tagline": "You Know, for Search"}') is ES
    assert detect(401, [("WWW-Authenticate", 'Basic realm="security", charset="UTF-8"')], b"{}") is ES
    assert detect(401, [("WWW-Authenticate", 'Basic realm="OpenSearch Security"')], b"Unauthorized") is OS


@pytest.mark.parametrize("engine", [OS, ES], ids=lambda e: e.name)
def test_documents_index_analyses_title_and_text_as_english(engine):
    # The built-in `english` analyzer of both engines (BEIR's BM25 analysis; README "Robustness and fusion defaults").
    properties = index_body(dimension=8, engine=engine)["mappings"]["properties"]
    assert properties["title"]["analyzer"] == "english" and properties["text"]["analyzer"] == "english"
    assert properties["title"]["fields"]["raw"] == {"type": "keyword", "ignore_above": 512}
