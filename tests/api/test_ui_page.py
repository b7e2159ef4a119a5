"""The /ui page's files and /v1/compare's input checks, through the Flask client (OpenSearch down)."""
import pytest

from sidecar import create_app
from sidecar.config import Settings
from tests.conftest import free_port

VALID = {"index": "demo", "template": "bm25", "query": "bike tyre"}


@pytest.fixture
def keyed_client():
    settings = Settings.from_env({}, opensearch_url=f"http://127.0.0.1:{free_port()}", preload_model=False,
                                 api_keys="ui-key", opensearch_timeout_s=2)
    return create_app(settings).test_client()


@pytest.mark.parametrize("path, media_type, marker", [
    ("/ui", "text/html", b'id="compare-form"'),
    ("/ui/ui.js", "text/javascript", b'"/v1/compare"'),
    ("/ui/ui.css", "text/css", b".change.up"),
])
def test_page_files_are_served_without_a_key(keyed_client, path, media_type, marker):
    response = keyed_client.get(path)
    assert response.status_code == 200
    assert response.mimetype == media_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert marker in response.data


def test_page_loads_nothing_from_outside():
    client = create_app(Settings.from_env({}, opensearch_url=f"http://127.0.0.1:{free_port()}",
                                          preload_model=False)).test_client()
    for path in ("/ui", "/ui/ui.js", "/ui/ui.css"):
        body = client.get(path).data
        assert b"http://" not in body and b"https://" not in body, path


def test_compare_endpoints_need_the_key_when_keys_are_set(keyed_client):
    assert keyed_client.post("/v1/compare", json=VALID).status_code == 401
    assert keyed_client.get("/v1/compare/options").status_code == 401
    answered = keyed_client.post("/v1/compare", json={**VALID, "template": "nope"},
                                 headers={"Authorization": "Bearer ui-key"})
    assert answered.status_code == 422 and answered.get_json()["field"] == "template"


@pytest.mark.parametrize("change, field", [
    ({"query": None}, "query"),
    ({"query": "   "}, "query"),
    ({"query": 7}, "query"),
    ({"template": None}, "template"),
    ({"template": "rescore-bm25"}, "template"),
    ({"template": ["bm25"]}, "template"),
    ({"template": {"bm25": 1}}, "template"),
    ({"index": None}, "index"),
    ({"index": ""}, "index"),
    ({"index": "*"}, "index"),
    ({"index": "a,b"}, "index"),
    ({"index": "_all"}, "index"),
    ({"index": ".hidden"}, "index"),
    ({"index": "Demo"}, "index"),
    ({"size": 0}, "size"),
    ({"size": 101}, "size"),
    ({"size": "10"}, "size"),
    ({"size": True}, "size"),
    ({"window_size": 0}, "window_size"),
    ({"window_size": 1001}, "window_size"),
    ({"window_size": 2.5}, "window_size"),
    ({"fields": []}, "fields"),
    ({"fields": [""]}, "fields"),
    ({"fields": {"a": 1}}, "fields"),
    ({"colour": "red"}, "colour"),
])
def test_bad_input_is_a_422_naming_the_field(client, change, field):
    body = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    response = client.post("/v1/compare", json=body)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()
    assert error["field"] == field and error["error_type"] == "validation_error"


@pytest.mark.parametrize("raw, content_type", [(b"{", "application/json"), (b"", "application/json"),
                                                (b"\xff\xfe", "application/json")])
def test_unparseable_body_is_a_400(client, raw, content_type):
    response = client.post("/v1/compare", data=raw, content_type=content_type)
    assert response.status_code == 400 and response.get_json()["field"] == "body"


def test_opensearch_down_is_a_502(client):
    assert client.post("/v1/compare", json=VALID).status_code == 502
    assert client.get("/v1/compare/options").status_code == 502
