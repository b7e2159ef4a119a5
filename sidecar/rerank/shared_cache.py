"""Score cache shared by sidecar replicas through Redis, in front of each process's own ByteLRU.

Keys are `rescore:score:<hex digest>` of the same 16-byte digests the local cache uses (model,
instruction, query and document hashed: never raw text); values are the raw score as 8 bytes, so a
score read back is bit-identical to the one written. Each key has a TTL; the Redis server's own
`maxmemory` + `allkeys-lru` bounds the total (see docker-compose.yml). The first replica to score a
pair wins (SET NX): a replica that scored it concurrently keeps the winner's value locally, so page N
served by any replica is a slice of the same reranked window.

Redis is never on the failure path: a Redis error or timeout marks it unavailable for
retry_after_s, during which lookups use the local cache alone, and `state` says so (the search
response reports it in ext.rerank.cache).
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Iterable

from sidecar.observability.redact import redact_url
from sidecar.rerank.cache import CacheStats, ScoreCache

logger = logging.getLogger(__name__)

KEY_PREFIX = b"rescore:score:"
STATE_LOCAL = "local"
STATE_SHARED = "shared"
STATE_UNAVAILABLE = "local (shared cache unavailable)"


def shared_key(digest: bytes) -> bytes:
    """Return the Redis key of a score digest."""
    return KEY_PREFIX + digest.hex().encode()


def pack_score(score: float) -> bytes:
    return struct.pack("<d", score)


def unpack_score(raw: bytes) -> float:
    return struct.unpack("<d", raw)[0]


class TieredScoreStore:
    """ScoreStore: the process's ByteLRU first, then Redis; writes go to both."""

    def __init__(self, local: ScoreCache, url: str, *, ttl_s: int, timeout_s: float,
                 retry_after_s: float = 5.0) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("RESCORE_REDIS_URL needs the redis client: pip install 'rescore-sidecar[redis]'") from exc
        self._errors = (redis.RedisError, OSError)
        self._local = local
        self._url = redact_url(url)
        self._ttl_s = ttl_s
        self._retry_after_s = retry_after_s
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                            health_check_interval=0)
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._last_error = ""
        self._shared_hits = self._shared_misses = self._shared_errors = 0

    @property
    def state(self) -> str:
        """Return "shared", or the local-only state while Redis is unavailable."""
        return STATE_UNAVAILABLE if time.monotonic() < self._down_until else STATE_SHARED

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._shared_errors += 1
            self._last_error = type(exc).__name__
            self._down_until = time.monotonic() + self._retry_after_s
        logger.warning("shared_cache_unavailable url=%s error=%s retry_after_s=%.1f", self._url,
                       type(exc).__name__, self._retry_after_s)

    def get_many(self, keys: list[bytes]) -> list[float | None]:
        """Return local hits, then ask Redis for the rest (and keep what it had locally)."""
        found = self._local.get_many(keys)
        missing = [i for i, score in enumerate(found) if score is None]
        if not missing or not self._available():
            return found
        try:
            values = self._client.mget([shared_key(keys[i]) for i in missing])
        except self._errors as exc:
            self._failed(exc)
            return found
        fetched = []
        for i, raw in zip(missing, values, strict=True):
            if raw is not None:
                found[i] = unpack_score(raw)
                fetched.append((keys[i], found[i]))
        with self._lock:
            self._shared_hits += len(fetched)
            self._shared_misses += len(missing) - len(fetched)
        self._local.put_many(fetched)
        return found

    def put_many(self, items: Iterable[tuple[bytes, float]]) -> None:
        """Write new scores to Redis (first writer wins) and keep the winning value locally."""
        items = list(items)
        if not items:
            return
        if not self._available():
            self._local.put_many(items)
            return
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for key, score in items:
                    pipe.set(shared_key(key), pack_score(score), ex=self._ttl_s, nx=True)
                written = pipe.execute()
            lost = [key for (key, _), ok in zip(items, written, strict=True) if not ok]
            winners = dict(zip(lost, self._client.mget([shared_key(k) for k in lost]), strict=True)) if lost else {}
        except self._errors as exc:
            self._failed(exc)
            self._local.put_many(items)
            return
        self._local.put_many((key, unpack_score(winners[key]) if winners.get(key) is not None else score)
                             for key, score in items)

    def clear(self) -> None:
        """Forget this process's scores (the shared ones expire by TTL; other replicas may use them)."""
        self._local.clear()

    def stats(self) -> CacheStats:
        return self._local.stats()

    def shared_health(self) -> dict[str, object]:
        """Return the shared tier's URL (credentials masked), state and counters."""
        with self._lock:
            return {"url": self._url, "state": self.state, "ttl_s": self._ttl_s, "hits": self._shared_hits,
                    "misses": self._shared_misses, "errors": self._shared_errors,
                    **({"last_error": self._last_error} if self._last_error else {})}

    def close(self) -> None:
        self._client.close()
