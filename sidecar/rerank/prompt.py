"""Turn (query, document) texts into model-ready token ids; pure, no torch.

Qwen3-Reranker: the official prompt, body truncated so that prefix and suffix always survive.
Cross-encoders: the (query, document) pair, truncating only the document.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tokenizers import Tokenizer

from sidecar.backends.base import EncodedPair, InputFormat, TextPair, TokenizerSpec
from sidecar.rerank.deadline import check_deadline

# Documents tokenized at once between two deadline checks.
ENCODE_CHUNK = 32

QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_QUERY_PART = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>:"
YES_TOKEN = "yes"
NO_TOKEN = "no"


def qwen3_body(instruction: str, query: str, document: str) -> str:
    """Return the official Qwen3-Reranker user message for one pair."""
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"


def qwen3_text_pair(instruction: str, query: str, document: str) -> tuple[str, str]:
    """Return the whole Qwen3-Reranker prompt as (query text, document text) for servers that score text.

    vLLM and TEI score a Qwen3-Reranker as a pair (text_1, text_2) and join the two without special
    tokens, so the query side carries prefix, instruction and query and the document side carries the
    document and suffix: together exactly QWEN3_PREFIX + qwen3_body(...) + QWEN3_SUFFIX.
    """
    return (f"{QWEN3_PREFIX}<Instruct>: {instruction}\n<Query>: {query}\n",
            f"<Document>: {document}{QWEN3_SUFFIX}")


class PairEncoder(Protocol):
    """Encodes the documents of one query for a backend."""

    def encode(self, query: str, documents: list[str], instruction: str, *,
               deadline: float | None = None) -> list[EncodedPair] | list[TextPair]:
        """Return one batch item per document, in order (DeadlineExceeded once the deadline passed)."""
        ...

    def document_budget(self, query: str, instruction: str) -> int:
        """Return how many document tokens the model reads whole next to this query (0: unknown)."""
        ...


@dataclass(frozen=True, slots=True)
class AnswerTokens:
    """Token ids of the two answers whose logit difference is the score."""

    yes: int
    no: int


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a tokenizers.Tokenizer from tokenizer.json with padding and truncation off."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def answer_tokens(tokenizer: Tokenizer) -> AnswerTokens:
    """Read the "yes"/"no" token ids from the tokenizer (9693/2152 for Qwen3)."""
    yes, no = tokenizer.token_to_id(YES_TOKEN), tokenizer.token_to_id(NO_TOKEN)
    if yes is None or no is None:
        raise ValueError("tokenizer has no single 'yes'/'no' tokens; not a Qwen3-style reranker")
    return AnswerTokens(yes=yes, no=no)


class Qwen3PromptEncoder:
    """Encode pairs in the official Qwen3-Reranker format, tokenizing prefix and suffix once."""

    def __init__(self, tokenizer: Tokenizer, *, max_length: int) -> None:
        self._tokenizer = tokenizer
        self._prefix = tokenizer.encode(QWEN3_PREFIX, add_special_tokens=False).ids
        self._suffix = tokenizer.encode(QWEN3_SUFFIX, add_special_tokens=False).ids
        self.max_length = max_length
        self.max_body_length = max_length - len(self._prefix) - len(self._suffix)
        if self.max_body_length < 1:
            raise ValueError(f"max_length={max_length} leaves no room for the document")
        self.answers = answer_tokens(tokenizer)

    def encode(self, query: str, documents: list[str], instruction: str, *,
               deadline: float | None = None) -> list[EncodedPair]:
        """Return prefix + truncated body + suffix ids per document, marking the shared prefix.

        Raises DeadlineExceeded when the deadline passes between two chunks of documents.
        """
        query_ids = self._tokenizer.encode(
            QWEN3_QUERY_PART.format(instruction=instruction, query=query), add_special_tokens=False
        ).ids
        out: list[EncodedPair] = []
        for start in range(0, len(documents), ENCODE_CHUNK):
            check_deadline(deadline)
            bodies = [qwen3_body(instruction, query, doc) for doc in documents[start:start + ENCODE_CHUNK]]
            encodings = self._tokenizer.encode_batch(bodies, add_special_tokens=False)
            out.extend(self._wrap(encoding.ids[: self.max_body_length], query_ids) for encoding in encodings)
        check_deadline(deadline)
        return out

    def document_budget(self, query: str, instruction: str) -> int:
        """Return the document tokens that fit beside the prompt, less one for a BPE merge at the join."""
        query_ids = self._tokenizer.encode(QWEN3_QUERY_PART.format(instruction=instruction, query=query),
                                           add_special_tokens=False).ids
        return max(0, self.max_body_length - len(query_ids) - 1)

    def _wrap(self, body: list[int], query_ids: list[int]) -> EncodedPair:
        # BPE may merge across "<Document>:" and the document; share the prefix only when it did not.
        shared = len(self._prefix) + len(query_ids) if body[: len(query_ids)] == query_ids else 0
        return EncodedPair(input_ids=self._prefix + body + self._suffix, shared_prefix_len=shared)


class CrossEncoderPairEncoder:
    """Encode (query, document) for a BERT-style cross-encoder, truncating only the document."""

    def __init__(self, tokenizer_file: str | Path, *, max_length: int) -> None:
        self.max_length = max_length
        # Immutable tokenizers, so concurrent requests never reconfigure a shared one.
        self._plain = load_tokenizer(tokenizer_file)
        self._only_second = load_tokenizer(tokenizer_file)
        self._only_second.enable_truncation(max_length, strategy="only_second")
        self._longest_first = load_tokenizer(tokenizer_file)
        self._longest_first.enable_truncation(max_length, strategy="longest_first")

    def encode(self, query: str, documents: list[str], instruction: str, *,
               deadline: float | None = None) -> list[EncodedPair]:
        """Return [CLS] query [SEP] document [SEP] ids and segment ids, at most max_length long.

        The query is tokenized once; each text of a pair is cut (at a word boundary) to what
        truncation can keep, so a long query or document costs its tokens once, not once per
        pair. Raises DeadlineExceeded when the deadline passes between two chunks.
        """
        del instruction  # cross-encoders take no instruction
        query_encoding = self._plain.encode(query, add_special_tokens=False)
        query_len = len(query_encoding.ids)
        # A query longer than half the window is cut too; only_second would fail on it.
        tokenizer = self._only_second if query_len <= self.max_length // 2 else self._longest_first
        out: list[EncodedPair] = []
        for start in range(0, len(documents), ENCODE_CHUNK):
            check_deadline(deadline)
            chunk = documents[start:start + ENCODE_CHUNK]
            doc_encodings = self._plain.encode_batch(chunk, add_special_tokens=False)
            pairs = []
            for doc, doc_encoding in zip(chunk, doc_encodings, strict=True):
                doc_len = len(doc_encoding.ids)
                # Truncation keeps at most max_length tokens of a text, and beyond that only which text
                # is longer matters: cutting both to a little over max_length, the longer one still
                # longer (a cut ends at a word's end, so give it a word's worth of margin), leaves
                # the pair as it was.
                if query_len != doc_len and min(query_len, doc_len) > self.max_length + 1:
                    keep_query = self.max_length + 1 + _CUT_MARGIN * (query_len > doc_len)
                    keep_doc = self.max_length + 1 + _CUT_MARGIN * (doc_len > query_len)
                elif query_len == doc_len:
                    keep_query = keep_doc = query_len
                else:
                    keep_query = max(self.max_length, doc_len) + 1
                    keep_doc = max(self.max_length, query_len) + 1
                pairs.append((_cut_tokens(query, query_encoding, keep_query),
                              _cut_tokens(doc, doc_encoding, keep_doc)))
            out.extend(EncodedPair(input_ids=e.ids, token_type_ids=e.type_ids) for e in tokenizer.encode_batch(pairs))
        check_deadline(deadline)
        return out


    def document_budget(self, query: str, instruction: str) -> int:
        """Return max_length less the query's tokens and the pair's special tokens: a document up to that is not cut."""
        del instruction
        processor = self._plain.post_processor
        specials = processor.num_special_tokens_to_add(True) if processor is not None else 0
        return max(0, self.max_length - len(self._plain.encode(query, add_special_tokens=False).ids) - specials)


# Tokens one word may span (WordPiece turns words over 100 characters into one [UNK]).
_CUT_MARGIN = 128


def _cut_tokens(text: str, encoding, keep: int) -> str:
    """Return text cut before the first word that starts after its first `keep` tokens."""
    words = encoding.word_ids
    if len(words) <= keep:
        return text
    last = words[keep]
    for index in range(keep + 1, len(words)):
        if words[index] is not None and words[index] != last:
            return text[:encoding.offsets[index][0]]
    return text


class TextPairEncoder:
    """Pass texts through untouched, for backends that tokenize on their own server."""

    def encode(self, query: str, documents: list[str], instruction: str, *,
               deadline: float | None = None) -> list[TextPair]:
        """Return one TextPair per document."""
        check_deadline(deadline)
        return [TextPair(query=query, document=doc, instruction=instruction) for doc in documents]

    def document_budget(self, query: str, instruction: str) -> int:
        """Unknown: the server tokenizes (passages then split at max_tokens)."""
        del query, instruction
        return 0


def build_encoder(input_format: InputFormat, spec: TokenizerSpec | None) -> PairEncoder:
    """Return the encoder matching a backend's input format and tokenizer."""
    if input_format is InputFormat.TEXT:
        return TextPairEncoder()
    if spec is None:
        raise ValueError(f"input format {input_format.value} needs a tokenizer")
    if input_format is InputFormat.CAUSAL_LM_PROMPT:
        return Qwen3PromptEncoder(load_tokenizer(spec.tokenizer_file), max_length=spec.max_length)
    return CrossEncoderPairEncoder(spec.tokenizer_file, max_length=spec.max_length)

