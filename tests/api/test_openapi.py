"""GET /openapi.json: valid OpenAPI 3.0.3, and its paths are exactly the sidecar's own routes."""
import pytest
from openapi_spec_validator import validate

from sidecar import create_app
from sidecar.api.openapi import SPEC
from sidecar.config import Settings
from tests.conftest import free_port

# Blueprints that serve OpenSearch's API (search flow, pass-through): not described by the document.
_OPENSEARCH_BLUEPRINTS = {"search", "proxy"}


def _own_routes(app) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.split(".")[0] in _OPENSEARCH_BLUEPRINTS:
            continue
        methods = {m.lower() for m in rule.methods} - {"head", "options"}
        routes.setdefault(rule.rule, set()).update(methods)
    return routes


def test_served_document_is_valid_openapi(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document == SPEC and document["openapi"] == "3.0.3"
    validate(document)


def test_paths_match_the_apps_own_routes(unreachable_app):
    documented = {path: {m for m in ops if m in ("get", "post", "put", "delete", "patch")}
                  for path, ops in SPEC["paths"].items()}
    assert documented == _own_routes(unreachable_app)
    for path in ("/health", "/ready", "/v1/rescore", "/v1/rerank", "/v2/rerank", "/rerank", "/score", "/v1/score"):
        assert path in documented


def test_every_operation_documents_its_error_body():
    for path, ops in SPEC["paths"].items():
        for method, op in ops.items():
            if method == "post":
                for status in ("400", "422"):
                    assert op["responses"][status]["$ref"] == f"#/components/responses/Error{status}", path
    error = SPEC["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"error", "error_type", "field"}


@pytest.mark.parametrize("path", ["/openapi.json", "/health"])
def test_open_without_a_key_when_keys_are_set(path):
    settings = Settings.from_env({}, opensearch_url=f"http://127.0.0.1:{free_port()}", preload_model=False,
                                 api_keys="k1", proxy_api_keys="k2")
    client = create_app(settings).test_client()
    assert client.get(path).status_code == 200
    assert client.post("/v1/rerank", json={"query": "q", "documents": ["d"]}).status_code == 401
