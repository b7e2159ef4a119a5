"""Bulk-index a BEIR-layout corpus.jsonl with embeddings, reporting rejected lines."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from opensearchpy import OpenSearch, helpers

log = logging.getLogger(__name__)

# Nested field of a long document's passage vectors ({"embedding", "start", "end"} each): a document
# longer than the embedder reads gets them next to `embedding`, so kNN can find it by any part of
# its text (the stored knn/hybrid templates take the best of `embedding` and its passages).
PASSAGE_VECTORS = "embedding_passages"
# Passages for the embedder: tokens each, tokens shared by consecutive ones, at most this many per
# document (beyond it the first ones and the last are kept, as for the reranker's passages).
PASSAGE_TOKENS = 256
PASSAGE_OVERLAP = 32
MAX_PASSAGE_VECTORS = 64

_RESERVED = {"_id", "title", "text", "embedding", "doc_id", PASSAGE_VECTORS}


class Embedder(Protocol):
    def embed_documents(self, texts: list[str]): ...


@dataclass(frozen=True)
class Rejection:
    """A corpus line that was not indexed, and why."""

    line: int
    reason: str


@dataclass
class IngestReport:
    """Counts and rejections of one ingest run."""

    indexed: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    seconds: float = 0.0


def document_text(doc: dict) -> str:
    """Return the text that represents a document for embedding (title, then body)."""
    title = (doc.get("title") or "").strip()
    text = (doc.get("text") or "").strip()
    return f"{title}\n{text}" if title else text


def decode_lines(lines: Iterable[str]) -> Iterator[tuple[int, dict | Rejection]]:
    """Yield (line number, JSON object with a usable `_id` or Rejection) for each non-blank line."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield number, Rejection(number, f"bad JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(record, dict):
            yield number, Rejection(number, "line is not a JSON object")
            continue
        doc_id = record.get("_id")
        if not isinstance(doc_id, (str, int)) or str(doc_id) == "":
            yield number, Rejection(number, "missing _id")
            continue
        yield number, record


def parse_corpus(lines: Iterable[str]) -> Iterator[tuple[int, dict | Rejection]]:
    """Yield (line number, source document or Rejection) for each non-blank BEIR line."""
    for number, record in decode_lines(lines):
        if isinstance(record, Rejection):
            yield number, record
            continue
        doc_id = record["_id"]
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            yield number, Rejection(number, f"missing text for _id={doc_id}")
            continue
        title = record.get("title")
        source = {"doc_id": str(doc_id), "title": title if isinstance(title, str) else "", "text": text}
        attributes = {k: v for k, v in record.items() if k not in _RESERVED}
        metadata = attributes.pop("metadata", None)
        if isinstance(metadata, dict):
            attributes.update(metadata)
        if attributes:
            source["attributes"] = attributes
        yield number, source


def ingest(client: OpenSearch, index: str, lines: Iterable[str], *, embedder: Embedder | None,
           batch_size: int = 64, progress=None, refresh: bool = True) -> IngestReport:
    """Index every valid line (id = corpus _id, so re-running overwrites); collect rejections."""
    report = IngestReport()
    started = time.perf_counter()
    batch: list[tuple[int, dict]] = []
    # Passage vectors only where the mapping has their nested field (es_templates/index/documents.json);
    # an index made before it, or with another mapping, is indexed as before.
    splitter = passage_splitter(embedder) if embedder is not None and maps_passages(client, index) else None

    def flush() -> None:
        if not batch:
            return
        if embedder is not None:
            texts = [document_text(doc) for _, doc in batch]
            vectors = embedder.embed_documents(texts)
            for (_, doc), vector in zip(batch, vectors):
                doc["embedding"] = vector.tolist()
            if splitter is not None:
                for (_, doc), passages in zip(batch, passage_vectors(embedder, splitter, texts)):
                    if passages:
                        doc[PASSAGE_VECTORS] = passages
        _bulk_index(client, index, [(number, doc["doc_id"], doc) for number, doc in batch], report)
        if progress is not None:
            progress.update(len(batch))
        batch.clear()

    for number, parsed in parse_corpus(lines):
        if isinstance(parsed, Rejection):
            report.rejected.append(parsed)
            continue
        batch.append((number, parsed))
        if len(batch) >= batch_size:
            flush()
    flush()
    if refresh:
        client.indices.refresh(index=index)
    report.seconds = time.perf_counter() - started
    log.info("ingest index=%s indexed=%d rejected=%d seconds=%.1f", index, report.indexed,
             len(report.rejected), report.seconds)
    return report


