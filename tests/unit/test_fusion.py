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


@given(scores, st.data(), st.sampled_from(["replace", "linear", "rrf"]),
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
