"""What the sidecar does not rerank behaves exactly like the engine; reranked searches honour engine params.

Real OpenSearch and real gunicorn sidecars throughout; a recording upstream (tests/servers.py)
only where the test is about what the engine receives.
"""
from __future__ import annotations

import json
import time

import pytest
import requests
import yaml

from sidecar import create_app
from sidecar.config import Settings
from tests.conftest import start_sidecar, stop_process
from tests.servers import RecordingServer

pytestmark = pytest.mark.integration

RERANK = {"query_context": {"query_text": "coffee brewing"}, "fields": ["title", "text"], "window_size": 10}
RERANKED = {"query": {"match": {"text": "coffee"}}, "size": 3, "ext": {"rerank": RERANK}}


@pytest.fixture(scope="module")
def tight_sidecar(opensearch_url):
    """A sidecar with a 2 s engine timeout and a 200 kB body limit (no model preload)."""
    proc, url, _ = start_sidecar(opensearch_url, RESCORE_OPENSEARCH_TIMEOUT_S="2", RESCORE_MAX_BODY_BYTES="200000",
                                 RESCORE_PRELOAD_MODEL="false")
    try:
        yield url
    finally:
        stop_process(proc)


def test_percent_encoded_date_math_index_reaches_the_engine_as_sent(opensearch_url, open_sidecar_url):
    sidecar_url = open_sidecar_url  # index creation is index_admin: RESCORE_PROXY_ALLOW=all
    path = "/%3Cfidelity-%7Bnow%2FM%7D%3E"
    created = requests.put(sidecar_url + path, json={"settings": {"number_of_replicas": 0}}, timeout=60)
    try:
        assert created.status_code == 200, created.text
        name = created.json()["index"]
        assert name.startswith("fidelity-") and "{" not in name
        assert requests.head(f"{opensearch_url}/{name}", timeout=10).status_code == 200
        missing_direct = requests.get(f"{opensearch_url}/%3Cnope-%7Bnow%2FM%7D%3E/_search", timeout=10)
        missing_proxied = requests.get(f"{sidecar_url}/%3Cnope-%7Bnow%2FM%7D%3E/_search", timeout=10)
        assert missing_proxied.status_code == missing_direct.status_code == 404
        assert missing_proxied.json()["error"]["type"] == missing_direct.json()["error"]["type"]
    finally:
        requests.delete(sidecar_url + path, timeout=60)


def test_head_keeps_the_engines_content_length(opensearch_url, sidecar_url, demo_index):
    for path in ("/", f"/{demo_index}", "/no-such-index", f"/{demo_index}/_doc/espresso"):
        direct = requests.head(opensearch_url + path, timeout=10)
        proxied = requests.head(sidecar_url + path, timeout=10)
        assert proxied.status_code == direct.status_code, path
        assert proxied.headers.get("Content-Length") == direct.headers.get("Content-Length"), path


def test_pass_through_adds_no_opaque_id_and_keeps_the_raw_target():
    with RecordingServer() as upstream:
        # engine set: no detection call (GET /) before the two recorded here
        app = create_app(Settings.from_env({}, opensearch_url=upstream.url, preload_model=False, engine="opensearch"))
        client = app.test_client()
        client.get("/%3Clogs-%7Bnow%2Fd%7D%3E/_search?q=a%2Bb&filter_path=took")
        client.get("/x/_doc/1", headers={"X-Opaque-Id": "mine"})
    # (engine detection may add its own GET / first: only the forwarded requests matter here)
    forwarded = [r for r in upstream.requests if r[1] != "/"]
    (_, first_path, first_headers), (_, _, second_headers) = forwarded
    assert first_path == "/%3Clogs-%7Bnow%2Fd%7D%3E/_search?q=a%2Bb&filter_path=took"
    assert "x-opaque-id" not in {k.lower() for k in first_headers}
    assert {k.lower(): v for k, v in second_headers.items()}["x-opaque-id"] == "mine"


def test_read_timeout_covers_what_the_request_asks_the_engine_to_wait(opensearch_url, tight_sidecar):
    # The engine waits 4 s for 5 nodes (there is one) and answers 408; the sidecar's own timeout is 2 s.
    query = "/_cluster/health?wait_for_nodes=5&timeout=4s"
    direct = requests.get(opensearch_url + query, timeout=30)
    started = time.monotonic()
    proxied = requests.get(tight_sidecar + query, timeout=30)
    assert proxied.status_code == direct.status_code == 408, proxied.text
    assert time.monotonic() - started >= 3.5
    assert proxied.json()["timed_out"] is True


