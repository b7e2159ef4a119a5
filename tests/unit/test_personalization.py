"""Personalization: user_context validation, the personal score, its scale per fusion, the flow hook.

The flow test uses a table of preset model scores: the unit under test is the term added after
fusion and its explanation, not the model (the integration test runs the real one).
"""
from __future__ import annotations

import pytest

from sidecar.api.errors import ValidationFailed
from sidecar.rerank.service import ScoreResult
from sidecar.search import fusion, personalization
from sidecar.search.flow import _explanation, request_ext, rerank_window
from sidecar.search.personalization import Boost, UserContext, apply, match, parse_user_context, scale
from sidecar.search.syntax import RerankDefaults, build_spec, plan_search


def parse(raw, where="ext.rerank.user_context", **kwargs):
    options = {"brand_field": "brand", "category_field": "category", "default_weight": 0.1, **kwargs}
    return parse_user_context(raw, where, **options)


def test_preferences_become_boosts_on_the_configured_fields():
    context = parse({"preferred_brands": ["Acme"], "preferred_categories": ["Tools"],
                     "boosts": [{"field": "meta.color", "value": "Red", "weight": 0.2}, {"field": "size", "value": 42}],
                     "weight": 0.3}, brand_field="maker.name")
    assert context.weight == 0.3
    assert context.boosts == (
        Boost(field="maker.name", value="acme", weight=personalization.PREFERRED_WEIGHT),
        Boost(field="category", value="tools", weight=personalization.PREFERRED_WEIGHT),
        Boost(field="meta.color", value="red", weight=0.2),
        Boost(field="size", value="42", weight=1.0),
    )
    assert context.fields == ("maker.name", "category", "meta.color", "size")
    assert parse({}).weight == 0.1, "the setting's weight when the request gives none"


@pytest.mark.parametrize("raw, field", [
    ([], "ext.rerank.user_context"),
    ({"brands": ["x"]}, "ext.rerank.user_context.brands"),
    ({"weight": 1.5}, "ext.rerank.user_context.weight"),
    ({"weight": True}, "ext.rerank.user_context.weight"),
    ({"preferred_brands": "acme"}, "ext.rerank.user_context.preferred_brands"),
    ({"preferred_brands": ["acme", " "]}, "ext.rerank.user_context.preferred_brands[1]"),
    ({"preferred_categories": [None]}, "ext.rerank.user_context.preferred_categories[0]"),
    ({"boosts": {"field": "a"}}, "ext.rerank.user_context.boosts"),
    ({"boosts": [{"field": "a", "value": "b"}, {"field": "c", "value": "d", "weight": 2}]},
     "ext.rerank.user_context.boosts[1].weight"),
    ({"boosts": [{"field": "a", "value": "b", "weight": -0.1}]}, "ext.rerank.user_context.boosts[0].weight"),
    ({"boosts": [{"field": "", "value": "b"}]}, "ext.rerank.user_context.boosts[0].field"),
    ({"boosts": [{"field": "a"}]}, "ext.rerank.user_context.boosts[0].value"),
    ({"boosts": [{"field": "a", "value": ["x"]}]}, "ext.rerank.user_context.boosts[0].value"),
    ({"boosts": [{"field": "a", "value": "b", "boost": 1}]}, "ext.rerank.user_context.boosts[0].boost"),
    ({"boosts": ["brand:acme"]}, "ext.rerank.user_context.boosts[0]"),
])
def test_bad_user_context_is_a_422_naming_the_key(raw, field):
    with pytest.raises(ValidationFailed) as caught:
        parse(raw)
    assert caught.value.field == field and caught.value.status == 422


