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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from sidecar.experiments.scaleout import QuerySource, cross_replica, load_queries, run_load
from tests.conftest import DEMO_CORPUS, ROOT, free_port, start_sidecar, stop_process

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


@pytest.fixture(scope="module")
def scaled_out(cluster, indexed, tmp_path_factory) -> Iterator[tuple[str, list[str], list[str]]]:
    """Two sidecar replicas (one worker each) sharing one Redis, behind nginx (round robin), on the cluster."""
    from tests.integration.test_shared_cache import start_redis

    redis_port = free_port()
    redis_proc = start_redis(redis_port)
    # The longest rerank budget: on a loaded machine admission control must not refuse the reranks
    # this test counts as ok (scripts/bench_scaleout.py does the same).
    env = {"RESCORE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "RESCORE_WORKERS": "1",
           "RESCORE_RERANK_TIMEOUT_MS": "300000"}
    with ThreadPoolExecutor(2) as pool:  # the model loads in both at once: half the wait
        started = [pool.submit(start_sidecar, ",".join(cluster), **env) for _ in range(2)]
        replicas = [f.result() for f in started if f.exception() is None]
    nginx_env = {**os.environ, "NGINX_PORT": str(free_port()), "NGINX_WORKERS": "1",
                 "NGINX_UPSTREAM": ",".join(url.removeprefix("http://") for _, url, _ in replicas),
                 "NGINX_RUN_DIR": str(tmp_path_factory.mktemp("nginx"))}
    script = str(ROOT / "scripts" / "nginx.sh")
    try:
        assert len(replicas) == 2, [f.exception() for f in started]
        subprocess.run(["bash", script, "start"], env=nginx_env, check=True, capture_output=True, text=True)
        yield f"http://127.0.0.1:{nginx_env['NGINX_PORT']}", [url for _, url, _ in replicas], cluster
    finally:
        subprocess.run(["bash", script, "stop"], env=nginx_env, capture_output=True)
        for proc, _, _ in replicas:
            stop_process(proc)
        stop_process(redis_proc)


def test_two_replicas_behind_nginx_share_scores_and_pages(scaled_out, indexed) -> None:
    """The short version of scripts/bench_scaleout.py's set-up B (without the node kill: the next test)."""
    front, replicas, _ = scaled_out
    queries = load_queries(DEMO_CORPUS)
    load = run_load(front, INDEX, QuerySource(queries[:-8]), seconds=8, clients=4)
    assert load["failed"] == 0, load["failures"]
    assert load["kinds"]["plain"]["count"] >= 4 and load["kinds"]["rerank"]["count"] >= 4, load
    served = [requests.get(f"{url}/ready", timeout=10).json()["reranker"]["shared_cache"] for url in replicas]
    assert all(s["state"] == "shared" and s["misses"] > 0 for s in served), served  # nginx used both replicas
    pages = cross_replica(replicas, INDEX, queries[-8:], page=5)
    assert pages["scored"] == 0 and pages["cache_hit_ratio"] == 1.0, pages  # page 2: every score from Redis
    assert pages["consistency"] == 1.0, pages["mismatches"]


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