def test_chunked_bulk_over_the_limit_is_413_and_indexes_nothing(opensearch_url, tight_sidecar):
    index = "chunked-over-limit"

    def lines():
        for i in range(400):
            yield (json.dumps({"index": {"_index": index, "_id": str(i)}}) + "\n"
                   + json.dumps({"text": "x" * 1000}) + "\n").encode()

    resp = requests.post(f"{tight_sidecar}/_bulk?refresh=true", data=lines(),
                         headers={"Content-Type": "application/x-ndjson"}, timeout=60)
    assert resp.status_code == 413 and resp.json()["field"] == "body"
    assert requests.head(f"{opensearch_url}/{index}", timeout=10).status_code == 404

    def small():
        for i in range(20):
            yield (json.dumps({"index": {"_index": index, "_id": str(i)}}) + "\n"
                   + json.dumps({"text": "y"}) + "\n").encode()

    ok = requests.post(f"{tight_sidecar}/_bulk?refresh=true", data=small(),
                       headers={"Content-Type": "application/x-ndjson"}, timeout=60)
    try:
        assert ok.status_code == 200 and ok.json()["errors"] is False
        assert requests.get(f"{opensearch_url}/{index}/_count", timeout=10).json()["count"] == 20
    finally:
        requests.delete(f"{opensearch_url}/{index}", timeout=30)


def _rerank(sidecar_url: str, index: str, query: str, **kwargs) -> requests.Response:
    return requests.post(f"{sidecar_url}/{index}/_search{query}", json=RERANKED, timeout=120, **kwargs)


def test_filter_path_format_and_pretty_shape_the_final_reranked_response(sidecar_url, demo_index):
    full = _rerank(sidecar_url, demo_index, "").json()
    assert full["ext"]["rerank"]["status"] == "ok"
    ids = [h["_id"] for h in full["hits"]["hits"]]
    took = _rerank(sidecar_url, demo_index, "?filter_path=took").json()
    assert list(took) == ["took"]
    only_ids = _rerank(sidecar_url, demo_index, "?filter_path=hits.hits._id,ext.rerank.status").json()
    assert only_ids == {"hits": {"hits": [{"_id": i} for i in ids]}, "ext": {"rerank": {"status": "ok"}}}
    as_yaml = _rerank(sidecar_url, demo_index, "?format=yaml")
    assert as_yaml.headers["Content-Type"].startswith("application/yaml")
    assert [h["_id"] for h in yaml.safe_load(as_yaml.text)["hits"]["hits"]] == ids
    accept_yaml = _rerank(sidecar_url, demo_index, "", headers={"Accept": "application/yaml"})
    assert yaml.safe_load(accept_yaml.text)["ext"]["rerank"]["status"] == "ok"
    pretty = _rerank(sidecar_url, demo_index, "?pretty")
    assert pretty.text.startswith("{\n") and json.loads(pretty.text)["hits"]["hits"][0]["_id"] == ids[0]


@pytest.mark.parametrize("query", ["?ignore=404", "?request_timeout=5", "?timeout=soon", "?no_such_param=1"])
def test_params_the_engine_refuses_get_the_engines_answer(opensearch_url, sidecar_url, demo_index, query):
    direct = requests.post(f"{opensearch_url}/{demo_index}/_search{query}", json={"query": {"match_all": {}}},
                           timeout=30)
    proxied = _rerank(sidecar_url, demo_index, query)
    assert proxied.status_code == direct.status_code == 400
    assert proxied.json()["error"]["type"] == direct.json()["error"]["type"]


def test_timeout_is_the_engines_search_timeout(sidecar_url, demo_index):
    resp = _rerank(sidecar_url, demo_index, "?timeout=2s")
    assert resp.status_code == 200, resp.text
    assert resp.json()["timed_out"] is False and resp.json()["ext"]["rerank"]["status"] == "ok"


def test_msearch_template_with_an_unknown_id_fails_only_that_entry(sidecar_url, demo_index):
    lines = [{"index": demo_index}, {"id": "no-such-template", "params": {"rerank": True}},
             {"index": demo_index}, {"source": {"query": {"match": {"text": "{{q}}"}}, "size": 3,
                                                "ext": {"rerank": {**RERANK, "query_context": {"query_text": "{{q}}"}}}},
                                     "params": {"q": "coffee"}}]
    data = "".join(json.dumps(line) + "\n" for line in lines)
    resp = requests.post(f"{sidecar_url}/_msearch/template", data=data,
                         headers={"Content-Type": "application/x-ndjson"}, timeout=120)
    assert resp.status_code == 200, resp.text
    first, second = resp.json()["responses"]
    assert first["status"] == 404 and "error" in first
    assert second["status"] == 200 and second["ext"]["rerank"]["status"] == "ok"


def test_yaml_search_bodies_pass_through_like_the_engine(opensearch_url, sidecar_url, demo_index):
    body = "query:\n  match:\n    text: coffee\next:\n  rerank:\n    query_text: coffee\n"
    headers = {"Content-Type": "application/yaml"}
    direct = requests.post(f"{opensearch_url}/{demo_index}/_search", data=body, headers=headers, timeout=30)
    proxied = requests.post(f"{sidecar_url}/{demo_index}/_search", data=body, headers=headers, timeout=30)
    assert proxied.status_code == direct.status_code
    assert proxied.headers.get("Content-Type") == direct.headers.get("Content-Type")
