"""The fusion families the robustness suite tries beyond the served methods (`rescore robustness --families`)."""
from __future__ import annotations

import pytest

from sidecar.experiments import robustness as rb
from sidecar.search import fusion

FIRST = [9.0, 8.0, 7.0, 6.0]
DOCS = ["a", "b", "c", "d"]
NO_RANKS: dict[str, dict[str, int]] = {}


def order(fused: list[float]) -> list[int]:
    return fusion.order_by(fused)


def test_guard_keeps_first_stage_order_when_the_model_scores_the_window_alike():
    flat = [-10.0, -10.2, -9.8, -9.9]  # std ~0.15: no signal, but calibrated would still reorder by it
    assert order(rb.guarded(0.5, 1.0)(FIRST, flat, DOCS, NO_RANKS)) == [0, 1, 2, 3]
    assert order(rb._calibrated(FIRST, flat, 1.0)) != [0, 1, 2, 3]
    sure = [-10.0, -10.0, 8.0, -10.0]
    assert order(rb.guarded(0.5, 0.7)(FIRST, sure, DOCS, NO_RANKS))[0] == 2


def test_adaptive_spread_weight_grows_with_the_models_spread():
    logits = [-2.0, -1.0, 2.0, 1.0]
    assert rb._spread([3.0, 3.0]) == 0.0 and rb._spread([0.0, 2.0]) == pytest.approx(1.0)
    # Spread far above the scale: the full weight, i.e. calibrated itself.
    wide = [10 * x for x in logits]
    assert rb.adaptive_by_spread(0.7, 1.0)(FIRST, wide, DOCS, NO_RANKS) == pytest.approx(rb._calibrated(FIRST, wide, 0.7))
    # Spread far below the scale: almost no model weight, first-stage order.
    assert order(rb.adaptive_by_spread(0.7, 1000.0)(FIRST, logits, DOCS, NO_RANKS)) == [0, 1, 2, 3]


def test_agreement_weight_moves_with_rank_correlation_and_stays_in_unit_interval():
    agreeing, reversed_ = [4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]
    # rho = +1: weight 0.5 + 0.5 = 1 (model alone); rho = -1: 0.5 - 0.5 = 0 (first stage alone).
    assert rb.adaptive_by_agreement(0.5, 0.5)(FIRST, agreeing, DOCS, NO_RANKS) == pytest.approx(
        rb._calibrated(FIRST, agreeing, 1.0))
    assert rb.adaptive_by_agreement(0.5, 0.5)(FIRST, reversed_, DOCS, NO_RANKS) == pytest.approx(
        rb._calibrated(FIRST, reversed_, 0.0))
    assert rb.adaptive_by_agreement(0.9, 0.5)(FIRST, agreeing, DOCS, NO_RANKS) == pytest.approx(
        rb._calibrated(FIRST, agreeing, 1.0))


def test_three_way_uses_the_bm25_and_knn_ranks_not_the_hybrid_order():
    ranks = {"bm25": {"d": 1, "c": 2}, "knn": {"d": 1, "b": 2}}  # "a" is in neither top list: rank 101
    fused = rb.three_way(0.5, 0.5, 0.0)(FIRST, [0.0] * 4, DOCS, ranks)
    assert order(fused) == [3, 1, 2, 0]  # d (1, 1), then b and c tie (2 / 101), first-stage order; a last


def test_families_run_on_cached_lists_and_every_member_is_a_permutation():
    runs = {"hybrid": {"q": [(d, s) for d, s in zip(DOCS, FIRST)]},
            "bm25": {"q": [("d", 3.0), ("c", 2.0)]}, "knn": {"q": [("d", 0.9), ("b", 0.8)]}}
    scores = {"q": {"a": -3.0, "b": 1.0, "c": 5.0, "d": -8.0}}
    for family, grid in rb.families().items():
        assert grid, family
        for name, fuse in grid.items():
            ranked = rb.rerank_with(runs, "hybrid", scores, fuse, window=3)
            assert sorted(ranked["q"]) == sorted(DOCS) and ranked["q"][3] == "d", (family, name)


def test_cached_scores_map_to_documents_by_the_current_passage_split():
    """A document split into passages is cached under its own key (it may never have been scored
    whole); one that fits keeps its plain id. Either way the run sees one score per document."""
    from sidecar.commands.robustness import PASSAGE_KEY, by_document

    sig = f"{PASSAGE_KEY}256/32/max/2/8"
    cache = {"q1": {"short": 1.0, "long": 2.0, "long" + sig: 5.0, "new-long" + sig: 7.0}}

    def keys(qid, docs):
        return [d + sig if d.endswith("long") else d for d in docs]

    assert by_document(cache, keys) == {"q1": {"short": 1.0, "long": 5.0, "new-long": 7.0}}
    assert by_document(cache, lambda q, docs: list(docs)) == {"q1": {"short": 1.0, "long": 2.0}}
