"""Invalid UTF-8 bodies are 400 {error_type: bad_request, field: body} on every endpoint that parses one."""
import pytest

JSON_ENDPOINTS = ["/v1/rescore", "/v1/rerank", "/v2/rerank", "/rerank", "/score", "/v1/score"]
# The search endpoints parse a body only when it may ask for a rerank (else it is passed through
# unread), and template endpoints always do.
SEARCH_ENDPOINTS = ["/_search", "/idx/_search", "/_search/template", "/idx/_search/template",
                    "/_msearch", "/idx/_msearch", "/_msearch/template", "/idx/_msearch/template"]


@pytest.mark.parametrize("path, body", [(p, b"\xff\xfe{") for p in JSON_ENDPOINTS]
                         + [(p, b'\xff\xfe{"ext": {"rerank": {}}}\n') for p in SEARCH_ENDPOINTS])
def test_invalid_utf8_is_400_naming_body(client, path, body):
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json() == {"error": "request body is not valid UTF-8", "error_type": "bad_request",
                                   "field": "body"}


@pytest.mark.parametrize("path", SEARCH_ENDPOINTS[:2])
def test_search_get_with_a_body_is_parsed_too(client, path):
    response = client.get(path, data=b'\xff{"rescore": {"rerank": {}}}', content_type="application/json")
    assert response.status_code == 400 and response.get_json()["field"] == "body"
