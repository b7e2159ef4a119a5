"""Rerank servers over HTTP (a GPU fleet): vLLM /score, TEI /rerank, Cohere-shaped and SGLang /v1/rerank.

The one backend that receives text: the servers tokenize themselves. For a Qwen3-Reranker behind
vLLM, TEI or a Cohere-shaped API the sidecar sends the official prompt (prompt.qwen3_text_pair) so the
server sees exactly the text the local backends tokenize; SGLang applies the template itself from the
instruction. Several servers: calls go round-robin; a server that fails (unreachable, timeout, 5xx,
unreadable body) is skipped for remote_retry_after_s and the call is retried on the next one.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from sidecar.backends.base import (
    Backend,
    BackendError,
    BackendOverloadedError,
    BackendTimeoutError,
    InputFormat,
    TextPair,
    TokenizerSpec,
    model_key,
)
from sidecar.observability.redact import redact_url
from sidecar.rerank.options import RerankerOptions
from sidecar.rerank.prompt import qwen3_text_pair

logger = logging.getLogger(__name__)

PATHS = {"vllm": "/score", "tei": "/rerank", "cohere": "/v1/rerank", "sglang": "/v1/rerank"}
# What each API's scores are when remote_scores=auto: vLLM and SGLang apply the model's activation
# (sigmoid for a 1-label classifier, P(yes) for Qwen3), Cohere-shaped servers return relevance in
# [0, 1]; TEI is asked for raw scores.
AUTO_SCORES = {"vllm": "probability", "tei": "raw", "cohere": "probability", "sglang": "probability"}
# Probabilities are clipped before the logit so 0.0 / 1.0 map to finite scores (±~36.7).
PROBABILITY_EPS = 1e-16


@dataclass(frozen=True, slots=True)
class RemoteRequest:
    """What one call asks: the (possibly prompt-formatted) query and documents, and the instruction."""

    query: str
    documents: list[str]
    instruction: str


def vllm_request(model: str, req: RemoteRequest) -> dict[str, Any]:
    """Return a vLLM /score body: one query against many documents."""
    return {"model": model, "text_1": req.query, "text_2": req.documents}


def vllm_scores(body: Any, count: int) -> list[float]:
    """Read data[].score (placed by data[].index when present)."""
    return _complete([(row.get("index", i), row["score"]) for i, row in enumerate(body["data"])], count)


def tei_request(model: str, req: RemoteRequest) -> dict[str, Any]:
    """Return a TEI /rerank body asking for raw (not sigmoid) scores."""
    del model  # TEI serves one model
    return {"query": req.query, "texts": req.documents, "raw_scores": True, "truncate": True}


def tei_scores(body: Any, count: int) -> list[float]:
    """Read [{index, score}]."""
    return _complete([(row["index"], row["score"]) for row in body], count)


def cohere_request(model: str, req: RemoteRequest) -> dict[str, Any]:
    """Return a Cohere-shaped /v1/rerank body asking for every document."""
    return {"model": model, "query": req.query, "documents": req.documents, "top_n": len(req.documents)}


def cohere_scores(body: Any, count: int) -> list[float]:
    """Read results[{index, relevance_score}]."""
    return _complete([(row["index"], row["relevance_score"]) for row in body["results"]], count)


def sglang_request(model: str, req: RemoteRequest) -> dict[str, Any]:
    """Return an SGLang /v1/rerank body; the server's Qwen3 template takes the instruction as `instruct`."""
    body: dict[str, Any] = {"model": model, "query": req.query, "documents": req.documents,
                            "return_documents": False}
    if req.instruction:
        body["instruct"] = req.instruction
    return body


def sglang_scores(body: Any, count: int) -> list[float]:
    """Read [{index, score}] (a bare list, or under `results`)."""
    rows = body["results"] if isinstance(body, dict) else body
    return _complete([(row["index"], row["score"]) for row in rows], count)


