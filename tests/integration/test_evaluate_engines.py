"""`rescore evaluate` on Elasticsearch without lang-mustache (the integ-test-zip): the stored
template files rendered by the engine layer, run plain and through the sidecar; and that this
rendering is the engine's own, checked against OpenSearch's _render/template."""
from __future__ import annotations

import json

import pytest

from sidecar.engine import ENGINES
from sidecar.search import first_stage
from sidecar.search.templates import MODES
from tests.integration.test_cli_integration import rescore, write_tiny_beir

pytestmark = pytest.mark.integration


def test_local_rendering_matches_the_engines_render_template(os_client, demo_index):
    engine = ENGINES["opensearch"]
    params = {"size": 7, "from": 0, "query_vector": [0.25, -1.5, 3e-05], "k": 9, "rerank": True,
              "window_size": 20, "fusion": "rrf", "passages": {"enabled": True, "aggregate": "mean"}}
    for mode in MODES:
        for extra in ({}, params):
            body, _ = first_stage.template_request(mode, 'tube "inner" \\ fix\n', engine=engine, size=7,
                                                   query_vector=[0.25, -1.5, 3e-05], k=9)
            body["params"].update(extra)
            rendered = os_client.transport.perform_request("POST", "/_render/template", body=body)
            assert engine.search_body(mode, body["params"]) == rendered["template_output"], (mode, extra)


@pytest.fixture
def es_index(es_client):
    name = "eval-es-tiny"
    yield name
    es_client.indices.delete(index=name, ignore=[404])


def test_evaluate_on_elasticsearch_without_templates(elasticsearch_url, es_client, es_sidecar_url, es_index,
                                                     tmp_path):
    modules = {m["name"] for node in es_client.nodes.info(metric="plugins")["nodes"].values()
               for m in node.get("modules", []) + node.get("plugins", [])}
    if "lang-mustache" in modules:
        pytest.skip("this Elasticsearch has lang-mustache: the stored templates run there")
    dataset = write_tiny_beir(tmp_path / "tiny")
    out, runs = tmp_path / "metrics.json", tmp_path / "runs"
    result = rescore("evaluate", "--url", elasticsearch_url, "--dataset", str(dataset), "--index", es_index,
                     "--modes", "bm25,knn,bm25+rerank,knn+rerank", "--sidecar", es_sidecar_url,
                     "--out", str(out), "--runs-out", str(runs))
    assert result.returncode == 0, result.stderr
    assert "stored templates refused by elasticsearch" in result.stderr
    metrics = json.loads(out.read_text())
    assert list(metrics) == ["bm25", "knn", "bm25+rerank", "knn+rerank"]
    for mode, values in metrics.items():
        assert set(values) == {"NDCG@10", "MRR@10", "Recall@100"}, mode
        # Each query paraphrases its one relevant document: every mode finds all three in the top 10.
        assert values["Recall@100"] == 1.0 and 0.6 < values["NDCG@10"] <= 1.0, (mode, values)
    bm25 = json.loads((runs / "bm25.json").read_text())
    reranked = json.loads((runs / "bm25+rerank.json").read_text())
    assert bm25.keys() == reranked.keys() and all(bm25[q] for q in bm25)
    # Same candidates, reordered by the model: the sidecar reranked what Elasticsearch found.
    assert all(sorted(bm25[q]) == sorted(reranked[q]) for q in bm25)
    assert any(bm25[q] != reranked[q] for q in bm25)
    assert es_client.count(index=es_index)["count"] == 30


def test_evaluate_hybrid_without_rank_rrf_names_the_module(elasticsearch_url, es_client, tmp_path):
    modules = {m["name"] for node in es_client.nodes.info(metric="plugins")["nodes"].values()
               for m in node.get("modules", []) + node.get("plugins", [])}
    if "rank-rrf" in modules:
        pytest.skip("this Elasticsearch has rank-rrf: hybrid modes run there")
    dataset = write_tiny_beir(tmp_path / "tiny")
    for mode in ("hybrid", "hybrid-rrf+rerank"):
        result = rescore("evaluate", "--url", elasticsearch_url, "--dataset", str(dataset), "--modes", mode)
        assert result.returncode == 2, result.stderr
        assert f"mode {mode.split('+')[0]} needs the elasticsearch module rank-rrf" in result.stderr
