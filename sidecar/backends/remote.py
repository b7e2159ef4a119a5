"""Another rerank server over HTTP: vLLM /score, TEI /rerank or a Cohere-shaped /v1/rerank.

The one backend that receives text: the remote server tokenizes (and formats prompts) itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from sidecar.backends.base import (
    Backend,
    BackendError,
    BackendTimeoutError,
    InputFormat,
    TextPair,
    TokenizerSpec,
    model_key,
)
from sidecar.rerank.options import RerankerOptions

logger = logging.getLogger(__name__)

PATHS = {"vllm": "/score", "tei": "/rerank", "cohere": "/v1/rerank"}


def vllm_request(model: str, query: str, documents: list[str]) -> dict[str, Any]:
    """Return a vLLM /score body: one query against many documents."""
    return {"model": model, "text_1": query, "text_2": documents}


def vllm_scores(body: Any, count: int) -> list[float]:
    """Read data[].score (ordered by data[].index when present)."""
    data = sorted(body["data"], key=lambda row: row.get("index", 0))
    return _complete([(row.get("index", i), row["score"]) for i, row in enumerate(data)], count)


def tei_request(model: str, query: str, documents: list[str]) -> dict[str, Any]:
    """Return a TEI /rerank body asking for raw (not sigmoid) scores."""
    del model  # TEI serves one model
    return {"query": query, "texts": documents, "raw_scores": True, "truncate": True}


def tei_scores(body: Any, count: int) -> list[float]:
    """Read [{index, score}]."""
    return _complete([(row["index"], row["score"]) for row in body], count)


def cohere_request(model: str, query: str, documents: list[str]) -> dict[str, Any]:
    """Return a Cohere-shaped /v1/rerank body asking for every document."""
    return {"model": model, "query": query, "documents": documents, "top_n": len(documents)}


def cohere_scores(body: Any, count: int) -> list[float]:
    """Read results[{index, relevance_score}]."""
    return _complete([(row["index"], row["relevance_score"]) for row in body["results"]], count)


SHAPES: dict[str, tuple[Callable[[str, str, list[str]], dict[str, Any]], Callable[[Any, int], list[float]]]] = {
    "vllm": (vllm_request, vllm_scores),
    "tei": (tei_request, tei_scores),
    "cohere": (cohere_request, cohere_scores),
}


def _complete(pairs: list[tuple[int, float]], count: int) -> list[float]:
    scores: list[float | None] = [None] * count
    for index, score in pairs:
        scores[int(index)] = float(score)
    if any(score is None for score in scores):
        raise BackendError(f"remote returned {len(pairs)} scores for {count} documents")
    return scores  # type: ignore[return-value]


class RemoteBackend(Backend):
    """Send each query's documents in one HTTP call and map failures to BackendError."""

    input_format = InputFormat.TEXT

    def __init__(self, options: RerankerOptions) -> None:
        self._options = options
        self._url = options.remote_url.rstrip("/") + PATHS[options.remote_api]
        self._build, self._parse = SHAPES[options.remote_api]
        self._session = requests.Session()
        self._key = model_key(f"remote:{self._url}:{options.model}", options.revision, "none")

    @classmethod
    def from_options(cls, options: RerankerOptions) -> RemoteBackend:
        """Create the client; no network traffic until warmup or score."""
        return cls(options)

    @property
    def model_key(self) -> str:
        return self._key

    @property
    def device(self) -> str:
        return f"remote:{self._url}"

    def tokenizer_spec(self) -> TokenizerSpec | None:
        return None

    def score(self, batch: list[TextPair]) -> list[float]:
        """Return the remote score of each pair, one HTTP call per distinct query in the batch."""
        groups: dict[str, list[int]] = {}
        for index, pair in enumerate(batch):
            groups.setdefault(pair.query, []).append(index)
        scores = [0.0] * len(batch)
        for query, indices in groups.items():
            documents = [batch[i].document for i in indices]
            for index, score in zip(indices, self._call(query, documents), strict=True):
                scores[index] = score
        return scores

    def _call(self, query: str, documents: list[str]) -> list[float]:
        started = time.perf_counter()
        try:
            body = self._build(self._options.model, query, documents)
            response = self._session.post(self._url, json=body, timeout=self._options.remote_timeout_s)
        except requests.Timeout as exc:
            raise BackendTimeoutError(f"remote {self._url} timed out after {self._options.remote_timeout_s}s") from exc
        except requests.RequestException as exc:
            raise BackendError(f"remote {self._url} unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise BackendError(f"remote {self._url} answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            scores = self._parse(response.json(), len(documents))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise BackendError(f"remote {self._url} sent an unexpected body: {type(exc).__name__}: {exc}") from exc
        logger.debug("remote_scored url=%s docs=%d took_ms=%.1f", self._url, len(documents),
                     (time.perf_counter() - started) * 1e3)
        return scores

    def warmup(self) -> None:
        """Score one pair to check that the server answers."""
        self.score([TextPair(query="warmup", document="warmup", instruction="")])

    def health(self) -> dict[str, Any]:
        return {**super().health(), "url": self._url, "api": self._options.remote_api}

    def close(self) -> None:
        self._session.close()
