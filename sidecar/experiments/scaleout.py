"""Scale-out measurements against running sidecars: mixed load, cross-replica cache hits, page consistency.

The parts (engine nodes, Redis, sidecar replicas, nginx) are started by the caller
(scripts/bench_scaleout.py, tests/integration/test_engine_cluster.py); the functions here only send
requests and count. Every query text is used once per run (distinct queries: no cache help).
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from sidecar.experiments.loadtest import percentile

KINDS = ("plain", "rerank")


def load_queries(dataset: Path, limit: int = 5000) -> list[str]:
    """Distinct query texts: a BEIR dataset's queries.jsonl, else word pairs from a corpus.jsonl."""
    path = dataset / "queries.jsonl" if dataset.is_dir() else dataset
    if path.name == "queries.jsonl" and path.is_file():
        texts = [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
    else:
        corpus = dataset / "corpus.jsonl" if dataset.is_dir() else dataset
        docs = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
        words = sorted({w.lower().strip(".,;:()\"'") for d in docs for w in d["text"].split() if len(w) > 5})
        texts = [f"{a} {b}" for a, b in zip(words, reversed(words)) if a != b]
    return list(dict.fromkeys(t.strip() for t in texts if t.strip()))[:limit]


class QuerySource:
    """Hands out each query text once; after the list is used up, the texts again with a round marker."""

    def __init__(self, queries: list[str]) -> None:
        self._queries = queries
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            n = next(self._counter)
        rounds, i = divmod(n, len(self._queries))
        return self._queries[i] if rounds == 0 else f"{self._queries[i]} r{rounds}"


def search_body(query: str, *, rerank: bool, start: int = 0, size: int = 10, window: int = 20) -> dict:
    body: dict = {"query": {"match": {"text": query}}, "from": start, "size": size}
    if rerank:
        body["ext"] = {"rerank": {"query_context": {"query_text": query}, "window_size": window, "fields": ["text"]}}
    return body


def search(url: str, index: str, body: dict, timeout_s: float = 600.0) -> dict:
    response = requests.post(f"{url}/{index}/_search", json=body, timeout=timeout_s)
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    return response.json()


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _failure(kind: str, body: dict) -> str | None:
    """Why a 200 answer still counts as failed: shards missing, or a reranked search not reranked."""
    shards = body.get("_shards", {})
    if shards.get("failed") or body.get("timed_out"):
        return f"partial answer: _shards={shards} timed_out={body.get('timed_out')}"
    if kind == "rerank" and body.get("ext", {}).get("rerank", {}).get("status") != "ok":
        return f"not reranked: {body.get('ext', {}).get('rerank')}"
    return None


def run_load(front: str, index: str, source: QuerySource, *, seconds: float, clients: int,
             during: Callable[[], None] | None = None, during_after_s: float = 0.0) -> dict:
    """Send plain and reranked searches (alternating, distinct texts) from `clients` threads for `seconds`.

    `during` (e.g. killing an engine node) is called once, `during_after_s` into the run.
    """
    tally = Tally()
    stop_at = time.monotonic() + seconds

    def client(number: int) -> None:
        session = requests.Session()
        for n in itertools.count(number):
            if time.monotonic() >= stop_at:
                return
            kind = KINDS[n % 2]
            query = source.next()
            started = time.perf_counter()
            try:
                response = session.post(f"{front}/{index}/_search", json=search_body(query, rerank=kind == "rerank"),
                                        timeout=600)
                why = (f"HTTP {response.status_code}: {response.text[:200]}" if response.status_code != 200
                       else _failure(kind, response.json()))
            except (requests.RequestException, ValueError) as exc:
                why = type(exc).__name__
            elapsed_ms = (time.perf_counter() - started) * 1000
            with tally.lock:
                if why:
                    tally.failures.append(f"{kind} {query!r}: {why}")
                else:
                    tally.latencies[kind].append(elapsed_ms)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    if during is not None:
        time.sleep(max(0.0, min(during_after_s, seconds)))
        during()
    for thread in threads:
        thread.join(timeout=seconds + 180)
    wall = time.monotonic() - started
    done = sum(len(v) for v in tally.latencies.values())
    return {
        "seconds": round(wall, 1), "clients": clients, "ok": done, "failed": len(tally.failures),
        "requests_per_s": round((done + len(tally.failures)) / wall, 2),
        "kinds": {k: {"count": len(v), "requests_per_s": round(len(v) / wall, 2),
                      "p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99)} for k, v in tally.latencies.items()},
        "failures": tally.failures[:5],
    }


def cross_replica(replicas: list[str], index: str, queries: list[str], *, page: int = 10,
                  timeout_s: float = 600.0) -> dict:
    """Page 1+2 in one request on one replica, then page 2 alone on the next replica (round robin).

    Returns the cache hit ratio of the page-2 requests (cache_hits / (cache_hits + scored)) and the
    share of page-2 answers that equal the slice of the first answer (same ids, same scores).
    """
    hits = scored = consistent = 0
    mismatches: list[str] = []
    for n, query in enumerate(queries):
        first, second = replicas[n % len(replicas)], replicas[(n + 1) % len(replicas)]
        try:
            whole = search(first, index, search_body(query, rerank=True, start=0, size=2 * page, window=2 * page),
                           timeout_s)
            part = search(second, index, search_body(query, rerank=True, start=page, size=page, window=2 * page),
                          timeout_s)
        except (requests.RequestException, RuntimeError) as exc:  # counted as inconsistent, not a crash
            mismatches.append(f"{query!r}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        info = part["ext"]["rerank"]
        hits += info.get("cache_hits", 0)
        scored += info.get("scored", 0)
        want = [(h["_id"], h["_score"]) for h in whole["hits"]["hits"][page:2 * page]]
        got = [(h["_id"], h["_score"]) for h in part["hits"]["hits"]]
        if got == want:
            consistent += 1
        else:
            mismatches.append(f"{query!r}: {[i for i, _ in got]} != {[i for i, _ in want]}")
    total = hits + scored
    return {
        "queries": len(queries), "cache_hits": hits, "scored": scored,
        "cache_hit_ratio": round(hits / total, 3) if total else None,
        "consistent": consistent, "consistency": round(consistent / len(queries), 3) if queries else None,
        "mismatches": mismatches[:3],
    }
