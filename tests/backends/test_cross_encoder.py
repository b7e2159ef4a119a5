"""The trained MiniLM cross-encoder ranks relevant passages first."""

from __future__ import annotations

import pytest

from sidecar.rerank.options import RerankerOptions
from sidecar.rerank.service import build_reranker

CASES = [
    ("what is the capital of france",
     "Paris is the capital and most populous city of France.",
     ["Bananas are an excellent source of potassium.", "The Great Barrier Reef lies off the coast of Australia."]),
    ("how do vaccines work",
     "Vaccines train the immune system to recognise a pathogen by exposing it to a harmless antigen.",
     ["The stock market closed higher on Friday.", "Python lists are mutable sequences."]),
    ("who wrote pride and prejudice",
     "Pride and Prejudice is an 1813 novel by Jane Austen.",
     ["Mount Everest is the highest mountain above sea level.", "Photosynthesis converts light into energy."]),
    ("boiling point of water",
     "At sea level, water boils at 100 degrees Celsius (212 degrees Fahrenheit).",
     ["The Eiffel Tower was completed in 1889.", "Cats sleep for most of the day."]),
]


@pytest.fixture(scope="module")
def service():
    svc = build_reranker(RerankerOptions(backend="cross-encoder"))
    yield svc
    svc.close()


@pytest.mark.parametrize(("query", "relevant", "irrelevant"), CASES)
def test_relevant_passage_outscores_irrelevant_ones(service, query, relevant, irrelevant) -> None:
    result = service.score(query, [*irrelevant, relevant])
    assert result.status == "ok"
    assert result.scores[-1] > max(result.scores[:-1]) + 3.0


def test_long_documents_are_truncated_not_rejected(service) -> None:
    result = service.score("capital of france", ["Paris is the capital of France. " * 400])
    assert result.status == "ok" and result.scores[0] > 0


SENTENCES = [
    "Solar cells turn sunlight into a current when photons free electrons in doped silicon.",
    "The inverter changes the panel's direct current into the alternating current of the grid.",
    "Grain harvests depend on rain in spring and on dry weather when the crop is brought in.",
    "Migrating birds rest in wetlands along the coast before they cross the open sea.",
    "Batteries store the surplus of a sunny afternoon for the evening, when demand peaks.",
    "The old harbour was dredged so that larger ships could unload at the new quay.",
]


def _window(words: list[int], seed: int = 3) -> list[dict]:
    import random

    rng = random.Random(seed)
    hits = []
    for k, n in enumerate(words):
        parts: list[str] = []
        while sum(len(p.split()) for p in parts) < n:
            parts.append(rng.choice(SENTENCES))
        hits.append({"_id": f"d{k}", "_score": float(len(words) - k), "_source": {"text": " ".join(parts)}})
    return hits


def _spec(passages_on: bool):
    from sidecar.rerank.passages import PassageOptions
    from sidecar.search.syntax import RerankSpec

    return RerankSpec(query_text="how do solar panels make electricity", window_size=50, fields=("text",),
                      instruction=None, fusion="calibrated", weights=(0.3, 0.7), rank_constant=20, temperature=4.0,
                      min_score=None, timeout_ms=300000, model=None,
                      passages=PassageOptions(enabled=passages_on, max_tokens=256, overlap=32, max_passages=8))


def test_passages_on_leave_texts_that_fit_the_model_exactly_as_off(service) -> None:
    """Passages are on by default: a text the model reads whole must give the very same pair and score.

    The window holds texts of 30 to ~470 tokens, most of them longer than a 256-token passage but
    within the model's 512-token window beside the query: split at 256 (the rule before passages
    were on by default) they would be scored as passages, and their scores and order would change.
    """
    from sidecar.search.flow import PASSAGE_HIGHLIGHT, rerank_window

    query = _spec(True).query_text
    budget = service.document_budget(query)
    hits = _window([20, 210, 230, 250, 270, 290, 310, 330, 350, 60])
    tokens = [service.passage_splitter.count(h["_source"]["text"]) for h in hits]
    assert sum(256 < t <= budget for t in tokens) >= 6 and max(tokens) <= budget, (tokens, budget)
    service.clear_cache()
    on = rerank_window(lambda: service, _spec(True), hits)
    assert on.status == "ok" and on.info["scored"] == len(hits) and "passages" not in on.info
    off = rerank_window(lambda: service, _spec(False), [dict(h) for h in hits])
    assert off.info["cache_hits"] == len(hits) and off.info["scored"] == 0, "the same pairs, not re-scored"
    assert (on.order, on.fused, on.rerank) == (off.order, off.fused, off.rerank)
    assert all(PASSAGE_HIGHLIGHT not in h.get("highlight", {}) for h in hits), "no highlight for whole texts"

    # One text past the model's window in the same window: only it is split, the others keep their scores.
    long_hits = hits + _window([1400], seed=5)
    long_hits[-1]["_source"]["text"] += " Photovoltaic panels generate electricity from sunlight all day long."
    mixed = rerank_window(lambda: service, _spec(True), long_hits)
    assert mixed.info["passages"]["docs_split"] == 1 and mixed.info["passages"]["passages"] == len(hits) + 8
    assert mixed.info["cache_hits"] == len(hits), "the whole texts are the cached pairs"
    assert {i: mixed.rerank[i] for i in range(len(hits))} == on.rerank
    assert PASSAGE_HIGHLIGHT in long_hits[-1]["highlight"]