def test_match_reads_dotted_paths_and_lists_case_insensitively():
    context = UserContext(boosts=(Boost(field="brand", value="acme", weight=0.5),
                                  Boost(field="tags.name", value="sale", weight=0.3),
                                  Boost(field="size", value="42", weight=0.1)), weight=0.1)
    found = match({"brand": " ACME ", "tags": [{"name": "new"}, {"name": "Sale"}], "size": 42}, context)
    assert found.personal == pytest.approx(0.9)
    assert [b.field for b in found.matched] == ["brand", "tags.name", "size"]
    assert match({"brand": "acme inc", "tags": []}, context).personal == 0, "exact values, not substrings"
    assert match({"brand": ["other", "acme"]}, context).personal == 0.5
    assert match({}, context).matched == ()


def test_personal_score_is_capped_at_one():
    context = parse({"preferred_brands": ["acme"], "preferred_categories": ["tools"],
                     "boosts": [{"field": "color", "value": "red", "weight": 0.8}]})
    assert match({"brand": "Acme", "category": "tools", "color": "red"}, context).personal == 1.0
    assert match({"brand": "Acme", "category": "tools"}, context).personal == 1.0
    assert match({"brand": "Acme"}, context).personal == 0.5


def test_scale_matches_each_fusion():
    assert scale([0.2, 0.9], method="linear", weights=(0.3, 0.7), rank_constant=60) == pytest.approx(1.0)
    assert scale([0.1], method="rrf", weights=(1.0, 1.0), rank_constant=60) == pytest.approx(2 / 61)
    assert scale([-4.0, 6.0, 1.0], method="replace", weights=(0.5, 0.5), rank_constant=60) == pytest.approx(10.0)
    assert scale([3.0, 3.0], method="replace", weights=(0.5, 0.5), rank_constant=60) == 1.0


@pytest.mark.parametrize("method", ["linear", "rrf", "replace"])
def test_the_term_is_bounded_by_weight_times_the_fused_scale(method):
    first = [9.0, 7.0, 5.0, 3.0]
    rerank = [2.0, 1.5, -1.0, 0.5]
    fused = fusion.fuse(first, rerank, method=method, weights=(0.5, 0.5), rank_constant=60)
    context = parse({"preferred_brands": ["acme"], "preferred_categories": ["tools"], "weight": 0.25})
    sources = [{}, {"brand": "acme"}, {"brand": "acme", "category": "tools"}, {}]
    applied = apply(sources, fused, context, method=method, weights=(0.5, 0.5), rank_constant=60)
    top = max(fused) if method != "replace" else max(fused) - min(fused)
    terms = [a - b for a, b in zip(applied.fused, fused)]
    assert terms[0] == 0 and terms[3] == 0
    assert terms[1] == pytest.approx(0.25 * applied.scale * 0.5)
    assert terms[2] == pytest.approx(0.25 * applied.scale)
    # This window reaches the top of the fused scale, so the full term is exactly weight * that top.
    assert applied.scale == pytest.approx(top)
    assert applied.boosted == 2
    assert applied.details[2]["description"].startswith("personalization weight=0.25")
    assert [d["description"] for d in applied.details[2]["details"]] == ["matched brand=acme", "matched category=tools"]


def test_linear_example_by_hand():
    # first-stage [10, 8, 0] and rerank [1, 0.8, 0] normalize to [1, .8, 0] and [1, .8, 0]:
    # fused (0.5, 0.5) = [1, .8, 0]; a preferred brand on hit 1 adds 0.5 * 1.0 (scale) * 0.5 = 0.25.
    fused = fusion.fuse([10.0, 8.0, 0.0], [1.0, 0.8, 0.0], method="linear", weights=(0.5, 0.5))
    context = parse({"preferred_brands": ["acme"], "weight": 0.5})
    applied = apply([{}, {"brand": "ACME"}, {}], fused, context, method="linear", weights=(0.5, 0.5),
                    rank_constant=60)
    assert applied.fused == pytest.approx([1.0, 1.05, 0.0])
    assert fusion.order_by(applied.fused) == [1, 0, 2]


class TableScorer:
    """Preset raw scores by document text: the model is not what these tests check."""

    model = "table"

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def score(self, query, texts, *, instruction=None, timeout_s=None) -> ScoreResult:
        scores = [self.scores[t] for t in texts]
        return ScoreResult(scores=scores, cache_hits=0, scored=len(scores), took_ms=0.0, model=self.model,
                           status="ok")


