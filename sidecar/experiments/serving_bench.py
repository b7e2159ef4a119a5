"""Serving benchmarks for the targets of issue 16: slow clients and a mixed plain/rerank/msearch load.

slow_clients: /health and a plain search, unloaded and then while N slow or idle connections are
open (half trickle a request body one byte a second, half connect and send nothing).

mixed_load: N clients for T seconds, each request 50% plain search, 40% reranked search, 10%
_msearch (one plain and one reranked entry), every query text distinct. Side by side in the same
run, each plain search is also sent straight to OpenSearch (the baseline), and each reranked page
(from 0, size = window) is checked against OpenSearch's first-stage window as a set. rerank_server
is the sidecar's own ext.rerank.took_ms of the same requests (the client's view minus transport,
nginx and the load generator's own scheduling).

scripts/bench_serving.py drives both and prints the report; tests/integration/test_serving.py runs
short versions. Loopback targets only; bounded in clients, sockets and time.
"""
from __future__ import annotations

import itertools
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

LIMITS = {"clients": 128, "seconds": 600, "sockets": 512}
KINDS = ("plain", "direct", "rerank", "msearch", "rerank_server")


def check_loopback(*urls: str) -> None:
    """Refuse anything but loopback targets (this is a load generator)."""
    for url in urls:
        host = urlsplit(url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"serving bench: {url} is not a loopback address")


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (nearest rank) of values, in the values' unit; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def summary_ms(seconds: list[float]) -> dict:
    """Return count, p50, p95, p99 and max in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {"count": len(ms), "p50": round(percentile(ms, 50), 1), "p95": round(percentile(ms, 95), 1),
            "p99": round(percentile(ms, 99), 1), "max": round(max(ms), 1) if ms else 0.0}


# --- (a) slow and idle connections -----------------------------------------------------------------

def _timed_get(session: requests.Session, method: str, url: str, body: dict | None = None) -> float:
    started = time.perf_counter()
    response = session.request(method, url, json=body, timeout=60)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{method} {url} answered {response.status_code}: {response.text[:200]}")
    return elapsed


def _probe(url: str, search_path: str, search_body: dict, samples: int) -> dict[str, list[float]]:
    """Time /health and a plain search `samples` times each, each on a fresh connection."""
    out: dict[str, list[float]] = {"health": [], "search": []}
    for _ in range(samples):
        with requests.Session() as session:
            out["health"].append(_timed_get(session, "GET", url + "/health"))
        with requests.Session() as session:
            out["search"].append(_timed_get(session, "POST", url + search_path, search_body))
    return out


class SlowClients:
    """Open `count` connections to host:port: half send a request whose body trickles in one byte a
    second, half connect and send nothing. Closed on exit."""

    def __init__(self, url: str, count: int) -> None:
        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.count = min(count, LIMITS["sockets"])
        self.sockets: list[socket.socket] = []
        self.trickling: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> "SlowClients":
        for i in range(self.count):
            sock = socket.create_connection(self.address, timeout=5)
            self.sockets.append(sock)
            if i % 2 == 0:
                head = (f"POST /_search HTTP/1.1\r\nHost: {self.address[0]}\r\nContent-Type: application/json\r\n"
                        "Content-Length: 100000\r\n\r\n{")
                sock.sendall(head.encode())
                self.trickling.append(sock)
        self._thread.start()
        return self

    def _trickle(self) -> None:
        while not self._stop.wait(1.0):
            for sock in self.trickling:
                try:
                    sock.sendall(b" ")
                except OSError:
                    pass  # the server gave up on it (its body timeout): that is allowed

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()


def slow_clients(url: str, search_path: str, search_body: dict, *, sockets: int = 64, samples: int = 10,
                 settle_s: float = 1.0) -> dict:
    """Return /health and plain-search latency unloaded and with `sockets` slow/idle connections open."""
    check_loopback(url)
    _probe(url, search_path, search_body, 2)  # warm-up
    unloaded = _probe(url, search_path, search_body, samples)
    with SlowClients(url, sockets) as slow:
        time.sleep(settle_s)
        loaded = _probe(url, search_path, search_body, samples)
        opened = len(slow.sockets)
    report: dict = {"sockets": opened}
    for name in ("health", "search"):
        before, during = summary_ms(unloaded[name]), summary_ms(loaded[name])
        report[name] = {"unloaded_ms": before, "loaded_ms": during,
                        "ratio_p50": round(during["p50"] / max(before["p50"], 1e-3), 2),
                        "ratio_max": round(during["max"] / max(before["max"], 1e-3), 2)}
    return report


# --- (b) mixed load --------------------------------------------------------------------------------

@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    rerank_status: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def status(self, status: str) -> None:
        with self.lock:
            self.rerank_status[status] = self.rerank_status.get(status, 0) + 1


class QueryFeed:
    """Hand out distinct query texts; after the last one, start over (counted as reused)."""

    def __init__(self, queries: list[str]) -> None:
        if not queries:
            raise ValueError("no queries")
        self._queries = queries
        self._counter = itertools.count()
        self.reused = 0

    def next(self) -> str:
        n = next(self._counter)
        if n >= len(self._queries):
            self.reused += 1
        return self._queries[n % len(self._queries)]


def _ids(body: dict) -> list[str]:
    return [hit["_id"] for hit in body["hits"]["hits"]]


def _search_body(query: str, size: int) -> dict:
    return {"query": {"multi_match": {"query": query, "fields": ["title", "text"]}}, "size": size}


def _rerank_body(query: str, window: int, timeout_ms: int) -> dict:
    return {**_search_body(query, window),
            "ext": {"rerank": {"query_context": {"query_text": query}, "window_size": window,
                               "timeout_ms": timeout_ms}}}


def _client(url: str, opensearch: str, index: str, feed: QueryFeed, tally: Tally, stop_at: float,
            seed: int, window: int, timeout_ms: int, plain_size: int, rerank_url: str) -> None:
    rng = random.Random(seed)
    session, direct = requests.Session(), requests.Session()
    while time.monotonic() < stop_at:
        roll = rng.random()
        try:
            if roll < 0.5:
                body = _search_body(feed.next(), plain_size)
                started = time.perf_counter()
                got = session.post(f"{url}/{index}/_search", json=body, timeout=120)
                tally.add("plain", time.perf_counter() - started)
                started = time.perf_counter()
                want = direct.post(f"{opensearch}/{index}/_search", json=body, timeout=120)
                tally.add("direct", time.perf_counter() - started)
                if got.status_code != 200:
                    tally.error(f"plain {got.status_code}: {got.text[:200]}")
                elif _ids(got.json()) != _ids(want.json()):
                    tally.mismatches.append(f"plain {body['query']}")
            elif roll < 0.9:
                query = feed.next()
                started = time.perf_counter()
                got = session.post(f"{rerank_url}/{index}/_search", json=_rerank_body(query, window, timeout_ms), timeout=120)
                tally.add("rerank", time.perf_counter() - started)
                if got.status_code != 200:
                    tally.error(f"rerank {got.status_code}: {got.text[:200]}")
                    continue
                answer = got.json()
                ext = answer.get("ext", {}).get("rerank", {})
                tally.status(ext.get("status", "missing"))
                if isinstance(ext.get("took_ms"), (int, float)):  # the sidecar's own view of the same request
                    tally.add("rerank_server", ext["took_ms"] / 1000)
                first = direct.post(f"{opensearch}/{index}/_search", json=_search_body(query, window), timeout=120)
                if sorted(_ids(answer)) != sorted(_ids(first.json())):
                    tally.mismatches.append(f"rerank page != first-stage window for {query[:60]!r}")
            else:
                plain_q, rerank_q = feed.next(), feed.next()
                lines = [{"index": index}, _search_body(plain_q, plain_size),
                         {"index": index}, _rerank_body(rerank_q, window, timeout_ms)]
                data = "".join(json.dumps(line) + "\n" for line in lines)
                started = time.perf_counter()
                got = session.post(f"{rerank_url}/_msearch", data=data, timeout=120,
                                   headers={"Content-Type": "application/x-ndjson"})
                tally.add("msearch", time.perf_counter() - started)
                if got.status_code != 200 or any(r.get("status") != 200 for r in got.json()["responses"]):
                    tally.error(f"msearch {got.status_code}: {got.text[:200]}")
                    continue
                tally.status(got.json()["responses"][1].get("ext", {}).get("rerank", {}).get("status", "missing"))
        except (requests.RequestException, ValueError, KeyError) as exc:
            tally.error(f"{type(exc).__name__}: {exc}")


def mixed_load(url: str, opensearch: str, index: str, queries: list[str], *, clients: int = 32,
               seconds: float = 60, window: int = 50, timeout_ms: int = 30000, plain_size: int = 10,
               rerank_url: str | None = None) -> dict:
    """Run the mixed load and return latencies, statuses, errors, mismatches and the target checks.

    rerank_url sends the reranked searches and the msearch requests elsewhere (a second sidecar as a
    separate rerank pool): an experiment on keeping rerank work off the plain path's process.
    """
    rerank_url = rerank_url or url
    check_loopback(url, opensearch, rerank_url)
    clients = min(clients, LIMITS["clients"])
    seconds = min(seconds, LIMITS["seconds"])
    feed, tally = QueryFeed(queries), Tally()
    stop_at = time.monotonic() + seconds
    threads = [threading.Thread(target=_client, args=(url, opensearch, index, feed, tally, stop_at, seed, window,
                                                      timeout_ms, plain_size, rerank_url), daemon=True)
               for seed in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 300)
    wall = time.monotonic() - started
    kinds = {kind: summary_ms(values) for kind, values in tally.latencies.items()}
    total = sum(row["count"] for kind, row in kinds.items() if kind not in ("direct", "rerank_server"))
    report = {
        "clients": clients, "seconds": round(wall, 1), "requests": total, "rps": round(total / wall, 1),
        "kinds": kinds, "rerank_status": tally.rerank_status, "errors": len(tally.errors),
        "mismatches": len(tally.mismatches), "queries_reused": feed.reused, "timeout_ms": timeout_ms,
        "window": window, "examples": (tally.errors + tally.mismatches)[:5],
    }
    plain, direct, rerank = kinds["plain"], kinds["direct"], kinds["rerank"]
    report["targets"] = {
        "plain_p99_minus_direct_p99_ms": round(plain["p99"] - direct["p99"], 1),
        "plain_p99_over_direct_p99": round(plain["p99"] / max(direct["p99"], 1e-3), 2),
        "plain_ok": plain["p99"] <= direct["p99"] + 50,
        "rerank_p99_minus_timeout_ms": round(rerank["p99"] - timeout_ms, 1),
        "rerank_ok": rerank["p99"] <= timeout_ms + 250,
        "errors_ok": not tally.errors,
        "circuit_open_ok": tally.rerank_status.get("circuit_open", 0) == 0,
        "hit_sets_ok": not tally.mismatches,
    }
    return report


def load_queries(path: str, limit: int | None = None) -> list[str]:
    """Return the distinct texts of a BEIR queries.jsonl (shuffled with a fixed seed)."""
    texts: list[str] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                text = json.loads(line)["text"].strip()
                if text and text not in seen:
                    seen.add(text)
                    texts.append(text)
    random.Random(16).shuffle(texts)
    return texts[:limit] if limit else texts
