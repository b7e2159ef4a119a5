"""A real 3-node OpenSearch cluster behind the sidecar: one node killed during a load run.

The index has 2 replicas, so every node holds a copy; the sidecar knows the three nodes
(RESCORE_OPENSEARCH_URL=a,b,c). While 4 clients send distinct plain and reranked searches and
document reads, one node is SIGKILLed: no request may fail and no hit may be lost.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import DEMO_CORPUS, ROOT, start_sidecar, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NODES = 3
INDEX = "cluster-demo"


def free_block(count: int) -> int:
    """Return the first of `count` consecutive free ports (and the same block + 500 for transport)."""
    for base in range(20000, 60000, 37):
        ports = [*range(base, base + count), *range(base + 500, base + 500 + count)]
        try:
            socks = []
            for port in ports:
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free port block")


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[str]]:
    base = free_block(NODES)
    env = {**os.environ, "OPENSEARCH_PORT": str(base), "OPENSEARCH_TRANSPORT_PORT": str(base + 500),
           "OPENSEARCH_HEAP": os.environ.get("RESCORE_TEST_CLUSTER_HEAP", "384m"), "OPENSEARCH_START_TIMEOUT": "400"}
    script = str(ROOT / "scripts" / "opensearch.sh")
    started = subprocess.run(["bash", script, "cluster-start", str(NODES)], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        subprocess.run(["bash", script, "cluster-stop", str(NODES)], env=env, capture_output=True)
        pytest.fail(f"the {NODES}-node cluster did not start:\n{started.stderr[-4000:]}")
    urls = started.stdout.strip().splitlines()[-1].split(",")
    try:
        yield urls
    finally:
        subprocess.run(["bash", script, "cluster-stop", str(NODES)], env=env, capture_output=True)


@pytest.fixture(scope="module")
def indexed(cluster) -> list[dict]:
    docs = [json.loads(line) for line in DEMO_CORPUS.read_text().splitlines() if line.strip()]
    head = cluster[0]
    requests.delete(f"{head}/{INDEX}", timeout=30)
    settings = {"settings": {"number_of_shards": 1, "number_of_replicas": NODES - 1},
                "mappings": {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}}
    assert requests.put(f"{head}/{INDEX}", json=settings, timeout=60).status_code == 200
    lines = "".join(json.dumps({"index": {"_id": d["_id"]}}) + "\n" + json.dumps({"title": d.get("title", ""),
                                                                                   "text": d["text"]}) + "\n"
                    for d in docs)
    bulk = requests.post(f"{head}/{INDEX}/_bulk?refresh=true", data=lines,
                         headers={"Content-Type": "application/x-ndjson"}, timeout=120)
    assert bulk.status_code == 200 and not bulk.json()["errors"]
    health = requests.get(f"{head}/_cluster/health/{INDEX}?wait_for_status=green&timeout=120s", timeout=130).json()
    assert health["status"] == "green", health
    return docs


def node_pid(url: str) -> int:
    port = url.rsplit(":", 1)[1]
    return int(Path(f"/tmp/rescore-opensearch-{port}/opensearch.pid").read_text().split()[0])


def test_searches_survive_a_killed_node_without_losing_hits(cluster, indexed) -> None:
    words = sorted({w.lower().strip(".,;:()") for d in indexed for w in d["text"].split() if len(w) > 6})[:60]
    queries = [f"{a} {b}" for a, b in zip(words, reversed(words))]
    head = cluster[0]
    expected = {}
    for query in queries:  # the answer of the healthy cluster, asked directly
        body = {"query": {"match": {"text": query}}, "size": 10}
        hits = requests.post(f"{head}/{INDEX}/_search", json=body, timeout=30).json()["hits"]
        expected[query] = (hits["total"]["value"], [h["_id"] for h in hits["hits"]])
    proc, sidecar, log_path = start_sidecar(",".join(cluster), RESCORE_OPENSEARCH_RETRY_AFTER_S="30",
                                     RESCORE_RERANK_TIMEOUT_MS="20000")
    failures: list[str] = []
    counts = {"plain": 0, "rerank": 0, "get": 0}
    stop = threading.Event()

    def client(worker: int) -> None:
        i = worker
        while not stop.is_set():
            query = queries[i % len(queries)]
            total, ids = expected[query]
            kind = ("plain", "rerank", "get")[i % 3]
            i += 4
            try:
                if kind == "get":
                    doc = indexed[i % len(indexed)]
                    r = requests.get(f"{sidecar}/{INDEX}/_doc/{doc['_id']}", timeout=60)
                    ok = r.status_code == 200 and r.json()["_source"]["text"] == doc["text"]
                else:
                    body = {"query": {"match": {"text": query}}, "size": 10}
                    if kind == "rerank":
                        body["ext"] = {"rerank": {"query_context": {"query_text": query}, "window_size": 10,
                                                  "fields": ["text"]}}
                    r = requests.post(f"{sidecar}/{INDEX}/_search", json=body, timeout=60)
                    got = r.json()["hits"] if r.status_code == 200 else {}
                    got_ids = [h["_id"] for h in got.get("hits", [])]
                    same = got_ids == ids if kind == "plain" else sorted(got_ids) == sorted(ids)
                    ok = r.status_code == 200 and got["total"]["value"] == total and same
                    if kind == "rerank":
                        ok = ok and r.json()["ext"]["rerank"]["status"] == "ok"
                counts[kind] += 1
                if not ok:
                    failures.append(f"{kind} {query!r}: HTTP {r.status_code} {r.text[:300]}")
            except requests.RequestException as exc:
                failures.append(f"{kind} {query!r}: {type(exc).__name__}")

    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(8)
        os.kill(node_pid(cluster[1]), signal.SIGKILL)  # a data node holding a copy of every shard
        killed_at = sum(counts.values())
        time.sleep(20)
        stop.set()
        for t in threads:
            t.join(timeout=90)
        nodes = requests.get(f"{sidecar}/_cat/nodes?format=json", timeout=30)
    finally:
        stop.set()
        stop_process(proc)
    after = sum(counts.values()) - killed_at
    assert not failures, failures[:10]
    assert killed_at >= 6 and after >= 6, counts  # load before and after the kill
    assert all(counts.values()), counts
    assert nodes.status_code == 200 and len(nodes.json()) == NODES - 1
    assert "engine_node_down" in log_path.read_text()  # the dead node was met, marked and skipped
