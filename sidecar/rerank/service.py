"""The rerank engine: cache lookup, encoding, token-budget scheduling and scoring of one query."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sidecar.backends import create_backend
from sidecar.backends.base import Backend
from sidecar.observability.logs import current_request_id
from sidecar.observability.metrics import metrics
from sidecar.rerank.cache import ScoreCache, ScoreStore, cache_keys
from sidecar.rerank.options import RerankerOptions
from sidecar.rerank.passages import Splitter, splitter_for
from sidecar.rerank.prompt import PairEncoder, build_encoder
from sidecar.rerank.deadline import DeadlineExceeded, deadline_for
from sidecar.rerank.scheduler import BatchPolicy, OverloadedError, Scheduler

logger = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_PARTIAL = "partial"
STATUS_TIMEOUT = "timeout"
# At most this much of a rerank budget (and at most 5% of it) is kept for building the answer.
ANSWER_RESERVE_S = 0.5


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Raw scores aligned with the documents; None marks a document not scored before the deadline.

    status: ok (all scored), partial (deadline hit, some scored), timeout (deadline hit, none
    scored beyond cache hits). Callers keep first-stage order for the None entries.
    """

    scores: list[float | None]
    cache_hits: int
    scored: int
    took_ms: float
    model: str
    status: str
    # Time this request waited for the scheduler and spent in model batches (0 when all cached).
    queue_ms: float = 0.0
    model_ms: float = 0.0
    # Where cached scores came from: local | shared (Redis) | local (shared cache unavailable).
    cache: str = "local"


class RerankService:
    """Score documents against a query with one backend, a score cache and a scheduler."""

    def __init__(
        self, *, backend: Backend, encoder: PairEncoder, scheduler: Scheduler, cache: ScoreStore, instruction: str,
        passage_tokenizer: str = "",
    ) -> None:
        self.backend = backend
        self._passage_tokenizer = passage_tokenizer
        self._splitter: Splitter | None = None
        self._encoder = encoder
        self._scheduler = scheduler
        self._cache = cache
        self._instruction = instruction

    @property
    def model(self) -> str:
        """Return the backend's model key (model@revision/quantization)."""
        return self.backend.model_key

    def score(
        self, query: str, documents: list[str], *, instruction: str | None = None, timeout_s: float | None = None
    ) -> ScoreResult:
        """Return raw relevance scores of documents for query; cached pairs are not rescored.

        timeout_s counts from the arrival of the current request (sidecar/rerank/deadline.py), so
        encoding, queueing and scoring together end by then; what is not scored stays None.
        """
        started = time.perf_counter()
        deadline = _scoring_deadline(timeout_s)
        instruction = instruction or self._instruction
        keys = cache_keys(self.model, instruction, query, documents)
        scores = self._cache.get_many(keys)
        misses = [i for i, score in enumerate(scores) if score is None]
        hits = len(documents) - len(misses)
        complete = True
        queue_ms = model_ms = 0.0
        metrics().observe_cache(hits, len(misses))
        if misses:
            # Refused before tokenizing: an overloaded model must not cost the other requests CPU.
            self._scheduler.admit(len(misses), sum(_token_guess(query, documents[i]) for i in misses), deadline)
            try:
                items = self._encoder.encode(query, [documents[i] for i in misses], instruction, deadline=deadline)
            except DeadlineExceeded:  # the budget ran out while tokenizing: nothing more is scored
                items = None
                complete = False
            if items is not None:
                outcome = self._scheduler.run(items, deadline=deadline, owner=current_request_id() or None)
                complete = outcome.complete
                queue_ms, model_ms = outcome.queue_ms, outcome.model_ms
                for index, score in zip(misses, outcome.scores, strict=True):
                    scores[index] = score
                self._cache.put_many((keys[i], s) for i, s in zip(misses, outcome.scores, strict=True)
                                     if s is not None)
        scored = sum(score is not None for score in scores) - hits
        took_ms = (time.perf_counter() - started) * 1e3
        status = _status(complete, scored)
        logger.info("rerank_scored docs=%d cache_hits=%d scored=%d status=%s took_ms=%.1f",
                    len(documents), hits, scored, status, took_ms)
        return ScoreResult(scores=scores, cache_hits=hits, scored=scored, took_ms=took_ms, model=self.model,
                           status=status, queue_ms=queue_ms, model_ms=model_ms, cache=self._cache.state)

    def admit(self, query: str, documents: list[str], *, instruction: str | None = None,
              timeout_s: float | None = None) -> None:
        """Raise OverloadedError now if score() would refuse these documents (the cached ones cost nothing).

        For callers with work to do before score() that only a scored request needs: splitting
        documents into passages tokenizes every one of them, and a request the model cannot take
        must not cost the other requests that CPU (under load, most reranks are refused).
        Refusal only grows with the work asked, so all documents are checked first; the cache
        (hashing every text, a Redis round trip when shared) is read only for a refused request,
        and score() reads it again only for one that its misses let through.
        """
        deadline = _scoring_deadline(timeout_s)
        try:
            self._scheduler.admit(len(documents), sum(_token_guess(query, doc) for doc in documents), deadline)
            return
        except OverloadedError:
            keys = cache_keys(self.model, instruction or self._instruction, query, documents)
            misses = [doc for doc, score in zip(documents, self._cache.get_many(keys), strict=True) if score is None]
            if len(misses) == len(documents):
                raise
        if misses:
            self._scheduler.admit(len(misses), sum(_token_guess(query, doc) for doc in misses), deadline)

    def watch(self, listener: Callable[[BaseException | None], None]) -> None:
        """Report every batch's verdict (None = scored, else the model's error) to listener."""
        self._scheduler.set_verdict_listener(listener)

    @property
    def passage_splitter(self) -> Splitter:
        """The tokenizer that splits long documents into passages, loaded on first use.

        RESCORE_PASSAGE_TOKENIZER when set, else the backend's own tokenizer, else (remote
        backends) whitespace-separated words.
        """
        if self._splitter is None:  # a race loads it twice; both results are equal
            spec = self.backend.tokenizer_spec()
            self._splitter = splitter_for(self._passage_tokenizer or (spec.tokenizer_file if spec else None))
        return self._splitter

    def document_budget(self, query: str, instruction: str | None = None) -> int:
        """Return how many tokens of a document the model reads whole next to query (0 when unknown).

        Counted by the backend's own tokenizer, so it applies to passage splitting only when the
        splitter is that tokenizer (no RESCORE_PASSAGE_TOKENIZER): then a text of at most this
        many tokens stays one passage, the very pair that passages off would score.
        """
        if self._passage_tokenizer:
            return 0
        return self._encoder.document_budget(query, instruction or self._instruction)

    def clear_cache(self) -> None:
        """Forget every cached score (after a model change or for benchmarks)."""
        self._cache.clear()

    def warmup(self) -> None:
        """Warm the backend up (first-call kernels, sessions, remote reachability)."""
        started = time.perf_counter()
        self.backend.warmup()
        # One real pair through the scheduler: admission control knows the model's speed from the
        # first request on (a small batch costs more per token, so the first estimates err on the safe side).
        document = " ".join(["a warm-up document about solar panels, coffee and bread"] * 8)
        items = self._encoder.encode("warm-up query", [document] * 8, self._instruction)
        self._scheduler.run(items, timeout_s=60)
        logger.info("rerank_warmup model=%s took_ms=%.1f", self.model, (time.perf_counter() - started) * 1e3)

    def health(self) -> dict[str, Any]:
        """Return backend health plus queue load and cache counters."""
        stats = self._cache.stats()
        shared = getattr(self._cache, "shared_health", None)
        return {
            **self.backend.health(),
            "queue_load": self._scheduler.load,
            "active_requests": self._scheduler.active_requests,
            "cache": stats.as_dict(),
            **({"shared_cache": shared()} if shared else {}),
        }

    def close(self) -> None:
        """Stop the scheduler and release the backend."""
        self._scheduler.close()
        self.backend.close()
        close = getattr(self._cache, "close", None)
        if close:
            close()


