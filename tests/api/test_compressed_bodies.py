"""Request bodies compressed by the client (http_compress=True in elasticsearch-py and opensearch-py)."""
import gzip

import pytest

from sidecar import create_app
from sidecar.config import Settings
from tests.servers import RecordingServer


@pytest.fixture
def upstream():
    with RecordingServer() as server:
        yield server


def _app(upstream_url: str, **overrides):
    app = create_app(Settings.from_env({}, opensearch_url=upstream_url, preload_model=False, **overrides))
    app.testing = True
    return app


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data)


def test_gzipped_search_bodies_are_read_decompressed(upstream):
    """Clients with http_compress=True gzip every body; a rerank must still be seen (and bad JSON named)."""
    client = _app(upstream.url).test_client()
    response = client.post("/idx/_search", data=_gzip(b'{"ext": {"rerank": '),
                           headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 400 and "not valid JSON" in response.get_json()["error"]
    broken = client.post("/idx/_search", data=b"\x1f\x8b not gzip rerank",
                         headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert broken.status_code == 400 and broken.get_json()["field"] == "Content-Encoding"


def test_gzipped_body_over_the_limit_after_decompression_is_413(upstream):
    app = _app(upstream.url, max_body_bytes=4096)
    bomb = _gzip(b'{"ext": {"rerank": {}}, "pad": "' + b"x" * 100_000 + b'"}')
    assert len(bomb) < 4096
    response = app.test_client().post("/idx/_search", data=bomb,
                                      headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 413 and response.get_json()["error_type"] == "payload_too_large"


def test_compressed_body_without_rerank_is_forwarded_as_sent(upstream):
    response = _app(upstream.url).test_client().post(
        "/idx/_search", data=_gzip(b'{"query": {"match_all": {}}}'),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 200
    headers = {k.lower(): v for k, v in upstream.requests[-1][2].items()}
    assert headers["content-encoding"] == "gzip"
