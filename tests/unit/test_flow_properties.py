"""Property tests of windowing and paging in the rerank flow (sidecar.search.flow).

The unit under test is rerank_window + arrange + page_of + first_stage_size, not the model: a
deterministic scorer stands in for it and can leave chosen positions unscored (a deadline).
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.rerank.service import ScoreResult
from sidecar.search import fusion
from sidecar.search.flow import arrange, first_stage_size, page_of, rerank_window
from sidecar.search.syntax import RerankSpec


class TableScorer:
    """Return preset raw scores by document text; None where the 'deadline' cut scoring off."""

    model = "table"

    def __init__(self, scores: dict[str, float | None]) -> None:
        self.scores = scores

    def score(self, query, texts, *, instruction=None, timeout_s=None) -> ScoreResult:
        scores = [self.scores[t] for t in texts]
        scored = sum(s is not None for s in scores)
        status = "ok" if scored == len(texts) else ("partial" if scored else "timeout")
        return ScoreResult(scores=scores, cache_hits=0, scored=scored, took_ms=0.0, model=self.model, status=status)


@st.composite
def cases(draw):
    n = draw(st.integers(0, 40))
    first = draw(st.lists(st.one_of(st.none(), st.floats(-50, 50, allow_nan=False)), min_size=n, max_size=n))
    hits = [{"_id": f"d{i}", "_score": first[i], "_source": {"text": f"doc {i}"}} for i in range(n)]
    model = draw(st.lists(st.floats(-20, 20, allow_nan=False), min_size=n, max_size=n))
    scored = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    table = {f"doc {i}": (model[i] if scored[i] else None) for i in range(n)}
    spec = RerankSpec(
        query_text="q", window_size=draw(st.integers(1, 50)), fields=("text",), instruction=None,
        fusion=draw(st.sampled_from(fusion.METHODS)),
        weights=draw(st.sampled_from([(0.5, 0.5), (0.0, 1.0), (1.0, 0.0), (0.3, 0.7)])),
        rank_constant=60, min_score=draw(st.one_of(st.none(), st.floats(-20, 20, allow_nan=False))),
        timeout_ms=1000, model=None)
    return hits, spec, TableScorer(table)


def ids(hits: list[dict]) -> list[str]:
    return [h["_id"] for h in hits]


@settings(max_examples=300, deadline=None)
@given(cases())
def test_arranged_list_loses_and_duplicates_nothing_and_keeps_the_tail(case):
    hits, spec, scorer = case
    window_hits = hits[:spec.window_size]
    outcome = rerank_window(lambda: scorer, spec, window_hits)
    assert sorted(outcome.order) == list(range(len(window_hits))), "order is a permutation of the window"
    ordered = ids(arrange(hits, spec.window_size, outcome))
    removed = {window_hits[i]["_id"] for i in outcome.removed}
    assert sorted(ordered + list(removed)) == sorted(ids(hits)) and len(set(ordered)) == len(ordered)
    assert ordered[len(window_hits) - len(removed):] == ids(hits[spec.window_size:]), "tail keeps its order"
    # Removals only ever hit scored documents whose model score is below min_score.
    for position in outcome.removed:
        assert outcome.rerank[position] < spec.min_score
    # Unscored documents (deadline) keep their first-stage slot; scored ones fill the other slots
    # in decreasing fused score.
    unscored = [i for i, h in enumerate(window_hits) if scorer.scores[h["_source"]["text"]] is None]
    for slot in unscored:
        assert outcome.order[slot] == slot
    fused = [outcome.fused[p] for p in outcome.order if p in outcome.fused]
    assert fused == sorted(fused, reverse=True)
    expected_status = ("skipped" if not window_hits else
                       "ok" if not unscored else "timeout" if len(unscored) == len(window_hits) else "partial")
    assert outcome.status == expected_status


@settings(max_examples=200, deadline=None)
@given(cases(), st.integers(1, 12), st.integers(0, 60))
def test_pages_fetched_separately_concatenate_to_the_full_list(case, page_size, total):
    hits, spec, scorer = case
    window = spec.window_size
    full_outcome = rerank_window(lambda: scorer, spec, hits[:window])
    full = ids(arrange(hits, window, full_outcome))
    pages: list[str] = []
    for start in range(0, total, page_size):
        # Each page asks OpenSearch for just enough hits, as search_with_rerank does.
        fetched = hits[:first_stage_size(start, page_size, window, may_remove=spec.min_score is not None)]
        outcome = rerank_window(lambda: scorer, spec, fetched[:window])
        pages += ids(page_of(arrange(fetched, window, outcome), start, page_size))
    assert pages[:total] == full[:total]
    assert len(set(pages)) == len(pages)
