"""Per-process caches bounded in bytes, keyed by digests: never raw query or request text.

`ByteLRU` is the one in-memory cache (LRU, a byte budget and an optional entry cap); the score
cache, the stored-template lookups and the parsed request templates are instances of it. Keys are
16-byte blake2b digests (`hashed_key`), so a 100 KB query costs the same 16 bytes as a short one
and no cached entry holds caller text. `ScoreStore` is the interface the rerank service needs:
a shared implementation (Redis, issue 13) can be added next to `ByteLRU` without touching callers.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

V = TypeVar("V")

DIGEST_SIZE = 16
# Bytes one entry costs besides its value's own size: the 16-byte key object, the OrderedDict slot
# and links, the (value, size) tuple and a float value. Measured with tracemalloc at ~234 bytes on
# CPython 3.11/3.12 (tests/unit/test_cache.py checks the budget against tracemalloc).
ENTRY_OVERHEAD = 256


def hashed_key(*parts: str | bytes) -> bytes:
    """Return the 16-byte blake2b digest of the parts (length-prefixed, so ("ab", "c") != ("a", "bc"))."""
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE)
    for part in parts:
        data = part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.digest()


def content_hash(text: str) -> bytes:
    """Return a 16-byte blake2b digest of the text."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=DIGEST_SIZE).digest()


def cache_key(model_key: str, instruction: str, query: str, document: str) -> bytes:
    """Return the cache key of one scored pair: a digest of model, instruction, query and document."""
    return cache_keys(model_key, instruction, query, [document])[0]


def cache_keys(model_key: str, instruction: str, query: str, documents: list[str]) -> list[bytes]:
    """Return the cache keys of a query's pairs (the query, up to 100k characters, is hashed once)."""
    prefix = hashed_key(model_key, instruction, query)
    return [hashed_key(prefix, content_hash(document)) for document in documents]


def text_size(*texts: str) -> int:
    """Return the bytes CPython holds for these strings (for size_of callbacks)."""
    return sum(sys.getsizeof(text) for text in texts)


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of one cache."""

    size: int
    capacity: int
    hits: int
    misses: int
    bytes: int = 0
    max_bytes: int = 0
    evictions: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"size": self.size, "capacity": self.capacity, "bytes": self.bytes, "max_bytes": self.max_bytes,
                "hits": self.hits, "misses": self.misses, "evictions": self.evictions}


class ScoreStore(Protocol):
    """What the rerank service needs from a score cache (ScoreCache; shared_cache.TieredScoreStore: Redis)."""

    state: str  # reported in ext.rerank.cache when not "local"

    def get_many(self, keys: list[bytes]) -> list[float | None]: ...

    def put_many(self, items: Iterable[tuple[bytes, float]]) -> None: ...

    def clear(self) -> None: ...

    def stats(self) -> CacheStats: ...


class ByteLRU(Generic[V]):
    """Thread-safe LRU from digest keys to values, within max_bytes and (when > 0) max_entries.

    Each entry costs ENTRY_OVERHEAD plus size_of(value); the least recently used entries are
    evicted until the total fits. An entry larger than the whole budget is not stored. max_bytes 0
    disables the cache (every lookup misses).
    """

    def __init__(self, max_bytes: int, *, max_entries: int = 0, size_of: Callable[[V], int] | None = None) -> None:
        if max_bytes < 0 or max_entries < 0:
            raise ValueError(f"max_bytes and max_entries must be >= 0, got {max_bytes}, {max_entries}")
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._size_of = size_of
        self._entries: OrderedDict[bytes, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._hits = self._misses = self._evictions = 0

    def get(self, key: bytes) -> V | None:
        """Return the value or None, refreshing a hit."""
        return self.get_many([key])[0]

    def put(self, key: bytes, value: V) -> None:
        """Store one value, evicting least recently used entries beyond the budget."""
        self.put_many([(key, value)])

    def get_many(self, keys: list[bytes]) -> list[V | None]:
        """Return the cached value or None for each key, refreshing the hits."""
        found: list[V | None] = []
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    found.append(None)
                    continue
                self._entries.move_to_end(key)
                found.append(entry[0])
            hits = sum(value is not None for value in found)
            self._hits += hits
            self._misses += len(keys) - hits
        return found

    def put_many(self, items: Iterable[tuple[bytes, V]]) -> None:
        """Store values, evicting the least recently used entries beyond the budget."""
        if self._max_bytes == 0:
            return
        with self._lock:
            for key, value in items:
                if not isinstance(key, bytes) or len(key) != DIGEST_SIZE:
                    raise TypeError("cache keys are 16-byte digests (hashed_key), never raw text")
                cost = ENTRY_OVERHEAD + (self._size_of(value) if self._size_of else 0)
                old = self._entries.pop(key, None)
                if old is not None:
                    self._bytes -= old[1]
                if cost > self._max_bytes:
                    continue
                self._entries[key] = (value, cost)
                self._bytes += cost
            while self._entries and (self._bytes > self._max_bytes
                                     or (self._max_entries and len(self._entries) > self._max_entries)):
                _, (_, cost) = self._entries.popitem(last=False)
                self._bytes -= cost
                self._evictions += 1

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> CacheStats:
        """Return entries, bytes, limits and hit/miss/eviction counters."""
        with self._lock:
            return CacheStats(size=len(self._entries), capacity=self._max_entries, hits=self._hits,
                              misses=self._misses, bytes=self._bytes, max_bytes=self._max_bytes,
                              evictions=self._evictions)


class ScoreCache(ByteLRU[float]):
    """The rerank score cache: digest of (model, instruction, query, document) -> raw score.

    capacity (RESCORE_CACHE_SIZE entries) and max_bytes (RESCORE_CACHE_BYTES) both bound it;
    either one 0 disables it.
    """

    state = "local"  # where scores are shared: this process only (shared_cache.TieredScoreStore: Redis)

    def __init__(self, capacity: int, max_bytes: int = 64 * 1024 * 1024) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        super().__init__(max_bytes if capacity else 0, max_entries=capacity)
