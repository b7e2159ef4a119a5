"""The remote backend against real local HTTP servers that score with the real cross-encoder.

Each server answers in its API's shape and scale (vLLM, Cohere-shaped and SGLang servers return
probabilities, TEI raw scores when asked) and records every body it receives, so the tests check
both what the sidecar sends (the exact Qwen3 prompt) and what it makes of the answers.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sidecar.backends.base import BackendError, BackendTimeoutError
from sidecar.rerank.options import OptionsError, RerankerOptions
from sidecar.rerank.service import RerankService, build_reranker

QUERY = "what is the capital of france"
DOCS = ["Bananas are yellow.", "Paris is the capital and most populous city of France.", "Rust is a language."]


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def make_handler(local: RerankService, delay_s: float, received: list[tuple[str, dict]], status: int = 200):
    """Serve vLLM /score, TEI /rerank, Cohere and SGLang /v1/rerank by scoring with the local cross-encoder."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, body))
            time.sleep(delay_s)
            if status != 200:
                self.send_error(status, "unavailable")
                return
            if self.path == "/score":
                scores = local.score(body["text_1"], body["text_2"]).scores
                payload = {"data": [{"index": i, "score": sigmoid(s)} for i, s in enumerate(scores)]}
            elif self.path == "/rerank":
                scores = local.score(body["query"], body["texts"]).scores
                payload = sorted(({"index": i, "score": s} for i, s in enumerate(scores)), key=lambda r: -r["score"])
            elif self.path == "/v1/rerank" and "return_documents" in body:
                scores = local.score(body["query"], body["documents"]).scores  # SGLang: a bare list
                payload = [{"index": i, "score": sigmoid(s)} for i, s in enumerate(scores)]
            elif self.path == "/v1/rerank":
                scores = local.score(body["query"], body["documents"]).scores
                ranked = sorted(range(len(scores)), key=lambda i: -scores[i])[: body["top_n"]]
                payload = {"results": [{"index": i, "relevance_score": sigmoid(scores[i])} for i in ranked]}
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


def serve(local: RerankService, delay_s: float = 0.0, received: list | None = None,
          status: int = 200) -> tuple[ThreadingHTTPServer, str]:
    received = received if received is not None else []
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(local, delay_s, received, status))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def server_url(local: RerankService) -> Iterator[str]:
    server, url = serve(local)
    yield url
    server.shutdown()


@pytest.mark.parametrize("api", ["vllm", "tei", "cohere", "sglang"])
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


# ---- the Qwen3 prompt on the wire -------------------------------------------------------------

QWEN_DOCS = ["Paris is the capital of France.", "Ünïcode – dashes, “quotes” and\nnew lines.", "", "x" * 300]


@pytest.mark.parametrize("api", ["vllm", "tei", "cohere"])
def test_qwen3_prompt_sent_equals_prompt_py_for_every_pair(local, api) -> None:
    """The text a server receives is, pair by pair, the prompt the local Qwen3 backends tokenize."""
    from sidecar.rerank.prompt import QWEN3_PREFIX, QWEN3_SUFFIX, Qwen3PromptEncoder, load_tokenizer, qwen3_body
    from sidecar.rerank.random_models import qwen_tokenizer_dir

    received: list[tuple[str, dict]] = []
    server, url = serve(local, received=received)
    instruction = "Given a question, find the passage that answers it"
    remote = build_reranker(RerankerOptions(backend="remote", remote_url=url, remote_api=api, remote_prompt="qwen3",
                                            cache_size=0))
    try:
        result = remote.score(QUERY, QWEN_DOCS, instruction=instruction)
    finally:
        remote.close()
        server.shutdown()
    assert result.status == "ok" and len(received) == 1
    _, body = received[0]
    query_text = body["text_1"] if api == "vllm" else body["query"]
    documents = body["text_2"] if api == "vllm" else body["texts"] if api == "tei" else body["documents"]
    # The scheduler may reorder pairs (by length); match each sent document back to its source.
    sent = {doc: query_text + doc for doc in documents}
    expected = [QWEN3_PREFIX + qwen3_body(instruction, QUERY, doc) + QWEN3_SUFFIX for doc in QWEN_DOCS]
    assert sorted(sent.values()) == sorted(expected)
    # Token for token what Qwen3PromptEncoder feeds the local model (nothing truncated at this length).
    tokenizer = load_tokenizer(qwen_tokenizer_dir() / "tokenizer.json")
    local_ids = sorted(p.input_ids for p in Qwen3PromptEncoder(tokenizer, max_length=8192).encode(
        QUERY, QWEN_DOCS, instruction))
    wire_ids = sorted(tokenizer.encode(text, add_special_tokens=False).ids for text in sent.values())
    assert wire_ids == local_ids


def test_sglang_gets_raw_texts_and_the_instruction(local) -> None:
    received: list[tuple[str, dict]] = []
    server, url = serve(local, received=received)
    remote = build_reranker(RerankerOptions(backend="remote", remote_url=url, remote_api="sglang",
                                            remote_prompt="qwen3", cache_size=0))
    try:
        remote.score(QUERY, DOCS, instruction="Judge relevance for a geography quiz")
    finally:
        remote.close()
        server.shutdown()
    path, body = received[0]
    assert path == "/v1/rerank"
    assert body["query"] == QUERY and sorted(body["documents"]) == sorted(DOCS)
    assert body["instruct"] == "Judge relevance for a geography quiz"


