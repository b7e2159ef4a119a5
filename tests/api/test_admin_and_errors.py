import pytest

from sidecar import create_app
from sidecar.config import Settings
from tests.conftest import free_port


def test_health_does_not_depend_on_opensearch(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_ready_is_503_when_opensearch_is_down(client):
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not_ready" and body["opensearch"]["reachable"] is False


def test_proxy_answers_502_json_when_opensearch_is_down(client):
    response = client.get("/some-index/_search")
    assert response.status_code == 502
    body = response.get_json()
    assert body["error_type"] == "opensearch_unavailable"
    assert "OpenSearch" in body["error"]


def test_body_over_the_limit_is_413_json(client):
    response = client.post("/idx/_doc", data=b"x" * 4096, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error_type"] == "payload_too_large"


def test_secrets_never_reach_ready_output(unreachable_app):
    assert "opensearch_password" not in unreachable_app.test_client().get("/ready").get_data(as_text=True)


@pytest.mark.parametrize("trusted, peer, expected", [
    ("127.0.0.1,::1", "127.0.0.1", "203.0.113.7"),  # the shipped nginx on loopback: the client it saw
    ("10.0.0.0/8", "127.0.0.1", "127.0.0.1"),        # a peer outside the list cannot choose the address
])
def test_access_line_names_the_client_behind_a_trusted_proxy(caplog, trusted, peer, expected):
    settings = Settings.from_env({}, opensearch_url=f"http://127.0.0.1:{free_port()}", preload_model=False,
                                 trusted_proxies=trusted)
    client = create_app(settings).test_client()
    with caplog.at_level("INFO", logger="sidecar.access"):
        assert client.get("/health", headers={"X-Forwarded-For": "203.0.113.7"},
                          environ_base={"REMOTE_ADDR": peer}).status_code in (200, 503)
    lines = [r.getMessage() for r in caplog.records if r.name == "sidecar.access"]
    assert len(lines) == 1 and f"remote={expected} peer={peer}" in lines[0], lines
