"""Prompt encoding: token-level parity with the official Qwen3-Reranker recipe."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.rerank.options import DEFAULT_INSTRUCTION
from sidecar.rerank.prompt import (
    QWEN3_PREFIX,
    QWEN3_SUFFIX,
    CrossEncoderPairEncoder,
    Qwen3PromptEncoder,
    load_tokenizer,
)
from sidecar.rerank.random_models import qwen_tokenizer_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DOCS = [
    "Paris is the capital and most populous city of France.",
    "  leading spaces, trailing newline\n",
    "Ünïcödé — 東京は日本の首都です。 emojis 🎉🎉",
    "code: def f(x):\n    return x ** 2\n",
    "",
    ":-) starts with punctuation",
]


@pytest.fixture(scope="module")
def encoder() -> Qwen3PromptEncoder:
    return Qwen3PromptEncoder(load_tokenizer(qwen_tokenizer_dir() / "tokenizer.json"), max_length=8192)


@pytest.fixture(scope="module")
def reference_tokenizer():
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir()))


def reference_ids(tokenizer, instruction: str, query: str, doc: str) -> list[int]:
    """Official format as one string, tokenized in one go (independent of the engine's pieces)."""
    text = f"{QWEN3_PREFIX}<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}{QWEN3_SUFFIX}"
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_answer_token_ids_are_qwen3s(encoder: Qwen3PromptEncoder) -> None:
    assert (encoder.answers.yes, encoder.answers.no) == (9693, 2152)


@pytest.mark.parametrize("doc", DOCS)
def test_prompt_matches_reference_tokenization(encoder, reference_tokenizer, doc: str) -> None:
    query = "what is the capital of France?"
    (item,) = encoder.encode(query, [doc], DEFAULT_INSTRUCTION)
    assert item.input_ids == reference_ids(reference_tokenizer, DEFAULT_INSTRUCTION, query, doc)


@settings(max_examples=60, deadline=None)
@given(query=st.text(min_size=1, max_size=40), doc=st.text(max_size=200))
def test_prompt_matches_reference_for_any_text(encoder, reference_tokenizer, query: str, doc: str) -> None:
    (item,) = encoder.encode(query, [doc], "Find passages")
    assert item.input_ids == reference_ids(reference_tokenizer, "Find passages", query, doc)


def test_truncation_cuts_the_document_and_keeps_prefix_and_suffix(encoder) -> None:
    short = Qwen3PromptEncoder(load_tokenizer(qwen_tokenizer_dir() / "tokenizer.json"), max_length=128)
    (item,) = short.encode("query", ["word " * 1000], DEFAULT_INSTRUCTION)
    prefix = load_tokenizer(qwen_tokenizer_dir() / "tokenizer.json").encode(QWEN3_PREFIX, add_special_tokens=False).ids
    suffix = load_tokenizer(qwen_tokenizer_dir() / "tokenizer.json").encode(QWEN3_SUFFIX, add_special_tokens=False).ids
    assert len(item.input_ids) == 128
    assert item.input_ids[: len(prefix)] == prefix
    assert item.input_ids[-len(suffix) :] == suffix


def test_shared_prefix_is_identical_across_a_querys_documents(encoder) -> None:
    items = encoder.encode("capital of france", ["Paris.", "Berlin is in Germany.", "Lyon"], DEFAULT_INSTRUCTION)
    shared = {tuple(i.input_ids[: i.shared_prefix_len]) for i in items}
    assert len(shared) == 1
    assert all(0 < i.shared_prefix_len < len(i.input_ids) for i in items)


def test_cross_encoder_pair_truncates_only_the_document() -> None:
    from sidecar.backends.cross_encoder import bundled_model_dir

    tokenizer_file = bundled_model_dir() / "tokenizer.json"
    encoder = CrossEncoderPairEncoder(tokenizer_file, max_length=512)
    query = "how long is the great wall of china"
    (long_item, short_item) = encoder.encode(query, ["wall " * 2000, "It is long."], "ignored")
    query_ids = load_tokenizer(tokenizer_file).encode(query, add_special_tokens=False).ids
    assert len(long_item.input_ids) == 512
    assert long_item.input_ids[1 : 1 + len(query_ids)] == query_ids
    assert long_item.token_type_ids is not None and long_item.token_type_ids[-1] == 1
    assert len(short_item.input_ids) < 20
    assert encoder.encode("q " * 600, ["doc"], "")[0].cost <= 512


def test_cross_encoder_long_query_gives_the_same_pairs_without_tokenizing_it_per_document() -> None:
    import random
    import time

    from sidecar.backends.cross_encoder import bundled_model_dir

    tokenizer_file = bundled_model_dir() / "tokenizer.json"
    encoder = CrossEncoderPairEncoder(tokenizer_file, max_length=512)
    reference = load_tokenizer(tokenizer_file)
    reference.enable_truncation(512, strategy="longest_first")
    rng = random.Random(7)
    words = ["".join(rng.choice("abcdefghijkl.,é") for _ in range(rng.randint(1, 9))) for _ in range(5000)]
    query = " ".join(words)[:12000]
    documents = [" ".join(rng.sample(words, n)) for n in (1, 40, 150, 300, 700, 1500)]
    got = encoder.encode(query, documents, "")
    expected = reference.encode_batch([(query, doc) for doc in documents])
    assert [g.input_ids for g in got] == [e.ids for e in expected]
    assert [g.token_type_ids for g in got] == [e.type_ids for e in expected]
    started = time.perf_counter()
    encoder.encode(query * 8, documents * 20, "")  # ~100k characters x 120 documents
    assert time.perf_counter() - started < 10


def test_encoding_stops_at_the_deadline() -> None:
    import time

    from sidecar.backends.cross_encoder import bundled_model_dir
    from sidecar.rerank.deadline import DeadlineExceeded

    encoder = CrossEncoderPairEncoder(bundled_model_dir() / "tokenizer.json", max_length=512)
    with pytest.raises(DeadlineExceeded):
        encoder.encode("q", ["doc"] * 100, "", deadline=time.monotonic() - 1)


@pytest.mark.parametrize("kind", ["cross-encoder", "qwen3"])
def test_document_budget_is_exactly_what_the_model_reads_whole(kind) -> None:
    """Passages (on by default) leave a text of at most document_budget tokens whole: such a text must
    reach the model uncut, and one token more must not (Qwen3: two, the budget keeps one token for a
    BPE merge where the document joins the prompt)."""
    from sidecar.backends.cross_encoder import bundled_model_dir

    if kind == "qwen3":
        path = qwen_tokenizer_dir() / "tokenizer.json"
        encoder = Qwen3PromptEncoder(load_tokenizer(path), max_length=160)
    else:
        path = bundled_model_dir() / "tokenizer.json"
        encoder = CrossEncoderPairEncoder(path, max_length=160)
    tokenizer = load_tokenizer(path)
    query = "how do solar panels produce electricity"
    budget = encoder.document_budget(query, DEFAULT_INSTRUCTION)
    slack = 1 if kind == "qwen3" else 0
    words = " ".join(f"word{i % 97} sun" for i in range(400)).split()

    def longest(limit: int) -> int:  # the most words within limit tokens
        return next(n for n in range(1, len(words))
                    if len(tokenizer.encode(" ".join(words[:n + 1]), add_special_tokens=False).ids) > limit)

    fits = " ".join(words[:longest(budget)])
    over = " ".join(words[:longest(budget + slack) + 1])  # past the budget (and the slack)
    whole, cut = encoder.encode(query, [fits, over], DEFAULT_INSTRUCTION)
    fit_ids = tokenizer.encode(fits, add_special_tokens=False).ids
    assert budget - 3 <= len(fit_ids) <= budget

    def contains(ids: list[int], part: list[int]) -> bool:
        return any(ids[i:i + len(part)] == part for i in range(len(ids) - len(part) + 1))

    assert contains(whole.input_ids, fit_ids[1:]), "the whole document reaches the model"
    over_ids = tokenizer.encode(over, add_special_tokens=False).ids
    assert not contains(cut.input_ids, over_ids[1:]) and len(cut.input_ids) <= 160
