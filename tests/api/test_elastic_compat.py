"""Elasticsearch clients in front of OpenSearch: what the sidecar changes on the way in and out (RESCORE_ELASTIC_CLIENT_COMPAT)."""
import pytest

from sidecar import create_app
from sidecar.config import Settings
from tests.conftest import free_port
from tests.servers import RecordingServer

ES8_JSON = "application/vnd.elasticsearch+json; compatible-with=8"
ES9_NDJSON = "application/vnd.elasticsearch+x-ndjson; compatible-with=9"
META_717 = "es=7.17.13,py=3.11.7,t=7.17.13,ur=2.8.0"


def _app(upstream_url: str, compat: bool = True):
    settings = Settings.from_env({}, opensearch_url=upstream_url, preload_model=False, opensearch_timeout_s=5,
                                 elastic_client_compat=compat)
    app = create_app(settings)
    app.testing = True
    return app


@pytest.fixture
def upstream():
    with RecordingServer() as server:
        yield server


def _recorded_header(upstream, name: str) -> str | None:
    headers = {k.lower(): v for k, v in upstream.requests[-1][2].items()}
    return headers.get(name.lower())


def test_compatible_with_media_types_reach_opensearch_as_plain_json_and_ndjson(upstream):
    client = _app(upstream.url).test_client()
    client.put("/idx/_doc/1", data=b'{"a": 1}', headers={"Content-Type": ES8_JSON, "Accept": ES8_JSON})
    assert _recorded_header(upstream, "Content-Type") == "application/json"
    assert _recorded_header(upstream, "Accept") == "application/json"
    client.post("/_bulk", data=b'{"index": {"_index": "i"}}\n{"a": 1}\n', headers={"Content-Type": ES9_NDJSON})
    assert _recorded_header(upstream, "Content-Type") == "application/x-ndjson"


def test_product_header_on_proxied_own_error_and_head_responses(upstream):
    client = _app(upstream.url).test_client()
    responses = {
        "proxied": client.get("/idx/_doc/1"),
        "head": client.head("/idx"),
        "own": client.get("/health"),
        "error": client.post("/idx/_search", data=b'{"ext": {"rerank": ', content_type="application/json"),
    }
    assert responses["error"].status_code == 400
    for kind, response in responses.items():
        assert response.headers.get("X-Elastic-Product") == "Elasticsearch", kind
        assert response.headers.getlist("X-Elastic-Product") == ["Elasticsearch"], kind


def test_product_header_when_opensearch_is_down():
    response = _app(f"http://127.0.0.1:{free_port()}").test_client().get("/idx/_search")
    assert response.status_code == 502
    assert response.headers.get("X-Elastic-Product") == "Elasticsearch"


def test_main_endpoint_gives_elastic_clients_their_version_and_keeps_the_engine_version(upstream):
    client = _app(upstream.url).test_client()
    answered = client.get("/", headers={"x-elastic-client-meta": META_717, "Accept-Encoding": "gzip"})
    version = answered.get_json()["version"]
    assert version["number"] == "7.17.0" and version["distribution_version"] == "0"
    assert answered.get_json()["name"] == "recorder"
    assert _recorded_header(upstream, "Accept-Encoding") == "identity"  # the body is rewritten, so not compressed
    assert client.get("/").get_json()["version"] == {"number": "0"}  # other clients see the engine's answer


def test_setting_off_passes_everything_unchanged(upstream):
    client = _app(upstream.url, compat=False).test_client()
    response = client.put("/idx/_doc/1", data=b"{}", headers={"Content-Type": ES8_JSON})
    assert _recorded_header(upstream, "Content-Type") == ES8_JSON
    assert "X-Elastic-Product" not in response.headers
    main = client.get("/", headers={"x-elastic-client-meta": META_717})
    assert main.get_json()["version"] == {"number": "0"} and "X-Elastic-Product" not in main.headers



def test_in_front_of_elasticsearch_media_types_and_main_pass_unchanged_but_own_answers_carry_the_header(upstream):
    settings = Settings.from_env({}, opensearch_url=upstream.url, preload_model=False, opensearch_timeout_s=5,
                                 engine="elasticsearch", elastic_client_compat=False)
    app = create_app(settings)
    app.testing = True
    client = app.test_client()
    client.put("/idx/_doc/1", data=b"{}", headers={"Content-Type": ES8_JSON, "Accept": ES8_JSON})
    assert _recorded_header(upstream, "Content-Type") == ES8_JSON
    assert _recorded_header(upstream, "Accept") == ES8_JSON
    main = client.get("/", headers={"x-elastic-client-meta": META_717})
    assert main.get_json()["version"] == {"number": "0"}
    own = client.get("/health")
    assert own.headers.getlist("X-Elastic-Product") == ["Elasticsearch"]