def test_probability_servers_give_back_raw_logits(local, server_url) -> None:
    """vLLM answers sigmoid(score); the sidecar's scale is the raw logit for every backend."""
    raw = local.score(QUERY, DOCS).scores
    remote = build_reranker(RerankerOptions(backend="remote", remote_url=server_url, remote_api="vllm", cache_size=0))
    as_sent = build_reranker(RerankerOptions(backend="remote", remote_url=server_url, remote_api="vllm",
                                             remote_scores="raw", cache_size=0))
    try:
        assert remote.score(QUERY, DOCS).scores == pytest.approx(raw, abs=1e-4)
        assert as_sent.score(QUERY, DOCS).scores == pytest.approx([sigmoid(x) for x in raw], abs=1e-6)
    finally:
        remote.close()
        as_sent.close()


# ---- several servers ----------------------------------------------------------------------------


def test_calls_spread_over_servers_and_skip_a_dead_one(local) -> None:
    first, second = [], []
    server_a, url_a = serve(local, received=first)
    server_b, url_b = serve(local, received=second)
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    remote = build_reranker(RerankerOptions(backend="remote", remote_url=f"{url_a},{dead},{url_b}",
                                            remote_api="tei", cache_size=0, remote_retry_after_s=60))
    expected = local.score(QUERY, DOCS).scores
    try:
        for i in range(12):
            assert remote.score(f"{QUERY} {i}", DOCS).status == "ok"
        assert remote.score(QUERY, DOCS).scores == pytest.approx(expected, abs=1e-3)
        health = remote.health()
    finally:
        remote.close()
        server_a.shutdown()
        server_b.shutdown()
    assert len(first) >= 4 and len(second) >= 4 and len(first) + len(second) == 13
    states = {s["url"].rsplit("/", 1)[0]: s for s in health["servers"]}
    assert states[dead]["up"] is False and states[dead]["failures"] == 1  # skipped while cooling down
    assert health["servers_up"] == 2


def test_failing_server_retried_on_the_next_and_readmitted_after_cooldown(local) -> None:
    bad_calls, good_calls = [], []
    bad, bad_url = serve(local, received=bad_calls, status=503)
    good, good_url = serve(local, received=good_calls)
    remote = build_reranker(RerankerOptions(backend="remote", remote_url=f"{bad_url},{good_url}", remote_api="tei",
                                            cache_size=0, remote_retry_after_s=3.0))
    try:
        for i in range(4):
            assert remote.score(f"q{i}", DOCS).status == "ok"
        assert len(bad_calls) == 1  # tried once, then skipped
        time.sleep(3.2)
        for i in range(4):
            assert remote.score(f"again {i}", DOCS).status == "ok"
        assert len(bad_calls) == 2  # re-tried after the cool-down, failed over again
        assert len(good_calls) == 8
    finally:
        remote.close()
        bad.shutdown()
        good.shutdown()


def test_slow_server_fails_over_and_all_down_is_an_error(local) -> None:
    # the fast server scores with the real local model, which took 0.32 s for 3 pairs on a loaded CI
    # runner: the timeout leaves it ample room and the slow server stays well beyond it
    slow, slow_url = serve(local, delay_s=5.0)
    fast, fast_url = serve(local)
    remote = build_reranker(RerankerOptions(backend="remote", remote_url=f"{slow_url},{fast_url}", remote_api="tei",
                                            cache_size=0, remote_timeout_s=2.0))
    try:
        assert all(remote.score(f"q{i}", DOCS).status == "ok" for i in range(3))
    finally:
        remote.close()
        fast.shutdown()
    only_dead = build_reranker(RerankerOptions(backend="remote", remote_url="http://127.0.0.1:9,http://127.0.0.1:7",
                                               cache_size=0, remote_timeout_s=0.5))
    try:
        with pytest.raises(BackendError, match="every remote rerank server failed"):
            only_dead.score(QUERY, DOCS)
        with pytest.raises(BackendError, match="no remote rerank server answered"):
            only_dead.warmup()
    finally:
        only_dead.close()
        slow.shutdown()


@pytest.mark.parametrize(("field", "value"), [("remote_api", "openai"), ("remote_prompt", "llama"),
                                              ("remote_scores", "logit"), ("remote_url", "gpu-1:8000"),
                                              ("remote_retry_after_s", -1.0)])
def test_bad_remote_options_name_the_setting(field, value) -> None:
    with pytest.raises(OptionsError, match=field):
        RerankerOptions(backend="remote", **{"remote_url": "http://127.0.0.1:1", field: value})


def test_a_busy_fleet_is_overload_not_a_fault(local, server_url) -> None:
    """HTTP 429 from every server: status overloaded and the breaker untouched; a server with room
    still takes the batch (a busy server is not marked down)."""
    from sidecar.backends.base import BackendOverloadedError
    from sidecar.rerank.breaker import CircuitBreaker

    busy, busy_url = serve(local, status=429)
    try:
        only_busy = build_reranker(RerankerOptions(backend="remote", remote_url=busy_url, remote_api="tei"))
        breaker = CircuitBreaker(failures=1, cooldown_s=30)
        only_busy.watch(breaker.record_verdict)
        for _ in range(3):
            with pytest.raises(BackendOverloadedError, match="429"):
                only_busy.score(QUERY, DOCS)
        assert breaker.snapshot().state == "closed" and breaker.allow()
        only_busy.close()
        mixed = build_reranker(RerankerOptions(backend="remote", remote_url=f"{busy_url},{server_url}",
                                               remote_api="tei"))
        for _ in range(2):  # round-robin starts on either server; the busy one is skipped, never cooled down
            assert len(mixed.score(QUERY, DOCS).scores) == len(DOCS)
        assert all(s["up"] for s in mixed.backend.health()["servers"])
        mixed.close()
    finally:
        busy.shutdown()
