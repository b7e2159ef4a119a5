"""Thread-safe LRU cache of raw rerank scores.

Key: (model+revision+quantization, instruction, query, blake2b of the document text), so a
score is reused only for the same model, prompt and content. Redis is not implemented: each
worker process keeps its own cache.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

CacheKey = tuple[str, str, str, bytes]


def content_hash(text: str) -> bytes:
    """Return a 16-byte blake2b digest of the text."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def cache_key(model_key: str, instruction: str, query: str, document: str) -> CacheKey:
    """Return the cache key of one scored pair."""
    return (model_key, instruction, query, content_hash(document))


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of one cache."""

    size: int
    capacity: int
    hits: int
    misses: int


class ScoreCache:
    """LRU mapping CacheKey -> score; capacity 0 disables it (every lookup misses)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._capacity = capacity
        self._entries: OrderedDict[CacheKey, float] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get_many(self, keys: list[CacheKey]) -> list[float | None]:
        """Return the cached score or None for each key, refreshing the hits."""
        found: list[float | None] = []
        with self._lock:
            for key in keys:
                score = self._entries.get(key)
                if score is not None:
                    self._entries.move_to_end(key)
                found.append(score)
            hits = sum(score is not None for score in found)
            self._hits += hits
            self._misses += len(keys) - hits
        return found

    def put_many(self, items: Iterable[tuple[CacheKey, float]]) -> None:
        """Store scores, evicting the least recently used entries beyond capacity."""
        if self._capacity == 0:
            return
        with self._lock:
            for key, score in items:
                self._entries[key] = score
                self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()

    def stats(self) -> CacheStats:
        """Return size, capacity and hit/miss counters."""
        with self._lock:
            return CacheStats(size=len(self._entries), capacity=self._capacity, hits=self._hits, misses=self._misses)
