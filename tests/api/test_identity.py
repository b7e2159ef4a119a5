"""Whose credentials reach the engine, on every path (the app in front of a recording HTTP server).

The recorder stands in for the engine only to read the exact headers each call carries; what the
engine does with them is tested against a real Elasticsearch with security on
(tests/integration/test_identity_matrix.py).
"""
from __future__ import annotations

import base64
import json

import pytest

from sidecar import create_app
from sidecar.config import Settings
from tests.servers import RecordingServer

SERVICE = "Basic " + base64.b64encode(b"svc:svc-pw-Zq81").decode()
ALICE = "Basic " + base64.b64encode(b"alice:alice-pw").decode()
PROXY_KEY, API_KEY = "proxy-key-Hj55", "api-key-Kw92"
EMPTY_SEARCH = {"took": 1, "timed_out": False, "_scroll_id": "s1", "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": None, "hits": []}}
RERANK = {"query_context": {"query_text": "solar"}, "window_size": 5}
ANSWERS = {
    "/_render/template": {"template_output": {"query": {"match_all": {}}, "ext": {"rerank": RERANK}}},
    "/_scripts/stored-rerank": {"_id": "stored-rerank", "found": True,
                                "script": {"lang": "mustache", "source": "{\"ext\": {\"rerank\": {{#toJson}}r{{/toJson}}}}"}},
    "/_cat/indices": [{"index": "a", "docs.count": "1"}],
    "/idx/_search": EMPTY_SEARCH, "/_search/scroll": EMPTY_SEARCH,
    "/rescore-feedback/_search": {**EMPTY_SEARCH, "hits": {"hits": [{"_id": "e1", "_source": {
        "query_id": "q1", "doc_id": "d1", "position": 1, "click": True, "timestamp": "2026-11-30T00:00:00.000Z"}}]}},
}


def ndjson(*lines) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


# (method, path, json body or ndjson text): one request per path a caller can take to the engine.
CALLER_PATHS = [
    ("GET", "/idx/_doc/1", None),
    ("POST", "/idx/_search", {"query": {"match_all": {}}}),
    ("POST", "/idx/_count", {"query": {"match_all": {}}}),
    ("POST", "/idx/_search", {"query": {"match_all": {}}, "ext": {"rerank": RERANK}}),
    ("POST", "/idx/_search", {"query": {"match_all": {}}, "rescore": {"rerank": {"query_text": "solar"}}}),
    ("POST", "/idx/_search", {"retriever": {"text_similarity_reranker": {
        "retriever": {"standard": {"query": {"match_all": {}}}}, "inference_text": "solar", "field": "text"}}}),
    ("POST", "/idx/_search/template", {"source": "{}", "params": {"rerank": RERANK}}),
    ("POST", "/idx/_search/template", {"id": "stored-rerank", "params": {"r": RERANK}}),
    ("POST", "/_msearch", ndjson({"index": "idx"}, {"query": {"match_all": {}}, "ext": {"rerank": RERANK}},
                                 {"index": "idx"}, {"query": {"match_all": {}}})),
    ("POST", "/_msearch/template", ndjson({"index": "idx"}, {"source": "{}", "params": {"rerank": RERANK}},
                                          {"index": "idx"}, {"id": "plain", "params": {}})),
    ("POST", "/v1/compare", {"index": "idx", "template": "bm25", "query": "solar"}),
    ("GET", "/v1/compare/options", None),
    ("GET", "/v1/feedback/report", None),
]


def make_client(upstream: RecordingServer, **overrides):
    settings = Settings.from_env({}, opensearch_url=upstream.url, preload_model=False, opensearch_user="svc",
                                 opensearch_password="svc-pw-Zq81", opensearch_timeout_s=5, **overrides)
    app = create_app(settings)
    app.testing = True
    return app.test_client(use_cookies=False)  # the Cookie header as the caller sent it


def send(client, method: str, path: str, body, headers: dict[str, str]):
    if isinstance(body, str):
        return client.open(path, method=method, data=body, headers={**headers, "Content-Type": "application/x-ndjson"})
    return client.open(path, method=method, json=body, headers=headers)


