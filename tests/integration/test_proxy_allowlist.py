"""RESCORE_PROXY_ALLOW through real sidecars in front of a real OpenSearch: the default refuses
administration with a 403 naming the setting and the group; `all` forwards everything."""
from __future__ import annotations

import pytest
import requests

from tests.conftest import start_sidecar, stop_process

pytestmark = pytest.mark.integration

# (method, raw path, body, group the default refuses)
ADMIN_CALLS = [
    ("DELETE", "/allow-victim", None, "index_admin"),
    ("PUT", "/allow-created", {"settings": {"number_of_replicas": 0}}, "index_admin"),
    ("PUT", "/allow-victim/_mapping", {"properties": {"x": {"type": "keyword"}}}, "index_admin"),
    ("POST", "/_aliases", {"actions": [{"add": {"index": "allow-victim", "alias": "allow-alias"}}]}, "index_admin"),
    ("PUT", "/_cluster/settings", {"transient": {"cluster.routing.allocation.enable": "all"}}, "cluster_admin"),
    ("PUT", "/_ingest/pipeline/allow-p", {"processors": []}, "cluster_admin"),
    ("GET", "/_plugins/_ml/profile", None, "plugins"),
    ("PUT", "/_scripts/allow-script", {"script": {"lang": "mustache", "source": "{}"}}, "scripts"),
    ("GET", "/_snapshot", None, "snapshot"),
    ("POST", "/allow-victim/_close", None, "index_admin"),
]


@pytest.fixture
def victim(opensearch_url):
    requests.delete(f"{opensearch_url}/allow-victim,allow-created", timeout=30)
    requests.put(f"{opensearch_url}/allow-victim", json={"settings": {"number_of_replicas": 0}}, timeout=30)
    requests.put(f"{opensearch_url}/allow-victim/_doc/1?refresh=true", json={"text": "kept"}, timeout=30)
    yield "allow-victim"
    requests.delete(f"{opensearch_url}/allow-victim,allow-created", timeout=30)
    requests.delete(f"{opensearch_url}/_scripts/allow-script", timeout=30)
    requests.delete(f"{opensearch_url}/_ingest/pipeline/allow-p", timeout=30)


def test_the_default_refuses_administration_and_forwards_search_read_and_documents(opensearch_url, sidecar_url,
                                                                                   victim):
    for method, path, body, group in ADMIN_CALLS:
        response = requests.request(method, sidecar_url + path, json=body, timeout=30)
        assert response.status_code == 403, (method, path, response.text)
        error = response.json()
        assert error["error_type"] == "proxy_forbidden" and error["group"] == group, (path, error)
        assert error["field"] == "RESCORE_PROXY_ALLOW" and "RESCORE_PROXY_ALLOW" in error["error"]
    dotted = requests.put(f"{sidecar_url}/_search/%2e%2e/_cluster/settings", timeout=30,
                          json={"transient": {"cluster.routing.allocation.enable": "all"}})
    assert dotted.status_code == 403 and dotted.json()["group"] == "cluster_admin", dotted.text
    assert requests.get(f"{opensearch_url}/{victim}/_doc/1", timeout=30).json()["found"] is True
    assert requests.head(f"{opensearch_url}/allow-created", timeout=30).status_code == 404
    allowed = [("GET", f"/{victim}/_search", None), ("GET", f"/{victim}/_doc/1", None),
               ("PUT", f"/{victim}/_doc/2", {"text": "new"}), ("POST", f"/{victim}/_refresh", None),
               ("GET", f"/{victim}/_mapping", None), ("GET", "/_cat/indices", None), ("GET", "/", None),
               ("POST", f"/{victim}/_update/2", {"doc": {"text": "newer"}}), ("DELETE", f"/{victim}/_doc/2", None)]
    for method, path, body in allowed:
        assert requests.request(method, sidecar_url + path, json=body, timeout=30).status_code in (200, 201), path


def test_wildcard_deletes_need_their_own_group_even_percent_encoded(opensearch_url, victim):
    proc, url, _ = start_sidecar(opensearch_url, RESCORE_PROXY_ALLOW="search,read,document,index_admin",
                                 RESCORE_PRELOAD_MODEL="false")
    try:
        for path in ("/allow-vic*", "/_all", "/%2A", "/allow-vic%2a", "/allow-victim,allow-v*"):
            response = requests.delete(url + path, timeout=30)
            assert response.status_code == 403 and response.json()["group"] == "wildcard_delete", path
        dbq = requests.post(f"{url}/allow-*/_delete_by_query", json={"query": {"match_all": {}}}, timeout=30)
        assert dbq.status_code == 403 and dbq.json()["group"] == "wildcard_delete"
        assert requests.get(f"{opensearch_url}/{victim}/_count", timeout=30).json()["count"] == 1
        assert requests.delete(f"{url}/{victim}", timeout=30).status_code == 200  # a named index: index_admin
    finally:
        stop_process(proc)


def test_all_opens_every_group(opensearch_url, open_sidecar_url, victim):
    for method, path, body, _ in reversed(ADMIN_CALLS):  # close the index before deleting it
        through = requests.request(method, open_sidecar_url + path, json=body, timeout=30)
        assert through.status_code == 200 and "proxy_forbidden" not in through.text, (method, path, through.text[:300])
    assert requests.head(f"{opensearch_url}/allow-created", timeout=30).status_code == 200
    assert requests.get(f"{opensearch_url}/_scripts/allow-script", timeout=30).json()["found"] is True
    assert requests.head(f"{opensearch_url}/{victim}", timeout=30).status_code == 404
    assert requests.delete(f"{open_sidecar_url}/allow-*", timeout=30).status_code == 200
    assert requests.head(f"{opensearch_url}/allow-created", timeout=30).status_code == 404