def _scoring_deadline(timeout_s: float | None) -> float | None:
    # Scoring stops a little before the budget ends: the answer still has to be built and sent.
    return None if timeout_s is None else deadline_for(timeout_s) - min(ANSWER_RESERVE_S, 0.05 * timeout_s)


def _token_guess(query: str, document: str) -> int:
    """Return a cheap guess of a pair's tokens (about 4 characters each, at most 512 for the estimate)."""
    return min(512, (len(query) + len(document)) // 4 + 3)


def _status(complete: bool, scored: int) -> str:
    if complete:
        return STATUS_OK
    return STATUS_PARTIAL if scored else STATUS_TIMEOUT


def build_service(backend: Backend, options: RerankerOptions) -> RerankService:
    """Wire an already-built backend with its encoder, scheduler and cache."""
    encoder = build_encoder(backend.input_format, backend.tokenizer_spec())
    scheduler = Scheduler(
        backend.score,
        cost_fn=lambda item: item.cost,
        policy=BatchPolicy(token_budget=options.resolved_token_budget(backend.device),
                           max_batch_size=options.max_batch_size),
        queue_size=options.queue_size,
        max_requests=options.rerank_slots,
        nice=options.model_nice,
        name=f"rerank-{backend.device}",
        on_batch=metrics().observe_batch,
    )
    cache: ScoreStore = ScoreCache(options.cache_size, options.cache_bytes)
    if options.redis_url:
        from sidecar.rerank.shared_cache import TieredScoreStore

        cache = TieredScoreStore(cache, options.redis_url, ttl_s=options.redis_ttl_s,
                                 timeout_s=options.redis_timeout_s)
    return RerankService(backend=backend, encoder=encoder, scheduler=scheduler, cache=cache,
                         instruction=options.instruction, passage_tokenizer=options.passage_tokenizer)


def build_reranker(options: RerankerOptions) -> RerankService:
    """Build the backend named by options and the service around it."""
    started = time.perf_counter()
    if options.model_process and options.backend != "remote":
        from sidecar.backends.model_process import ModelProcessBackend

        backend: Backend = ModelProcessBackend(options)
    else:
        backend = create_backend(options)
    service = build_service(backend, options)
    metrics().set_model(options.backend, service.model, options.resolved_quantization, backend.device)
    logger.info("reranker_built backend=%s model=%s device=%s took_s=%.1f", options.backend, service.model,
                backend.device, time.perf_counter() - started)
    return service
