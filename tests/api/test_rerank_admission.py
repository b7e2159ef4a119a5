"""A rerank the model would refuse is refused before its documents are split into passages.

Splitting tokenizes every document of the window; under load most reranks are refused, and that
work in the request thread cost the plain traffic (measured: a 32-client mixed load fell from
~150 to ~26 requests/s when passages came on by default with the split ahead of admission).
"""
from __future__ import annotations

import threading
import time

import pytest

from sidecar import create_app
from sidecar.config import Settings
from sidecar.rerank.cache import ScoreCache, cache_keys
from sidecar.rerank.passages import WhitespaceSplitter
from sidecar.rerank.scheduler import BatchPolicy, OverloadedError, Scheduler
from sidecar.rerank.service import RerankService, ScoreResult
from tests.conftest import free_port

LONG = " ".join(f"word{i}" for i in range(300))  # over passage_max_tokens (256): passages split it


class CountingSplitter(WhitespaceSplitter):
    def __init__(self) -> None:
        self.calls = 0

    def offsets(self, text):
        self.calls += 1
        return super().offsets(text)


class Reranker:
    """Refuses (like a full scheduler) or scores by length; records what reached it."""

    model = "fake"

    def __init__(self, *, refuse: bool) -> None:
        self.refuse = refuse
        self.passage_splitter = CountingSplitter()
        self.scored: list[list[str]] = []

    def admit(self, query, texts, instruction=None, timeout_s=None) -> None:
        if self.refuse:
            raise OverloadedError("all 1 rerank slots are busy (RESCORE_RERANK_SLOTS)")

    def document_budget(self, query, instruction=None) -> int:
        return 8

    def score(self, query, texts, instruction=None, timeout_s=None):
        self.scored.append(list(texts))
        return ScoreResult(scores=[float(len(t)) for t in texts], cache_hits=0, scored=len(texts), took_ms=1.0,
                           model=self.model, status="ok")


def _rescore(reranker: Reranker) -> dict:
    settings = Settings.from_env({}, opensearch_url=f"http://127.0.0.1:{free_port()}", preload_model=False)
    assert settings.passages, "passages are on by default"
    app = create_app(settings)
    app.extensions["rescore"]._reranker = reranker
    hits = [{"_id": str(i), "_score": 1.0 / (i + 1), "_source": {"text": f"{LONG} doc{i}"}} for i in range(5)]
    response = app.test_client().post("/v1/rescore", json={"query": "q", "hits": hits})
    assert response.status_code == 200
    return response.get_json()


def test_a_refused_rerank_splits_nothing():
    reranker = Reranker(refuse=True)
    body = _rescore(reranker)
    assert body["ext"]["rerank"]["status"] == "overloaded"
    assert [h["_id"] for h in body["hits"]] == ["0", "1", "2", "3", "4"]  # first-stage order
    assert reranker.passage_splitter.calls == 0 and reranker.scored == []


def test_an_admitted_rerank_splits_and_scores():
    reranker = Reranker(refuse=False)
    body = _rescore(reranker)
    assert body["ext"]["rerank"]["status"] == "ok"
    assert reranker.passage_splitter.calls >= 5 and len(reranker.scored[0]) > 5  # every document split


class _Backend:
    model_key = "m@r/none"


@pytest.fixture
def busy_service():
    """A RerankService whose only rerank slot is held by a request the model is still scoring."""
    release = threading.Event()

    def score(batch):
        release.wait(10)
        return [1.0] * len(batch)

    scheduler = Scheduler(score, cost_fn=len, policy=BatchPolicy(token_budget=10_000, max_batch_size=64),
                          queue_size=100, max_requests=1)
    service = RerankService(backend=_Backend(), encoder=None, scheduler=scheduler, cache=ScoreCache(100, 1 << 20),
                            instruction="")
    holder = threading.Thread(target=scheduler.run, args=(["held"],), daemon=True)
    holder.start()
    deadline = time.monotonic() + 5
    while scheduler.active_requests < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    yield service
    release.set()
    holder.join(10)
    scheduler.close()


def test_service_admit_refuses_uncached_work_and_passes_cached(busy_service):
    with pytest.raises(OverloadedError):
        busy_service.admit("q", ["new document"], timeout_s=5)
    busy_service._cache.put_many([(cache_keys(busy_service.model, "", "q", ["known document"])[0], 0.5)])
    busy_service.admit("q", ["known document"], timeout_s=5)  # all cached: nothing for the model to do


class _CountingCache(ScoreCache):
    def __init__(self) -> None:
        super().__init__(100, 1 << 20)
        self.reads = 0

    def get_many(self, keys):
        self.reads += 1
        return super().get_many(keys)


def test_service_admit_reads_the_cache_only_for_a_refused_request(busy_service):
    idle = Scheduler(lambda batch: [1.0] * len(batch), cost_fn=len,
                     policy=BatchPolicy(token_budget=10_000, max_batch_size=64), queue_size=100, max_requests=1)
    cache = _CountingCache()
    try:
        RerankService(backend=_Backend(), encoder=None, scheduler=idle, cache=cache, instruction="").admit(
            "q", ["a document"], timeout_s=5)
        assert cache.reads == 0  # room for every document: score() does the one lookup
    finally:
        idle.close()
    busy_service._cache = counting = _CountingCache()
    with pytest.raises(OverloadedError):
        busy_service.admit("q", ["new document"], timeout_s=5)
    assert counting.reads == 1  # refused: the cache decides whether the cached part still reranks
