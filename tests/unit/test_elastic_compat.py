"""Pure helpers of sidecar/api/elastic_compat.py."""
from sidecar.api.elastic_compat import client_version, main_response_for_client, plain_media_type


def test_plain_media_type_maps_every_compatible_with_type():
    assert plain_media_type("application/vnd.elasticsearch+json; compatible-with=8") == "application/json"
    assert plain_media_type("application/vnd.elasticsearch+x-ndjson;compatible-with=9") == "application/x-ndjson"
    assert plain_media_type("Application/VND.Elasticsearch+JSON") == "application/json"
    assert (plain_media_type("application/vnd.elasticsearch+json; compatible-with=8, text/plain")
            == "application/json, text/plain")
    assert plain_media_type("application/json; charset=UTF-8") == "application/json; charset=UTF-8"


def test_client_version_reads_the_es_entry_only():
    assert client_version("es=8.19.3,py=3.11.7,t=8.19.0,ur=2.8.0") == (8, 19)
    assert client_version("es=9.5.1p,py=3.11") == (9, 5)
    assert client_version("py=3.11.7,t=8.19.0") is None
    assert client_version("") is None


def test_main_response_keeps_the_engine_version_and_everything_else():
    body = {"name": "n", "version": {"number": "3.6.0", "distribution": "opensearch"}, "tagline": "t"}
    assert main_response_for_client(body, (7, 17)) == {
        "name": "n", "tagline": "t",
        "version": {"number": "7.17.0", "distribution": "opensearch", "distribution_version": "3.6.0"}}
    assert main_response_for_client({"version": "x"}, (8, 0)) == {"version": "x"}
