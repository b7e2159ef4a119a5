import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.search import fusion

scores = st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=60)


def test_replace_uses_rerank_scores():
    assert fusion.fuse([3.0, 2.0, 1.0], [0.1, 0.9, 0.5], method="replace") == [0.1, 0.9, 0.5]


def test_linear_on_min_max_normalized_scores():
    fused = fusion.fuse([10.0, 5.0, 0.0], [0.0, 1.0, 2.0], method="linear", weights=(0.5, 0.5))
    assert fused == pytest.approx([0.5, 0.5, 0.5])
    fused = fusion.fuse([10.0, 5.0, 0.0], [0.0, 1.0, 2.0], method="linear", weights=(0.2, 0.8))
    assert fused == pytest.approx([0.2, 0.5, 0.8])


def test_rrf_by_ranks():
    fused = fusion.fuse([3.0, 2.0, 1.0], [1.0, 3.0, 2.0], method="rrf", weights=(1.0, 1.0), rank_constant=60)
    assert fused == pytest.approx([1 / 61 + 1 / 63, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62])
    assert fusion.order_by(fused) == [1, 0, 2]


def test_missing_first_stage_scores_fall_back_to_rank():
    assert fusion.first_stage_scores([None, None, None]) == [3.0, 2.0, 1.0]
    fused = fusion.fuse([None, None], [0.0, 1.0], method="linear", weights=(1.0, 0.0))
    assert fusion.order_by(fused) == [0, 1]


def test_ties_keep_first_stage_order():
    assert fusion.order_by([0.5, 0.5, 0.9, 0.5]) == [2, 0, 1, 3]


def test_unknown_method_and_length_mismatch_raise():
    with pytest.raises(ValueError):
        fusion.fuse([1.0], [1.0], method="max")
    with pytest.raises(ValueError):
        fusion.fuse([1.0, 2.0], [1.0], method="linear")


@given(scores, st.data(), st.sampled_from(fusion.METHODS),
       st.tuples(st.floats(0, 10), st.floats(0.01, 10)))
def test_fusion_order_is_always_a_permutation(first, data, method, weights):
    rerank = data.draw(st.lists(st.floats(-50, 50, allow_nan=False), min_size=len(first), max_size=len(first)))
    fused = fusion.fuse(first, rerank, method=method, weights=weights)
    assert len(fused) == len(first)
    assert sorted(fusion.order_by(fused)) == list(range(len(first)))


@given(scores)
def test_min_max_is_in_unit_interval(values):
    normalized = fusion.min_max(values)
    assert all(0.0 <= v <= 1.0 for v in normalized)


@given(scores)
def test_rerank_only_weight_follows_the_reranker(values):
    rerank = [float(i) for i in range(len(values))]
    fused = fusion.fuse(values, rerank, method="linear", weights=(0.0, 1.0))
    assert fusion.order_by(fused) == list(reversed(range(len(values))))


def test_z_scores_center_and_scale():
    assert fusion.z_scores([1.0, 2.0, 3.0]) == pytest.approx([-1.224744871, 0.0, 1.224744871])
    assert fusion.z_scores([4.0, 4.0]) == [0.0, 0.0]
    fused = fusion.fuse([3.0, 2.0, 1.0], [0.0, 0.0, 9.0], method="zscore", weights=(0.2, 0.8))
    assert fusion.order_by(fused) == [2, 0, 1]


def test_sigmoid_is_stable_at_the_extremes():
    assert fusion.sigmoid(0.0) == 0.5
    assert fusion.sigmoid(-1000.0) == 0.0 and fusion.sigmoid(1000.0) == 1.0
    assert fusion.sigmoid(2.0) + fusion.sigmoid(-2.0) == pytest.approx(1.0)


def test_calibrated_is_rank_prior_plus_model_probability():
    fused = fusion.fuse([9.0, 7.0, 5.0], [0.0, 0.0, 0.0], method="calibrated", weights=(0.4, 0.6), rank_constant=10)
    assert fused == pytest.approx([0.4 * 1 + 0.3, 0.4 * 10 / 11 + 0.3, 0.4 * 10 / 12 + 0.3])


# Issue 12 item 6: min-max (and z-score, RRF) normalize per window, so in a two-hit window both
# lists become {0, 1} and a hit the model rejects ties with one it is sure about.
TWO_HITS = ([5.2, 5.1], [-11.1, 7.9])  # first stage barely prefers hit 0; the model rejects it


@pytest.mark.parametrize("method", ["linear", "zscore", "rrf"])
def test_per_window_normalizations_tie_a_rejected_hit_with_a_relevant_one(method):
    fused = fusion.fuse(*TWO_HITS, method=method, weights=(0.5, 0.5))
    assert fused[0] == pytest.approx(fused[1]), "documents why these are not the default"


def test_calibrated_ranks_a_two_hit_window_by_the_model_when_it_is_sure():
    fused = fusion.fuse(*TWO_HITS, method="calibrated", weights=(0.5, 0.5), rank_constant=20)
    assert fusion.order_by(fused) == [1, 0]
    assert fused[1] - fused[0] > 0.4