Shape = tuple[Callable[[str, RemoteRequest], dict[str, Any]], Callable[[Any, int], list[float]]]
SHAPES: dict[str, Shape] = {
    "vllm": (vllm_request, vllm_scores),
    "tei": (tei_request, tei_scores),
    "cohere": (cohere_request, cohere_scores),
    "sglang": (sglang_request, sglang_scores),
}


def _complete(pairs: list[tuple[int, float]], count: int) -> list[float]:
    scores: list[float | None] = [None] * count
    for index, score in pairs:
        scores[int(index)] = float(score)
    if any(score is None for score in scores):
        raise BackendError(f"remote returned {len(pairs)} scores for {count} documents")
    return scores  # type: ignore[return-value]


def probability_to_logit(p: float) -> float:
    """Map a probability back to the raw score (logit), the sidecar's scale for every backend."""
    p = min(max(p, PROBABILITY_EPS), 1.0 - PROBABILITY_EPS)
    return math.log(p) - math.log1p(-p)


class _Server:
    """One remote server: its endpoint URL and when it may be tried again after a failure."""

    def __init__(self, base: str, path: str) -> None:
        self.base = base
        self.url = base + path
        self.shown = redact_url(self.url)  # for logs, errors, health, model key: never user:password@
        self.down_until = 0.0
        self.failures = 0
        self.last_error = ""

    def state(self, now: float) -> dict[str, Any]:
        return {"url": self.shown, "up": now >= self.down_until, "failures": self.failures,
                **({"last_error": self.last_error} if self.last_error else {})}


