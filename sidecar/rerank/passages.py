"""Split long documents into token-accurate passages and aggregate passage scores per document.

Pure: a `Splitter` gives token offsets and token counts; nothing here loads a model.
Every passage is an exact substring of the document text (a character span), at most
`max_tokens` tokens long by the splitter's own tokenizer, and consecutive passages share at
least `overlap` tokens. Cuts prefer a sentence end, then a word boundary, inside the last
few tokens of a passage (never inside a word or a multi-byte character when a cleaner cut is
near).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

AGGREGATES = ("max", "mean")
MAX_TOKENS_LIMIT = 8192
MAX_PASSAGES_LIMIT = 64
# How far back (in tokens) a cut may move to land on a sentence end or a word boundary.
MAX_SLACK_TOKENS = 16
_SENTENCE_END = ".!?"
_WORD = re.compile(r"\S+")


class PassageOptionError(ValueError):
    """An invalid passage option; `key` names it (e.g. max_tokens) for the caller's error."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, kw_only=True)
class PassageOptions:
    """How to split documents into passages and combine their scores; off by default."""

    enabled: bool = False
    max_tokens: int = 256
    overlap: int = 32
    aggregate: str = "max"
    top_k: int = 2
    max_passages: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise PassageOptionError("enabled", "enabled must be true or false")
        for key in ("max_tokens", "overlap", "top_k", "max_passages"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise PassageOptionError(key, f"{key} must be an integer")
        if not 16 <= self.max_tokens <= MAX_TOKENS_LIMIT:
            raise PassageOptionError("max_tokens", f"max_tokens must be in 16..{MAX_TOKENS_LIMIT}")
        if not 0 <= self.overlap <= self.max_tokens // 2:
            raise PassageOptionError("overlap", "overlap must be in 0..max_tokens/2")
        if self.aggregate not in AGGREGATES:
            raise PassageOptionError("aggregate", f"aggregate must be one of {', '.join(AGGREGATES)}")
        if not 1 <= self.max_passages <= MAX_PASSAGES_LIMIT:
            raise PassageOptionError("max_passages", f"max_passages must be in 1..{MAX_PASSAGES_LIMIT}")
        if not 1 <= self.top_k <= self.max_passages:
            raise PassageOptionError("top_k", "top_k must be in 1..max_passages")


@dataclass(frozen=True, slots=True)
class Passage:
    """One passage: the character span [start, end) of the document and its text."""

    start: int
    end: int
    text: str


class Splitter(Protocol):
    """Tokenizes text for passage splitting."""

    name: str

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Return the (start, end) character span of every token, in order."""
        ...

    def count(self, text: str) -> int:
        """Return the number of tokens of text."""
        ...


class TokenizerSplitter:
    """Token offsets from a `tokenizers.Tokenizer` (the serving model's own tokenizer)."""

    def __init__(self, tokenizer, name: str = "tokenizer") -> None:
        # Callers pass a tokenizer with padding and truncation off (prompt.load_tokenizer).
        self._tokenizer = tokenizer
        self.name = name

    @classmethod
    def from_file(cls, path: str | Path) -> TokenizerSplitter:
        """Load tokenizer.json (padding and truncation off)."""
        from sidecar.rerank.prompt import load_tokenizer

        path = Path(path).expanduser()
        return cls(load_tokenizer(path), name=path.name)

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


class WhitespaceSplitter:
    """Whitespace-separated words as tokens: the fallback when the backend has no tokenizer.

    A remote model's tokenizer usually makes ~1.3 tokens per English word, so pick
    max_tokens with that margin (or set RESCORE_PASSAGE_TOKENIZER to its tokenizer.json).
    """

    name = "whitespace"

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _WORD.finditer(text)]

    def count(self, text: str) -> int:
        return len(_WORD.findall(text))


def split(text: str, splitter: Splitter, *, max_tokens: int, overlap: int, max_passages: int,
          whole_tokens: int = 0, query: str | None = None) -> list[Passage]:
    """Split text into at most max_passages passages of at most max_tokens tokens.

    A text of at most max(max_tokens, whole_tokens) tokens is one passage (the whole text):
    whole_tokens is what the model reads of a document whole (RerankService.document_budget),
    so a text the model would have read entire is scored exactly as without passages. Beyond the
    cap the first passage (the document's head: title, summary) is kept, and the other
    max_passages-1 are the ones that match the query best (see select_passages), in document
    order; without a query (or no query word in the text) the first max_passages-1 and the last
    one are kept: the tail (conclusions, holdings, signatures) is where a summary usually sits.
    """
    offsets = splitter.offsets(text)
    if len(offsets) <= max(max_tokens, whole_tokens):
        return [Passage(0, len(text), text)]
    verified = max_passages - 1
    spans = _windows(text, offsets, splitter, max_tokens=max_tokens, overlap=overlap, verified=verified)
    if len(spans) > max_passages:
        keep = select_passages([_passage(text, offsets, a, b).text for a, b in spans], query, max_passages)
        last = len(spans) - 1
        # _windows fitted the first `verified` windows and the last; a kept one between is fitted now.
        spans = [spans[i] if i < verified or i == last else (spans[i][0], _fit(text, offsets, *spans[i], splitter,
                                                                                max_tokens))
                 for i in keep]
    passages = [_passage(text, offsets, a, b) for a, b in spans]
    passages = [p for p in passages if p.text]
    return passages or [Passage(0, len(text), text)]


# Words a query match ignores (English function words: they match every passage).
_STOP_WORDS = frozenset(
    "a an and are as at be been but by can do does for from had has have how i if in into is it its of on or "
    "that the their there these they this to was were what when where which who whom why will with would "
    "not no any all some such than then so also about between both each other our we you your".split())
_QUERY_WORD = re.compile(r"[^\W_]+")


def _stem(word: str) -> str:
    """A crude English stem (prefix match does the rest): 'heated' -> 'heat', 'models' -> 'model'."""
    for suffix in ("ations", "ation", "ings", "ing", "edly", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def query_terms(query: str | None) -> list[str]:
    """Return the distinct stems of the query's content words (lower case, stop words dropped)."""
    words = _QUERY_WORD.findall((query or "").lower())
    return list(dict.fromkeys(_stem(w) for w in words if w not in _STOP_WORDS and len(w) > 1))


def select_passages(texts: list[str], query: str | None, limit: int) -> list[int]:
    """Return the indexes (ascending) of the `limit` passages to score out of a longer document.

    The first passage always; the others by how well they match the query: the sum, over the
    query's content words that occur in the passage, of log(1 + passages / passages holding the
    word) (a word found everywhere in the document tells the passages apart least); ties go to
    the earlier passage. A query with no word in the text keeps the first limit-1 and the last.
    """
    if len(texts) <= limit:
        return list(range(len(texts)))
    if limit <= 1:
        return [0]
    terms = query_terms(query)
    order = {term: j for j, term in enumerate(terms)}
    lengths = sorted({len(term) for term in terms})
    # A term occurs in a passage when it is the prefix of one of its words: the passage's word
    # prefixes of the terms' lengths, intersected with the terms. That is linear in the text, not
    # terms x words (a query of thousands of words against long documents must not cost minutes).
    present = []
    for text in texts:
        prefixes = {w[:k] for w in set(_QUERY_WORD.findall(text.lower())) for k in lengths if k <= len(w)}
        present.append(sorted(order.keys() & prefixes, key=order.__getitem__))
    holding = Counter(term for found in present for term in found)
    weight = {term: math.log(1 + len(texts) / h) for term, h in holding.items()}
    scores = [sum(weight[term] for term in found) for found in present]
    if not any(scores[1:]):
        return [*range(limit - 1), len(texts) - 1]
    rest = sorted(range(1, len(texts)), key=lambda i: (-scores[i], i))[: limit - 1]
    return [0, *sorted(rest)]


def aggregate(scores: list[float | None], method: str, top_k: int) -> tuple[float | None, int | None]:
    """Return (document score, index of its best passage) from its passages' scores.

    None scores (not scored before a deadline) are left out; all None gives (None, None).
    max: the best passage; mean: the mean of the top_k best scored passages.
    """
    scored = sorted(((s, i) for i, s in enumerate(scores) if s is not None), key=lambda p: (-p[0], p[1]))
    if not scored:
        return None, None
    best = scored[0][1]
    if method == "max":
        return scored[0][0], best
    if method == "mean":
        top = [s for s, _ in scored[:top_k]]
        return sum(top) / len(top), best
    raise ValueError(f"unknown aggregate {method!r}")


@dataclass(frozen=True)
class PassagePlan:
    """The passages of a list of documents, flattened for one score() call."""

    passages: list[list[Passage]]

    @property
    def texts(self) -> list[str]:
        """Return every passage text, document by document."""
        return [p.text for doc in self.passages for p in doc]

    @property
    def docs_split(self) -> int:
        """Return how many documents became more than one passage."""
        return sum(len(doc) > 1 for doc in self.passages)

    def per_document(self, flat: list) -> list[list]:
        """Regroup a flat list aligned with `texts` into one list per document."""
        out, at = [], 0
        for doc in self.passages:
            out.append(flat[at:at + len(doc)])
            at += len(doc)
        return out


def plan(texts: list[str], splitter: Splitter, options: PassageOptions, whole_tokens: int = 0,
         query: str | None = None) -> PassagePlan:
    """Split every document text with the same options (texts of at most whole_tokens tokens stay whole);
    query picks the passages of a document longer than max_passages (see split)."""
    return PassagePlan([split(t, splitter, max_tokens=options.max_tokens, overlap=options.overlap,
                              max_passages=options.max_passages, whole_tokens=whole_tokens, query=query)
                        for t in texts])


def _windows(text: str, offsets: list[tuple[int, int]], splitter: Splitter, *, max_tokens: int, overlap: int,
             verified: int) -> list[tuple[int, int]]:
    """Return token windows [first, last) that cover every token.

    The first `verified` windows and the last are re-counted by the tokenizer itself (see
    _fit), so the next window's overlap counts from the fitted end; the ones between only set
    positions (split() fits those it keeps).
    """
    n = len(offsets)
    slack = min(MAX_SLACK_TOKENS, max(1, max_tokens // 8))
    out: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + max_tokens, n)
        if end < n:
            end = _best_cut(text, offsets, lower=max(start + 1, end - slack, start + overlap + 1), upper=end)
        if len(out) < verified or end >= n:
            end = _fit(text, offsets, start, end, splitter, max_tokens)
        out.append((start, end))
        if end >= n:
            return out
        start = max(_snap_start(text, offsets, end - overlap, lower=max(start + 1, end - overlap - slack)),
                    start + 1)


def _best_cut(text: str, offsets: list[tuple[int, int]], *, lower: int, upper: int) -> int:
    """Return the end token in [lower, upper]: a sentence end, else a word boundary, else upper."""
    candidates = range(upper, lower - 1, -1)
    for k in candidates:
        if _boundary(text, offsets, k) == 2:
            return k
    for k in candidates:
        if _boundary(text, offsets, k):
            return k
    return upper


def _snap_start(text: str, offsets: list[tuple[int, int]], k: int, *, lower: int) -> int:
    """Return the start token at or before k (not below lower) on a word boundary, else k."""
    for candidate in range(k, max(lower, 1) - 1, -1):
        if _boundary(text, offsets, candidate):
            return candidate
    return k


def _boundary(text: str, offsets: list[tuple[int, int]], k: int) -> int:
    """Rate the cut before token k: 0 inside a word, 1 word boundary, 2 sentence end."""
    if k <= 0 or k >= len(offsets):
        return 2
    cut, previous_end = offsets[k][0], offsets[k - 1][1]
    if cut < previous_end:
        return 0  # byte-level tokens of one character overlap: never split them
    if not (text[cut - 1:cut].isspace() or text[cut:cut + 1].isspace() or previous_end < cut):
        return 0
    at = cut - 1
    while at >= 0 and text[at].isspace():
        at -= 1
    return 2 if at >= 0 and text[at] in _SENTENCE_END else 1


def _passage(text: str, offsets: list[tuple[int, int]], first: int, last: int) -> Passage:
    """Return the text of tokens [first, last) without its outer whitespace."""
    start, end = offsets[first][0], offsets[last - 1][1]
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Passage(start, end, text[start:end])


def _fit(text: str, offsets: list[tuple[int, int]], first: int, last: int, splitter: Splitter,
         max_tokens: int) -> int:
    """Return the end token so that the passage itself has at most max_tokens tokens.

    Re-tokenizing a substring can differ at its edges (a BPE merge across the cut, a word
    piece that starts it); drop trailing tokens until the passage's own count fits.
    """
    while last - first > 1 and splitter.count(_passage(text, offsets, first, last).text) > max_tokens:
        last -= 1
    return last


def splitter_for(tokenizer_file: str | Path | None) -> Splitter:
    """Return a splitter on tokenizer_file, or on whitespace words when there is none."""
    if tokenizer_file:
        return TokenizerSplitter.from_file(tokenizer_file)
    return WhitespaceSplitter()
