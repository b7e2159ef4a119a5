"""Client conformance (README "Elasticsearch clients"): one typical app per client, through the sidecar and direct.

The app (scripts/client_conformance/app.py) runs in a subprocess with elasticsearch-py 7.17 (+ elasticsearch-dsl
7), 8.19, 9.x (with its bundled DSL) or opensearch-py on PYTHONPATH, each installed once into its own cached
directory; matrix.py compares every operation with the same app run directly against the engine.
"""
import importlib.util
import sys

import pytest

from tests.conftest import ROOT, start_sidecar, stop_process

_spec = importlib.util.spec_from_file_location("client_matrix", ROOT / "scripts" / "client_conformance" / "matrix.py")
matrix = importlib.util.module_from_spec(_spec)
sys.modules["client_matrix"] = matrix
_spec.loader.exec_module(matrix)

# What each client's search() cannot send through a parameter of its own (body= works for all of them).
NO_PARAMETER = {
    "es7": {"rerank_ext_params", "rerank_retriever_params"},
    "es8": set(),
    "es9": set(),
    "opensearch": {"rerank_ext_params", "rerank_rescore_params", "rerank_retriever_params"},
}
# elasticsearch-dsl 7 turns the body into 7.17's search() parameters, which have no `ext` nor `retriever`:
# the client raises TypeError before any request, direct or through the sidecar.
SAME_AS_DIRECT = {"es7": {"dsl_ext", "dsl_retriever"}, "es8": set(), "es9": set(), "opensearch": set()}


@pytest.fixture(scope="module")
def installed_clients() -> None:
    for name in matrix.CLIENTS:
        try:
            matrix.client_dir(name)
        except matrix.InstallFailed as exc:
            pytest.fail(str(exc))


def test_every_client_and_rerank_syntax_through_the_sidecar_in_front_of_opensearch(
        installed_clients, opensearch_url, open_sidecar_url):
    # The app creates and deletes its index: index_admin, which RESCORE_PROXY_ALLOW=all opens.
    cells = matrix.build_matrix("opensearch", opensearch_url, open_sidecar_url)
    print(matrix.format_matrix("opensearch", cells))
    assert not matrix.failures(cells)
    for client, row in cells.items():
        assert {op for op, cell in row.items() if cell.verdict == "n/a"} == NO_PARAMETER[client], client
        assert {op for op, cell in row.items() if cell.verdict == "same"} == SAME_AS_DIRECT[client], client
        assert all(row[op].verdict == "ok" for op in matrix.RERANK_OPS - NO_PARAMETER[client]
                   - SAME_AS_DIRECT[client]), client
    # Direct, OpenSearch refuses what the Elastic clients send (or they refuse OpenSearch): the sidecar is
    # what makes these cells ok.
    assert cells["es7"]["search"].detail == "direct UnsupportedProductError"
    assert cells["es8"]["search"].detail == "direct ApiError 406"
    assert cells["es9"]["bulk"].detail == "direct ApiError 406"
    assert cells["opensearch"]["search"].detail == "direct ok"


@pytest.fixture(scope="module")
def sidecar_before_elasticsearch(elasticsearch_url):
    # The app creates and deletes its index: index administration on top of the default groups.
    proc, url, _ = start_sidecar(elasticsearch_url, RESCORE_PROXY_ALLOW="search,read,document,index_admin")
    try:
        yield url
    finally:
        stop_process(proc)


def test_every_client_through_the_sidecar_in_front_of_elasticsearch(
        installed_clients, elasticsearch_url, sidecar_before_elasticsearch):
    cells = matrix.build_matrix("elasticsearch", elasticsearch_url, sidecar_before_elasticsearch)
    print(matrix.format_matrix("elasticsearch", cells))
    assert not matrix.failures(cells)
    for client, row in cells.items():
        assert {op for op, cell in row.items() if cell.verdict == "n/a"} == NO_PARAMETER[client], client
        for op, cell in row.items():
            if cell.verdict == "same" and op not in SAME_AS_DIRECT[client]:
                # Only what the engine itself cannot do (the integ-test zip lacks modules) may fail.
                assert "the engine lacks the" in cell.detail, (client, op, cell.detail)
    # 8.x/9.x and opensearch-py need no GET / (which this Elasticsearch may lack): every search, plain or
    # reranked in any syntax, works through the sidecar.
    for client in ("es8", "es9", "opensearch"):
        for op in ("search", "count", "scan", "fresh_client_rerank", "msearch_rerank", "rerank_ext_body",
                   "rerank_rescore_body", "rerank_retriever_body", "rerank_ext_compressed", "dsl_rescore"):
            assert cells[client][op].verdict == "ok", (client, op, cells[client][op])
