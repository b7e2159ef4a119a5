"""The sidecar in front of OpenSearch changes nothing for ordinary requests."""
import gzip
import json

import pytest
import requests
from opensearchpy import OpenSearch

pytestmark = pytest.mark.integration


def normalized(response: requests.Response):
    """Parse a response body and drop what legitimately differs between two identical calls."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    return _drop_took(body)


def _drop_took(value):
    if isinstance(value, dict):
        return {k: _drop_took(v) for k, v in value.items() if k != "took"}
    if isinstance(value, list):
        return [_drop_took(v) for v in value]
    return value


READ_REQUESTS = [
    ("GET", "/", None, None),
    ("GET", "/{index}/_search", None, {"query": {"match": {"text": "coffee"}}, "size": 3}),
    ("POST", "/{index}/_search", "size=2&sort=doc_id:asc", {"query": {"match_all": {}}}),
    ("GET", "/{index}/_doc/espresso", None, None),
    ("GET", "/{index}/_doc/no-such-doc", None, None),
    ("GET", "/no-such-index/_search", None, None),
    ("POST", "/{index}/_search", None, {"query": {"no_such_query": {}}}),
    ("GET", "/_cat/indices/{index}", "h=index,docs.count", None),
    ("GET", "/_cat/plugins", "v=true&s=component", None),
    ("GET", "/{index}/_count", None, {"query": {"match": {"title": "coffee"}}}),
    ("POST", "/{index}/_search/template", None,
     {"id": "rescore-bm25", "params": {"query_text": "solar panels", "size": 3}}),
    ("POST", "/_render/template", None, {"id": "rescore-bm25", "params": {"query_text": "x"}}),
    ("POST", "/{index}/_search/template", None,
     {"source": {"query": {"match": {"text": "{{q}}"}}, "size": "{{n}}"}, "params": {"q": "tomatoes", "n": 2}}),
    ("POST", "/_msearch/template", None, None),
    ("GET", "/{index}/_mapping", None, None),
]


def _send(base: str, method: str, path: str, query: str | None, body, index: str) -> requests.Response:
    url = base + path.format(index=index) + (f"?{query}" if query else "")
    if path == "/_msearch/template":
        lines = [{"index": index}, {"id": "rescore-bm25", "params": {"query_text": "coffee", "size": 2}},
                 {"index": index}, {"id": "rescore-bm25", "params": {"query_text": "marathon", "size": 2}}]
        data = "".join(json.dumps(line) + "\n" for line in lines)
        return requests.request(method, url, data=data, headers={"Content-Type": "application/x-ndjson"}, timeout=30)
    return requests.request(method, url, json=body, timeout=30)


@pytest.mark.parametrize("method, path, query, body", READ_REQUESTS,
                         ids=[f"{m} {p}{'?' + q if q else ''}" for m, p, q, _ in READ_REQUESTS])
def test_proxy_answers_like_opensearch(opensearch_url, sidecar_url, demo_index, method, path, query, body):
    direct = _send(opensearch_url, method, path, query, body, demo_index)
    proxied = _send(sidecar_url, method, path, query, body, demo_index)
    assert proxied.status_code == direct.status_code
    assert proxied.headers.get("content-type") == direct.headers.get("content-type")
    assert normalized(proxied) == normalized(direct)


def test_bulk_through_the_proxy_matches_direct(opensearch_url, sidecar_url):
    def bulk(base: str, index: str) -> requests.Response:
        lines = [{"index": {"_index": index, "_id": "b1"}}, {"text": "first"},
                 {"index": {"_index": index, "_id": "b2"}}, {"text": "second"},
                 {"delete": {"_index": index, "_id": "missing"}}]
        data = "".join(json.dumps(line) + "\n" for line in lines)
        return requests.post(f"{base}/_bulk?refresh=true", data=data,
                             headers={"Content-Type": "application/x-ndjson"}, timeout=30)

    direct, proxied = bulk(opensearch_url, "bulk-direct"), bulk(sidecar_url, "bulk-proxied")
    assert proxied.status_code == direct.status_code == 200

    def strip_index(body):
        for item in body["items"]:
            next(iter(item.values())).pop("_index")
        return body

    assert strip_index(normalized(proxied)) == strip_index(normalized(direct))
    assert requests.get(f"{opensearch_url}/bulk-proxied/_doc/b2", timeout=10).json()["_source"] == {"text": "second"}


def test_head_and_put_delete_pass_through(opensearch_url, open_sidecar_url):
    # Index creation and deletion are index_admin APIs: this sidecar opens them (RESCORE_PROXY_ALLOW=all).
    assert requests.head(f"{open_sidecar_url}/no-such-index", timeout=10).status_code == 404
    created = requests.put(f"{open_sidecar_url}/proxy-created", json={"settings": {"number_of_replicas": 0}},
                           timeout=30)
    assert created.status_code == 200 and created.json()["acknowledged"] is True
    assert requests.head(f"{open_sidecar_url}/proxy-created", timeout=10).status_code == 200
    assert requests.delete(f"{open_sidecar_url}/proxy-created", timeout=30).status_code == 200
    assert requests.head(f"{opensearch_url}/proxy-created", timeout=10).status_code == 404


def test_gzip_responses_are_relayed_compressed(opensearch_url, sidecar_url, demo_index):
    headers = {"Accept-Encoding": "gzip"}
    raw = requests.get(f"{sidecar_url}/{demo_index}/_doc/espresso", headers=headers, timeout=10, stream=True)
    assert raw.headers.get("content-encoding") == "gzip"
    body = json.loads(gzip.decompress(raw.raw.read(decode_content=False)))
    assert body["_source"]["title"] == "Pulling an espresso shot"


def test_opensearch_py_pointed_at_the_sidecar_works_unchanged(sidecar_url, demo_index):
    client = OpenSearch(hosts=[sidecar_url], timeout=30)
    assert client.ping()
    assert client.indices.exists(index=demo_index)
    result = client.search(index=demo_index, body={"query": {"match": {"title": "marathon"}}})
    assert result["hits"]["hits"][0]["_id"] == "marathon"
    rendered = client.search_template(index=demo_index, body={"id": "rescore-bm25", "params": {"query_text": "wind"}})
    assert rendered["hits"]["hits"][0]["_id"] == "wind"
    assert client.count(index=demo_index)["count"] == 30


def test_proxy_never_leaves_the_configured_host(sidecar_url):
    # A path that looks like a URL must still go to the configured OpenSearch, which 4xx's it.
    response = requests.get(f"{sidecar_url}//127.0.0.2:1/_search", timeout=10)
    assert response.status_code in (400, 404, 405)
    assert "error" in response.json()


def test_health_and_ready(sidecar_url):
    assert requests.get(f"{sidecar_url}/health", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{sidecar_url}/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["opensearch"]["reachable"] is True
