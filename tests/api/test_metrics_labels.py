"""/metrics is open when keys are set (as documented) and its label sets stay bounded under random traffic."""
from __future__ import annotations

import random
import string

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sidecar import create_app
from sidecar.config import Settings
from sidecar.observability.metrics import HTTP_METHODS, OTHER
from tests.conftest import free_port


@pytest.fixture(scope="module")
def keyed_client():
    settings = Settings.from_env({}, opensearch_url=f"http://admin:hunter2@127.0.0.1:{free_port()}",
                                 preload_model=False, opensearch_timeout_s=2, api_keys="own-key",
                                 proxy_api_keys="proxy-key")
    app = create_app(settings)
    app.testing = True
    return app.test_client()


def _series(text: str, name: str) -> list[dict[str, str]]:
    return [s.labels for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def test_metrics_is_open_with_keys_configured_and_other_endpoints_are_not(keyed_client):
    assert keyed_client.get("/metrics").status_code == 200
    assert keyed_client.get("/health").status_code == 200
    assert keyed_client.get("/v1/compare/options").status_code == 401
    assert keyed_client.get("/idx/_search").status_code == 401


def test_random_methods_and_paths_keep_the_series_bounded(keyed_client):
    # Metrics are per process: other tests' series are there too, so count what this traffic adds.
    before = len(_series(keyed_client.get("/metrics").get_data(as_text=True), "rescore_http_requests_total"))
    rng = random.Random(16)
    for n in range(200):
        method = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 12)))
        if n % 4 == 0:
            method = rng.choice(sorted(HTTP_METHODS))
        path = "/" + "/".join("".join(rng.choices(string.ascii_lowercase + "_-%.", k=rng.randint(1, 30)))
                              for _ in range(rng.randint(1, 4)))
        headers = {"Authorization": "Bearer proxy-key"} if n % 3 == 0 else {}
        response = keyed_client.open(path, method=method, headers=headers)
        assert response.status_code < 500 or response.status_code == 502  # 502: OpenSearch is down here
    text = keyed_client.get("/metrics").get_data(as_text=True)
    requests_series = _series(text, "rescore_http_requests_total")
    methods = {labels["method"] for labels in requests_series}
    endpoints = {labels["endpoint"] for labels in requests_series}
    assert methods <= HTTP_METHODS | {OTHER} and OTHER in methods
    routes = {rule.endpoint for rule in keyed_client.application.url_map.iter_rules()}
    assert endpoints <= routes | {"unmatched"}, endpoints  # route names, never raw paths
    added = len(requests_series) - before
    assert added <= 30, added  # 200 requests with ~150 distinct methods and paths: a handful of series
    error_types = {labels["error_type"] for labels in _series(text, "rescore_errors_total")}
    assert error_types and all(" " not in e for e in error_types)
    assert "hunter2" not in text


def test_credentials_in_the_opensearch_url_never_reach_answers(keyed_client):
    failed = keyed_client.get("/idx/_search", headers={"Authorization": "Bearer proxy-key"})
    ready = keyed_client.get("/ready", headers={"Authorization": "Bearer own-key"})
    assert failed.status_code == 502 and ready.status_code == 503
    assert ready.get_json()["opensearch"]["url"].startswith("http://***@127.0.0.1:")
    for response in (failed, ready, keyed_client.get("/health"), keyed_client.get("/metrics")):
        assert "hunter2" not in response.get_data(as_text=True)