class _RetryableError(Exception):
    """A failure that another server may not have: connection, timeout, 5xx, unreadable body."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class _BusyError(Exception):
    """The server answered 429: alive but saturated; another server may have room."""


class RemoteBackend(Backend):
    """Send each query's documents in one HTTP call to one of the servers; fail over to the next."""

    input_format = InputFormat.TEXT

    def __init__(self, options: RerankerOptions) -> None:
        self._options = options
        path = PATHS[options.remote_api]
        self._servers = [_Server(base, path) for base in options.remote_urls]
        self._build, self._parse = SHAPES[options.remote_api]
        scores = options.remote_scores if options.remote_scores != "auto" else AUTO_SCORES[options.remote_api]
        self._probabilities = scores == "probability"
        self._session = requests.Session()
        self._session.trust_env = False  # the fleet is addressed directly, never through an env proxy
        self._lock = threading.Lock()
        self._next = itertools.count()
        urls = ",".join(server.shown for server in self._servers)
        self._key = model_key(f"remote:{urls}:{options.model}:{options.remote_prompt}", options.revision, "none")

    @classmethod
    def from_options(cls, options: RerankerOptions) -> RemoteBackend:
        """Create the client; no network traffic until warmup or score."""
        return cls(options)

    @property
    def model_key(self) -> str:
        return self._key

    @property
    def device(self) -> str:
        return "remote:" + ",".join(server.shown for server in self._servers)

    def tokenizer_spec(self) -> TokenizerSpec | None:
        return None

    def score(self, batch: list[TextPair]) -> list[float]:
        """Return the remote score of each pair, one HTTP call per distinct (query, instruction)."""
        groups: dict[tuple[str, str], list[int]] = {}
        for index, pair in enumerate(batch):
            groups.setdefault((pair.query, pair.instruction), []).append(index)
        scores = [0.0] * len(batch)
        for (query, instruction), indices in groups.items():
            request = self._request(query, [batch[i].document for i in indices], instruction)
            for index, score in zip(indices, self._call(request), strict=True):
                scores[index] = score
        return scores

    def _request(self, query: str, documents: list[str], instruction: str) -> RemoteRequest:
        """Apply the configured prompt: the server must see the text the local backends would tokenize."""
        instruction = instruction or self._options.instruction
        if self._options.remote_prompt != "qwen3" or self._options.remote_api == "sglang":
            return RemoteRequest(query=query, documents=documents,
                                 instruction=instruction if self._options.remote_prompt == "qwen3" else "")
        pairs = [qwen3_text_pair(instruction, query, document) for document in documents]
        return RemoteRequest(query=pairs[0][0] if pairs else query, documents=[doc for _, doc in pairs],
                             instruction=instruction)

    def _order(self) -> list[_Server]:
        """Return the servers to try: live ones round-robin first, then those cooling down (oldest first)."""
        now = time.monotonic()
        with self._lock:
            start = next(self._next) % len(self._servers)
        rotated = self._servers[start:] + self._servers[:start]
        live = [server for server in rotated if now >= server.down_until]
        resting = sorted((server for server in rotated if now < server.down_until), key=lambda s: s.down_until)
        return live + resting

    def _call(self, request: RemoteRequest) -> list[float]:
        errors: list[str] = []
        timed_out = busy = False
        for server in self._order():
            try:
                scores = self._call_one(server, request)
            except _BusyError as exc:  # not marked down: it answers, it is only full right now
                busy = True
                errors.append(str(exc))
                continue
            except _RetryableError as exc:
                timed_out = timed_out or exc.timeout
                errors.append(str(exc))
                with self._lock:
                    server.failures += 1
                    server.last_error = str(exc)
                    server.down_until = time.monotonic() + self._options.remote_retry_after_s
                logger.warning("remote_failed url=%s error=%s", server.shown, exc)
                continue
            with self._lock:
                server.down_until = 0.0
            return scores
        message = "; ".join(errors)
        if busy:  # the fleet is up but saturated: shed like admission control, not a fault for the breaker
            raise BackendOverloadedError(f"every remote rerank server is busy or down: {message}")
        if timed_out and len(errors) == len(self._servers):
            raise BackendTimeoutError(f"every remote rerank server failed: {message}")
        raise BackendError(f"every remote rerank server failed: {message}")

    def _call_one(self, server: _Server, request: RemoteRequest) -> list[float]:
        started = time.perf_counter()
        body = self._build(self._options.model, request)
        try:
            response = self._session.post(server.url, json=body, timeout=self._options.remote_timeout_s)
        except requests.Timeout as exc:
            raise _RetryableError(f"{server.shown} timed out after {self._options.remote_timeout_s}s",
                                  timeout=True) from exc
        except requests.RequestException as exc:
            raise _RetryableError(f"{server.shown} unreachable: {type(exc).__name__}") from exc
        if response.status_code == 429:
            raise _BusyError(f"{server.shown} answered HTTP 429 (busy): {response.text[:200]}")
        if response.status_code >= 500:
            raise _RetryableError(f"{server.shown} answered HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code != 200:
            # The request itself was refused (e.g. too long, unknown model): every server would refuse it.
            raise BackendError(f"remote {server.shown} answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            scores = self._parse(response.json(), len(request.documents))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise _RetryableError(f"{server.shown} sent an unexpected body: {type(exc).__name__}: {exc}") from exc
        if self._probabilities:
            scores = [probability_to_logit(score) for score in scores]
        logger.debug("remote_scored url=%s docs=%d took_ms=%.1f", server.shown, len(request.documents),
                     (time.perf_counter() - started) * 1e3)
        return scores

    def warmup(self) -> None:
        """Score one pair on every server to check that each answers (a dead one is only logged)."""
        request = self._request("warmup", ["warmup"], "")
        failed = []
        for server in self._servers:
            try:
                self._call_one(server, request)
            except (_RetryableError, BackendError) as exc:
                failed.append(str(exc))
                logger.warning("remote_warmup_failed url=%s error=%s", server.shown, exc)
        if len(failed) == len(self._servers):
            raise BackendError(f"no remote rerank server answered: {'; '.join(failed)}")

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        servers = [server.state(now) for server in self._servers]
        return {**super().health(), "url": self._servers[0].shown, "api": self._options.remote_api,
                "prompt": self._options.remote_prompt, "servers": servers,
                "servers_up": sum(1 for s in servers if s["up"])}

    def close(self) -> None:
        self._session.close()
