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