@pytest.mark.parametrize("caller", [
    {"Authorization": ALICE},
    {"Authorization": "ApiKey ZXMtYXBpLWtleQ==", "Cookie": "security_authentication=abc"},
    {"Authorization": "Bearer engine-jwt", "es-security-runas-user": "bob", "securitytenant": "global"},
    {},
], ids=["basic", "apikey+cookie", "bearer+runas+tenant", "anonymous"])
def test_the_callers_credentials_and_only_those_reach_the_engine(caller):
    with RecordingServer(answers=ANSWERS) as upstream:
        client = make_client(upstream)
        for method, path, body in CALLER_PATHS:
            upstream.requests.clear()
            response = send(client, method, path, body, {**caller, "X-Other": "kept"})
            recorded = list(upstream.requests)
            assert response.status_code == 200, (path, response.get_data(as_text=True))
            assert recorded, f"nothing reached the engine for {path}"
            for _, target, headers in recorded:
                sent = {k.lower(): v for k, v in headers.items()}
                assert SERVICE not in json.dumps(headers), f"the sidecar's credentials went out with {target}"
                for name, value in caller.items():
                    assert sent.get(name.lower()) == value, (path, target, name)
                if "authorization" not in {k.lower() for k in caller}:
                    assert "authorization" not in sent, (path, target)
            if path.startswith(("/idx/_doc", "/idx/_count")):  # pass-through: every header as received
                assert {k.lower(): v for k, v in recorded[0][2].items()}.get("x-other") == "kept"


def test_feedback_writes_and_readiness_use_the_service_account_only():
    with RecordingServer(answers=ANSWERS) as upstream:
        client = make_client(upstream)
        stored = client.post("/v1/feedback", json={"query_id": "q1", "doc_id": "d1", "position": 1},
                             headers={"Authorization": ALICE})
        ready = client.get("/ready")
        recorded = upstream.requests
    assert stored.status_code == 200 and ready.status_code == 200
    auth = [{k.lower(): v for k, v in headers.items()}.get("authorization") for _, _, headers in recorded]
    assert len(auth) >= 3 and set(auth) == {SERVICE}, auth


def test_a_sidecar_key_is_never_forwarded_and_the_engine_credentials_still_are():
    with RecordingServer(answers=ANSWERS) as upstream:
        client = make_client(upstream, proxy_api_keys=PROXY_KEY, api_keys=API_KEY)
        upstream.requests.clear()  # start-up bookkeeping (engine detection) is the service account's
        rerank = {"query": {"match_all": {}}, "ext": {"rerank": RERANK}}
        statuses = [
            # The key as Authorization: consumed by the sidecar; the engine sees an anonymous caller.
            client.get("/idx/_doc/1", headers={"Authorization": f"Bearer {PROXY_KEY}"}).status_code,
            client.post("/idx/_search", json=rerank, headers={"Authorization": f"Bearer {PROXY_KEY}"}).status_code,
            # The key in X-Rescore-Api-Key: Authorization carries the engine credentials.
            client.get("/idx/_doc/2", headers={"X-Rescore-Api-Key": PROXY_KEY, "Authorization": ALICE}).status_code,
            client.post("/idx/_search", json=rerank,
                        headers={"X-Rescore-Api-Key": PROXY_KEY, "Authorization": ALICE}).status_code,
            client.get("/v1/compare/options", headers={"X-Rescore-Api-Key": API_KEY, "Authorization": ALICE}).status_code,
            # An engine bearer token that is not a sidecar key goes on unchanged.
            client.get("/idx/_doc/3", headers={"X-Rescore-Api-Key": PROXY_KEY,
                                               "Authorization": "Bearer engine-token"}).status_code,
        ]
        recorded = upstream.requests
    assert statuses == [200] * 6
    dumped = json.dumps(recorded)
    assert PROXY_KEY not in dumped and API_KEY not in dumped and SERVICE not in dumped
    by_target = [(target, {k.lower(): v for k, v in headers.items()}) for _, target, headers in recorded]
    assert "authorization" not in by_target[0][1] and "authorization" not in by_target[1][1]
    assert all(h.get("authorization") == ALICE for t, h in by_target[2:-1]), by_target
    assert by_target[-1][1]["authorization"] == "Bearer engine-token"
    assert all("x-rescore-api-key" not in h for _, h in by_target)


@pytest.mark.parametrize("keys", [{"proxy_api_keys": PROXY_KEY}, {"api_keys": API_KEY},
                                  {"api_keys": API_KEY, "proxy_api_keys": PROXY_KEY}], ids=["proxy", "api", "both"])
def test_own_engine_endpoints_need_a_key_whenever_any_key_is_set(keys):
    with RecordingServer(answers=ANSWERS) as upstream:
        client = make_client(upstream, **keys)
        for method, path in [("POST", "/v1/compare"), ("GET", "/v1/compare/options"), ("POST", "/v1/feedback"),
                             ("GET", "/v1/feedback/report")]:
            upstream.requests.clear()
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-Rescore-Api-Key": "wrong"},
                            {"Authorization": ALICE}):
                refused = client.open(path, method=method, json={}, headers=headers)
                assert refused.status_code == 401 and refused.get_json()["error_type"] == "unauthorized", headers
            assert upstream.requests == []
            for key in keys.values():
                for headers in ({"Authorization": f"Bearer {key}"}, {"X-Rescore-Api-Key": key}):
                    assert client.open(path, method=method, json={}, headers=headers).status_code != 401, path