@given(st.integers(2, 60), st.floats(-30, -8))
def test_calibrated_keeps_first_stage_order_when_the_model_finds_nothing(size, low):
    # Every hit far below the model's 0.5 line: the model carries no signal, the prior decides.
    rerank = [low + 0.5 * ((i * 7919) % 5) for i in range(size)]
    fused = fusion.fuse([float(size - i) for i in range(size)], rerank, method="calibrated",
                        weights=(0.5, 0.5), rank_constant=20, temperature=1.0)
    assert fusion.order_by(fused) == list(range(size))


@pytest.mark.parametrize("method", ["calibrated", "relative"])
@given(position=st.integers(1, 3), size=st.integers(4, 60))
def test_score_of_a_hit_does_not_depend_on_the_window_below_it(method, position, size):
    # relative reads one number of the window, its top score, which both windows share.
    rerank = [float((i * 31) % 17 - 8) for i in range(size)]
    first = [float(size - i) for i in range(size)]
    small = fusion.fuse(first[:position + 1], rerank[:position + 1], method=method, rank_constant=20, temperature=4.0)
    large = fusion.fuse(first, rerank, method=method, rank_constant=20, temperature=4.0)
    assert small[position] == pytest.approx(large[position])


def test_relative_is_share_of_the_top_score_plus_model_probability():
    fused = fusion.fuse([8.0, 6.0, 2.0], [0.0, 0.0, 0.0], method="relative", weights=(0.4, 0.6))
    assert fused == pytest.approx([0.4 * 1 + 0.3, 0.4 * 0.75 + 0.3, 0.4 * 0.25 + 0.3])
    # a negative engine score counts as 0; no positive top: the rank prior, as calibrated
    assert fusion.relative_to_top([4.0, -2.0], 20) == [1.0, 0.0]
    assert fusion.relative_to_top([0.0, 0.0, 0.0], 20) == fusion.rank_prior([0.0, 0.0, 0.0], 20)
    # a sorted search (no scores): rank-derived scores n..1 over n
    assert fusion.fuse([None, None], [0.0, 0.0], method="relative", weights=(1.0, 0.0)) == [1.0, 0.5]


def test_relative_keeps_the_first_stage_gaps_that_a_rank_prior_forgets():
    # Hit 1 is far below the top in the first stage and the model likes it a little more than hit 0:
    # calibrated (rank 2 is nearly rank 1) lets the model lift it; relative keeps the clear leader.
    first, rerank = [10.0, 2.0], [1.0, 1.5]
    calibrated = fusion.fuse(first, rerank, method="calibrated", weights=(0.5, 0.5), rank_constant=60)
    relative = fusion.fuse(first, rerank, method="relative", weights=(0.5, 0.5))
    assert fusion.order_by(calibrated) == [1, 0] and fusion.order_by(relative) == [0, 1]
    # ... and where the first stage is nearly tied, the model decides
    close = fusion.fuse([10.0, 9.8], rerank, method="relative", weights=(0.5, 0.5))
    assert fusion.order_by(close) == [1, 0]


def test_relative_ranks_a_two_hit_window_by_the_model_when_it_is_sure():
    fused = fusion.fuse(*TWO_HITS, method="relative", weights=(0.5, 0.5), temperature=4.0)
    assert fusion.order_by(fused) == [1, 0] and fused[1] - fused[0] > 0.4


def test_temperature_softens_saturated_logits():
    # Two hits the model finds clearly relevant (+6, +9): at T=1 both probabilities are ~1 and the
    # prior keeps hit 0 first; at T=4 the model's preference for hit 1 still shows.
    first, rerank = [2.0, 1.0], [6.0, 9.0]
    cold = fusion.fuse(first, rerank, method="calibrated", weights=(0.3, 0.7), rank_constant=60, temperature=1.0)
    warm = fusion.fuse(first, rerank, method="calibrated", weights=(0.3, 0.7), rank_constant=60, temperature=4.0)
    assert fusion.order_by(cold) == [0, 1] and fusion.order_by(warm) == [1, 0]


def test_shipped_default_ranks_the_issue_example_by_the_model():
    # Issue 12 item 6 with the shipped defaults (relative, 0.3/0.7, T=8): vaccines (-11.1)
    # first by a hair in the first stage, bike-tyre (+7.9) second.
    from sidecar.config import Settings

    s = Settings()
    assert (s.rerank_fusion, s.weight_pair, s.rerank_temperature) == ("relative", (0.3, 0.7), 8.0)
    fused = fusion.fuse([5.2, 5.1], [-11.1, 7.9], method=s.rerank_fusion, weights=s.weight_pair,
                        rank_constant=s.rerank_rank_constant, temperature=s.rerank_temperature)
    assert fusion.order_by(fused) == [1, 0] and fused[1] - fused[0] > 0.35


@pytest.mark.parametrize("method", fusion.METHODS)
def test_huge_finite_weights_never_overflow(method):
    # syntax.py accepts weights whose sum is finite; no fusion may turn them into inf (invalid JSON).
    first, rerank = [float(60 - i) for i in range(60)], [float((i * 13) % 29 - 14) for i in range(60)]
    fused = fusion.fuse(first, rerank, method=method, weights=(8e307, 8e307), rank_constant=1)
    assert all(math.isfinite(v) for v in fused)
