"""The remote backend against a real local HTTP server that scores with the real cross-encoder."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sidecar.backends.base import BackendError, BackendTimeoutError
from sidecar.rerank.options import RerankerOptions
from sidecar.rerank.service import RerankService, build_reranker

QUERY = "what is the capital of france"
DOCS = ["Bananas are yellow.", "Paris is the capital and most populous city of France.", "Rust is a language."]


def make_handler(local: RerankService, delay_s: float):
    """Serve vLLM /score, TEI /rerank and Cohere /v1/rerank by scoring with the local cross-encoder."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(delay_s)
            if self.path == "/score":
                scores = local.score(body["text_1"], body["text_2"]).scores
                payload = {"data": [{"index": i, "score": s} for i, s in enumerate(scores)]}
            elif self.path == "/rerank":
                scores = local.score(body["query"], body["texts"]).scores
                payload = sorted(({"index": i, "score": s} for i, s in enumerate(scores)), key=lambda r: -r["score"])
            elif self.path == "/v1/rerank":
                scores = local.score(body["query"], body["documents"]).scores
                ranked = sorted(range(len(scores)), key=lambda i: -scores[i])[: body["top_n"]]
                payload = {"results": [{"index": i, "relevance_score": scores[i]} for i in ranked]}
            else:
                self.send_error(500, "boom")
                return
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture(scope="module")
def local() -> Iterator[RerankService]:
    svc = build_reranker(RerankerOptions(backend="cross-encoder", cache_size=0))
    yield svc
    svc.close()


def serve(local: RerankService, delay_s: float = 0.0) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(local, delay_s))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def server_url(local: RerankService) -> Iterator[str]:
    server, url = serve(local)
    yield url
    server.shutdown()


@pytest.mark.parametrize("api", ["vllm", "tei", "cohere"])
def test_remote_scores_equal_the_servers_model(local, server_url, api) -> None:
    remote = build_reranker(RerankerOptions(backend="remote", remote_url=server_url, remote_api=api))
    try:
        remote.warmup()
        result = remote.score(QUERY, DOCS)
    finally:
        remote.close()
    expected = local.score(QUERY, DOCS).scores
    assert result.status == "ok"
    assert result.scores == pytest.approx(expected, abs=1e-3)
    assert max(range(3), key=result.scores.__getitem__) == 1
    assert remote.health()["api"] == api


def test_timeout_maps_to_backend_timeout(local) -> None:
    server, url = serve(local, delay_s=1.0)
    remote = build_reranker(RerankerOptions(backend="remote", remote_url=url, remote_timeout_s=0.2))
    try:
        with pytest.raises(BackendTimeoutError) as err:
            remote.score(QUERY, DOCS)
        assert err.value.http_status == 504
    finally:
        remote.close()
        server.shutdown()


def test_http_error_maps_to_backend_error(server_url) -> None:
    options = RerankerOptions(backend="remote", remote_url=server_url + "/nowhere", remote_api="tei")
    remote = build_reranker(options)
    try:
        with pytest.raises(BackendError, match="HTTP 500"):
            remote.score(QUERY, DOCS)
    finally:
        remote.close()


def test_unreachable_server_maps_to_backend_error() -> None:
    options = replace(RerankerOptions(backend="remote", remote_url="http://127.0.0.1:9"), remote_timeout_s=1.0)
    remote = build_reranker(options)
    try:
        with pytest.raises(BackendError, match="unreachable"):
            remote.score(QUERY, DOCS)
    finally:
        remote.close()