HITS = [
    {"_id": "a", "_score": 3.0, "_source": {"text": "anvil one", "brand": "Zenith"}},
    {"_id": "b", "_score": 2.0, "_source": {"text": "anvil two", "brand": "Acme"}},
    {"_id": "c", "_score": 1.0, "_source": {"text": "anvil three", "brand": "Other"}},
]
SCORES = {"anvil one": 2.0, "anvil two": 1.8, "anvil three": -3.0}


def spec_for(raw: dict, *, personalization_on: bool = True):
    defaults = RerankDefaults(personalization=personalization_on)
    return plan_search({"explain": True, "ext": {"rerank": {"query_context": {"query_text": "anvil"},
                                                            "fields": ["text"], **raw}}}, defaults).rerank


def test_rerank_window_adds_the_term_after_fusion_and_explains_it():
    spec = spec_for({"fusion": "replace", "user_context": {"preferred_brands": ["acme"], "weight": 0.1}})
    plain = rerank_window(lambda: TableScorer(SCORES), spec_for({"fusion": "replace"}), [dict(h) for h in HITS])
    boosted = rerank_window(lambda: TableScorer(SCORES), spec, [dict(h) for h in HITS])
    assert plain.order == [0, 1, 2] and boosted.order == [1, 0, 2]
    # replace: scale = spread of the window's model scores (2.0 - -3.0 = 5); term = 0.1 * 5 * 0.5.
    assert boosted.fused[1] == pytest.approx(1.8 + 0.25)
    assert boosted.rerank == plain.rerank, "the model score itself is untouched (min_score reads it)"
    assert boosted.info["personalization"] == {"applied": True, "boosted": 1, "weight": 0.1, "scale": 5.0}
    explanation = _explanation(HITS[1], boosted, 1, spec)
    assert explanation["value"] == pytest.approx(2.05)
    assert [d["description"].split(" ")[0] for d in explanation["details"]] == ["first-stage", "rerank",
                                                                                 "personalization"]
    assert explanation["details"][2]["details"][0]["description"] == "matched brand=acme"
    assert "personalization" not in _explanation(HITS[1], plain, 1, spec_for({}))["description"]


def test_user_context_with_personalization_off_is_reported_not_dropped():
    spec = spec_for({"user_context": {"preferred_brands": ["acme"]}}, personalization_on=False)
    outcome = rerank_window(lambda: TableScorer(SCORES), spec, [dict(h) for h in HITS])
    assert outcome.personal == {} and "personalization" not in outcome.info
    assert request_ext(spec, outcome.info)["personalization"] == {
        "applied": False, "reason": "RESCORE_PERSONALIZATION is off; user_context was ignored"}
    with pytest.raises(ValidationFailed) as caught:
        spec_for({"user_context": {"boosts": [{"field": "brand"}]}}, personalization_on=False)
    assert caught.value.field == "ext.rerank.user_context.boosts[0].value", "validated even when off"


def test_every_syntax_and_the_rescore_spec_accept_user_context():
    defaults = RerankDefaults(personalization=True)
    context = {"preferred_brands": ["acme"]}
    rescore = plan_search({"rescore": {"window_size": 5, "rerank": {"query_text": "q", "user_context": context}}},
                          defaults).rerank
    retriever = plan_search({"retriever": {"text_similarity_reranker": {
        "retriever": {"standard": {"query": {"match_all": {}}}}, "inference_text": "q", "user_context": context}}},
        defaults).rerank
    direct = build_spec({"user_context": context}, "q", defaults, "body")
    for spec in (rescore, retriever, direct):
        assert spec.user_context.boosts[0].value == "acme"
    with pytest.raises(ValidationFailed) as caught:
        build_spec({"user_context": {"weight": 2}}, "q", defaults, "body")
    assert caught.value.field == "body.user_context.weight"