def maps_passages(client: OpenSearch, index: str) -> bool:
    """Return whether the index maps PASSAGE_VECTORS as a nested field."""
    if not client.indices.exists(index=index):
        return False
    mappings = next(iter(client.indices.get_mapping(index=index).values()), {}).get("mappings", {})
    return (mappings.get("properties", {}).get(PASSAGE_VECTORS) or {}).get("type") == "nested"


def passage_splitter(embedder: Embedder):
    """Return a splitter on the embedder's own tokenizer, or None for an embedder that has none."""
    from sidecar.rerank.passages import TokenizerSplitter

    tokenizer_file = getattr(embedder, "tokenizer_file", None)
    return TokenizerSplitter.from_file(tokenizer_file) if tokenizer_file else None


def passage_vectors(embedder: Embedder, splitter, texts: list[str]) -> list[list[dict]]:
    """Return, per text, its passages' vectors ({"embedding", "start", "end"}); [] for a text the
    embedder reads whole (at most embedder.text_tokens tokens)."""
    from sidecar.rerank.passages import split

    spans = []
    for text in texts:
        parts = split(text, splitter, max_tokens=PASSAGE_TOKENS, overlap=PASSAGE_OVERLAP,
                      max_passages=MAX_PASSAGE_VECTORS, whole_tokens=embedder.text_tokens)
        spans.append(parts if len(parts) > 1 else [])
    flat = [p.text for parts in spans for p in parts]
    vectors = iter(embedder.embed_documents(flat)) if flat else iter(())
    return [[{"embedding": next(vectors).tolist(), "start": p.start, "end": p.end} for p in parts]
            for parts in spans]


def _bulk_index(client: OpenSearch, index: str, docs: list[tuple[int, str, dict]], report: IngestReport) -> None:
    """Bulk-index (line number, _id, source) triples; count successes, record rejections by line."""
    if not docs:
        return
    actions = [{"_index": index, "_id": doc_id, "_source": source} for _, doc_id, source in docs]
    for (number, _, _), (ok, item) in zip(docs, helpers.streaming_bulk(
            client, actions, raise_on_error=False, max_retries=2)):
        if ok:
            report.indexed += 1
        else:
            error = next(iter(item.values())).get("error")
            report.rejected.append(Rejection(number, f"rejected by OpenSearch: {error}"))


def count_lines(path: Path) -> int:
    """Count non-blank lines (for a progress bar total)."""
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def ingest_records(client: OpenSearch, index: str, lines: Iterable[str], *, embedder: Embedder | None,
                   embed_fields: tuple[str, ...] = ("title", "description"), refresh: bool = True) -> IngestReport:
    """Index JSON lines as they are (structured documents such as products), `_id` taken from each.

    Unlike `ingest` (BEIR title/text), every field stays where it is, so mappings like
    es_templates/index/products.json apply; the embedding is of embed_fields joined by newlines.
    """
    report = IngestReport()
    started = time.perf_counter()
    docs: list[tuple[int, str, dict]] = []
    for number, record in decode_lines(lines):
        if isinstance(record, Rejection):
            report.rejected.append(record)
            continue
        docs.append((number, str(record.pop("_id")), record))
    if embedder is not None and docs:
        texts = ["\n".join(str(source.get(f, "")) for f in embed_fields).strip() for _, _, source in docs]
        for (_, _, source), vector in zip(docs, embedder.embed_documents(texts)):
            source["embedding"] = vector.tolist()
    _bulk_index(client, index, docs, report)
    if refresh:
        client.indices.refresh(index=index)
    report.seconds = time.perf_counter() - started
    log.info("ingest_records index=%s indexed=%d rejected=%d seconds=%.1f", index, report.indexed,
             len(report.rejected), report.seconds)
    return report
