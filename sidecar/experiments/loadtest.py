"""Load test of the sidecar on loopback: N clients for T seconds mixing plain, template and rerank searches.

Every answer is checked against OpenSearch's own: plain and template searches must return the same
ids in the same order; a reranked search must return the first-stage window as a set (any order)
followed by the same tail. Bounded in clients, time and requests; stops by itself.
`rescore loadtest` (sidecar/commands/loadtest.py) drives it.
"""
from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

QUERIES = ["solar panels electricity", "coffee extraction pressure", "bicycle tire repair", "marathon training",
           "bread sourdough yeast", "heat pump houses", "dog training treats", "roman roads history",
           "wind power turbines", "growing tomatoes"]
KINDS = ("plain", "template", "rerank")
WINDOW, SIZE = 10, 20
LIMITS = {"clients": 64, "seconds": 300, "requests": 200_000}


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: list[str] = field(default_factory=list)
    overloaded: int = 0
    mismatches: list[str] = field(default_factory=list)
    rerank_status: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def request_for(kind: str, index: str, query: str) -> tuple[str, dict]:
    match = {"query": {"multi_match": {"query": query, "fields": ["title", "text"]}}, "size": SIZE}
    if kind == "plain":
        return f"/{index}/_search", match
    if kind == "template":
        return f"/{index}/_search/template", {"id": "rescore-bm25", "params": {"query_text": query, "size": SIZE}}
    return f"/{index}/_search", {**match, "ext": {"rerank": {"query_context": {"query_text": query},
                                                             "window_size": WINDOW}}}


def ids(body: dict) -> list[str]:
    return [h["_id"] for h in body["hits"]["hits"]]


def expected_answers(opensearch: str, index: str) -> dict[tuple[str, str], list[str]]:
    """Ask OpenSearch directly for every (kind, query); a rerank's reference is its first stage."""
    answers = {}
    for query in QUERIES:
        for kind in KINDS:
            path, body = request_for("plain" if kind == "rerank" else kind, index, query)
            response = requests.post(opensearch + path, json=body, timeout=30)
            response.raise_for_status()
            answers[(kind, query)] = ids(response.json())
    return answers


def check(kind: str, got: list[str], want: list[str]) -> bool:
    if kind != "rerank":
        return got == want
    return sorted(got[:WINDOW]) == sorted(want[:WINDOW]) and got[WINDOW:] == want[WINDOW:]


def client_loop(number: int, sidecar: str, index: str, answers, stop_at: float, budget: list[int],
                tally: Tally) -> None:
    session = requests.Session()
    i = number
    while time.monotonic() < stop_at:
        with tally.lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        kind, query = KINDS[i % len(KINDS)], QUERIES[(i // len(KINDS)) % len(QUERIES)]
        i += 1
        path, body = request_for(kind, index, query)
        started = time.perf_counter()
        try:
            response = session.post(sidecar + path, json=body, timeout=60)
        except requests.RequestException as exc:
            with tally.lock:
                tally.errors.append(f"{kind}: {type(exc).__name__}")
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000
        with tally.lock:
            if response.status_code == 429:
                tally.overloaded += 1
                continue
            if response.status_code != 200:
                tally.errors.append(f"{kind}: HTTP {response.status_code} {response.text[:200]}")
                continue
            tally.latencies[kind].append(elapsed_ms)
            answer = response.json()
            if kind == "rerank":
                status = answer.get("ext", {}).get("rerank", {}).get("status", "missing")
                tally.rerank_status[status] = tally.rerank_status.get(status, 0) + 1
            if not check(kind, ids(answer), answers[(kind, query)]):
                tally.mismatches.append(f"{kind} {query!r}: {ids(answer)} vs {answers[(kind, query)]}")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 1)


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"loadtest only targets loopback addresses, not {url}")


def run_load(sidecar: str, opensearch: str, index: str, clients: int, seconds: float,
             max_requests: int = LIMITS["requests"]) -> dict:
    """Run the load and return the report (see --json)."""
    for url in (sidecar, opensearch):
        require_loopback(url)
    clients = max(1, min(clients, LIMITS["clients"]))
    seconds = max(1.0, min(seconds, LIMITS["seconds"]))
    answers = expected_answers(opensearch, index)
    tally, budget = Tally(), [min(max_requests, LIMITS["requests"])]
    started = time.monotonic()
    threads = [threading.Thread(target=client_loop, daemon=True,
                                args=(n, sidecar, index, answers, started + seconds, budget, tally))
               for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 90)
    wall = time.monotonic() - started
    done = sum(len(v) for v in tally.latencies.values())
    return {
        "clients": clients, "seconds": round(wall, 1), "requests": done,
        "requests_per_s": round(done / wall, 1),
        "kinds": {k: {"count": len(v), "p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99)}
                  for k, v in tally.latencies.items()},
        "errors": len(tally.errors), "overloaded_429": tally.overloaded, "mismatches": len(tally.mismatches),
        "rerank_status": tally.rerank_status,
        "examples": {"errors": tally.errors[:5], "mismatches": tally.mismatches[:5]},
    }
