"""Bearer-key authentication of the sidecar's own and the proxied endpoints (Flask client)."""
import pytest

from sidecar import create_app
from sidecar.api.auth import key_matches
from sidecar.config import Settings
from tests.conftest import free_port

API_KEY, PROXY_KEY = "sidecar-key-123", "proxy-key-456"


@pytest.fixture
def client():
    settings = Settings.from_env({}, opensearch_url=f"http://127.0.0.1:{free_port()}", preload_model=False,
                                 opensearch_timeout_s=2, api_keys=f"other-key,{API_KEY}",
                                 proxy_api_keys=PROXY_KEY)
    app = create_app(settings)
    app.testing = True
    return app.test_client()


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("method, path", [
    ("POST", "/v1/rerank"), ("POST", "/v2/rerank"), ("POST", "/rerank"), ("POST", "/score"),
    ("POST", "/v1/score"), ("POST", "/v1/rescore"),
])
def test_sidecar_endpoints_need_a_sidecar_key(client, method, path):
    for headers in ({}, bearer("wrong"), bearer(PROXY_KEY), {"Authorization": API_KEY},
                    {"Authorization": f"Basic {API_KEY}"}):
        response = client.open(path, method=method, json={}, headers=headers)
        assert response.status_code == 401, headers
        assert response.get_json() == {"error": response.get_json()["error"], "error_type": "unauthorized",
                                       "field": "Authorization"}
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # With the key the request reaches validation (422 for the empty body), not the auth check.
    assert client.open(path, method=method, json={}, headers=bearer(API_KEY)).status_code == 422


@pytest.mark.parametrize("method, path, group", [
    ("GET", "/", None), ("GET", "/idx/_search", None), ("POST", "/idx/_search", None), ("POST", "/_msearch", None),
    ("POST", "/idx/_search/template", None), ("GET", "/_cat/indices", None), ("PUT", "/idx/_doc/1", None),
    # Index administration is not in RESCORE_PROXY_ALLOW's default: the key passes, the allowlist refuses.
    ("PUT", "/idx", "index_admin"), ("DELETE", "/idx", "index_admin"),
    ("GET", "/v1/rerank", "index_admin"),  # not our route for GET: proxied, guarded by the proxy key
])
def test_proxied_endpoints_need_a_proxy_key(client, method, path, group):
    assert client.open(path, method=method).status_code == 401
    assert client.open(path, method=method, headers=bearer(API_KEY)).status_code == 401
    passed = client.open(path, method=method, headers=bearer(PROXY_KEY), json={"query": {"match_all": {}}})
    if group is None:  # with the key the request goes on to OpenSearch, which is down here: 502, not 401
        assert passed.status_code == 502 and passed.get_json()["error_type"] == "opensearch_unavailable"
    else:
        assert passed.status_code == 403 and passed.get_json()["group"] == group
        assert passed.get_json()["field"] == "RESCORE_PROXY_ALLOW"


def test_health_and_ready_stay_open_and_ready_hides_details_without_a_key(client):
    assert client.get("/health").status_code == 200
    anonymous = client.get("/ready").get_json()
    assert set(anonymous) == {"status", "circuit"}
    full = client.get("/ready", headers=bearer(API_KEY)).get_json()
    assert {"opensearch", "reranker", "circuit"} <= set(full)


def test_key_comparison():
    assert key_matches("abc", ("x", "abc"))
    assert not key_matches("abc", ("abcd", "ab", ""))
    assert not key_matches(None, ("abc",))
    assert not key_matches("abc", ())
