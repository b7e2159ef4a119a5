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
