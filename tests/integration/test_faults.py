"""Fault injection against real processes: OpenSearch down or restarted, a slow or failing reranker.

The sidecar runs under gunicorn with the real `remote` backend (TEI API) pointed at a small HTTP
rerank server in this process, which the tests switch between ok, sleep and fail.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import BROAD_QUERY, ROOT, free_port, start_sidecar, stop_process, wait_for
from tests.servers import TeiReranker

pytestmark = pytest.mark.integration

BROAD = {"query": BROAD_QUERY}
QUEUE_SIZE = 8


def ids(body: dict) -> list[str]:
    return [h["_id"] for h in body["hits"]["hits"]]


def rerank_body(query_text: str, window: int = 6, size: int = 12, timeout_ms: int = 10000) -> dict:
    return {**BROAD, "size": size, "ext": {"rerank": {"query_context": {"query_text": query_text},
                                                      "window_size": window, "fusion": "replace",
                                                      "timeout_ms": timeout_ms}}}


@pytest.fixture(scope="module")
def remote():
    with TeiReranker(sleep_s=3.0) as server:
        yield server


def remote_env(remote: TeiReranker) -> dict[str, str]:
    return {"RESCORE_BACKEND": "remote", "RESCORE_REMOTE_API": "tei", "RESCORE_REMOTE_URL": remote.url,
            "RESCORE_REMOTE_TIMEOUT_S": "2", "RESCORE_PRELOAD_MODEL": "false", "RESCORE_CACHE_SIZE": "0",
            "RESCORE_CIRCUIT_FAILURES": "2", "RESCORE_CIRCUIT_COOLDOWN_S": "1",
            "RESCORE_QUEUE_SIZE": str(QUEUE_SIZE)}


@pytest.fixture(scope="module", params=["opensearch", "elasticsearch"])
def faulty(request, remote):
    """(sidecar URL, remote server, first-stage ids straight from the engine, demo index) on each engine."""
    names = ("opensearch_url", "demo_index") if request.param == "opensearch" else ("elasticsearch_url", "es_demo_index")
    engine_url, demo_index = (request.getfixturevalue(n) for n in names)
    proc, url, _ = start_sidecar(engine_url, **remote_env(remote))
    direct = ids(requests.post(f"{engine_url}/{demo_index}/_search", json={**BROAD, "size": 12}, timeout=30).json())
    assert len(direct) == 12
    try:
        yield url, remote, direct, demo_index
    finally:
        stop_process(proc)


def search(url: str, index: str, body: dict) -> dict:
    response = requests.post(f"{url}/{index}/_search", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def circuit(url: str) -> dict:
    return requests.get(f"{url}/ready", timeout=30).json()["circuit"]


def wait_for_circuit(url: str, index: str, query: str) -> dict:
    """After a cool-down, the next search is the half-open probe."""
    time.sleep(1.1)
    return search(url, index, rerank_body(query))


def test_healthy_remote_reranks(faulty):
    url, remote, direct, demo_index = faulty
    remote.mode = "ok"
    body = search(url, demo_index, rerank_body("solar panels electricity"))
    assert body["ext"]["rerank"]["status"] == "ok"
    assert sorted(ids(body)[:6]) == sorted(direct[:6]) and ids(body)[6:] == direct[6:]


def test_failing_reranker_degrades_opens_the_circuit_and_recovers(faulty):
    url, remote, direct, demo_index = faulty
    remote.mode = "fail"
    for attempt in range(2):
        body = search(url, demo_index, rerank_body(f"failing {attempt}"))
        assert body["ext"]["rerank"]["status"] == "error" and "HTTP 500" in body["ext"]["rerank"]["error"]
        assert ids(body) == direct, "first-stage order"
    calls = remote.calls
    body = search(url, demo_index, rerank_body("failing 3"))
    assert body["ext"]["rerank"]["status"] == "circuit_open" and ids(body) == direct
    assert remote.calls == calls, "an open circuit does not call the reranker"
    assert circuit(url)["state"] == "open"
    still_failing = wait_for_circuit(url, demo_index, "probe while failing")
    assert still_failing["ext"]["rerank"]["status"] == "error" and circuit(url)["state"] == "open"
    remote.mode = "ok"
    recovered = wait_for_circuit(url, demo_index, "probe after repair")
    assert recovered["ext"]["rerank"]["status"] == "ok"
    assert circuit(url)["state"] == "closed"


def test_slow_reranker_times_out_to_first_stage_order_and_recovers(faulty):
    url, remote, direct, demo_index = faulty
    remote.mode = "sleep"
    started = time.monotonic()
    body = search(url, demo_index, rerank_body("slow one", window=4, timeout_ms=300))
    assert time.monotonic() - started < 2.5, "the deadline bounds the response time"
    assert body["ext"]["rerank"]["status"] == "timeout" and ids(body) == direct
    body = search(url, demo_index, rerank_body("slow two", window=4, timeout_ms=300))
    assert body["ext"]["rerank"]["status"] in ("timeout", "overloaded") and ids(body) == direct
    assert circuit(url)["consecutive_failures"] <= 1, "a client's deadline is not the model's fault"
    # The model's own fault: the remote call runs past RESCORE_REMOTE_TIMEOUT_S (2 s) for a request
    # that still waits; with the first stuck call that makes two failures, and the circuit opens.
    time.sleep(2.5)
    body = search(url, demo_index, rerank_body("slow three", window=4, timeout_ms=10000))
    assert body["ext"]["rerank"]["status"] == "error" and "Timeout" in body["ext"]["rerank"]["error"]
    assert circuit(url)["state"] == "open"
    assert search(url, demo_index, rerank_body("slow four", window=4))["ext"]["rerank"]["status"] == "circuit_open"
    remote.mode = "ok"
    time.sleep(2.5)  # the remote timeout (2 s) frees the scheduler from the sleeping call
    recovered = wait_for_circuit(url, demo_index, "solar panels electricity")
    assert recovered["ext"]["rerank"]["status"] == "ok"
    assert sorted(ids(recovered)[:6]) == sorted(direct[:6]) and ids(recovered)[6:] == direct[6:]


def test_client_deadlines_and_bad_input_never_open_the_circuit(faulty):
    url, remote, direct, demo_index = faulty
    remote.mode = "ok"
    for attempt in range(6):  # three times the failure threshold
        body = search(url, demo_index, rerank_body(f"tiny budget {attempt}", timeout_ms=1))
        assert body["ext"]["rerank"]["status"] == "timeout" and ids(body) == direct
    for bad in (0, 10**30, 1e30, 300_001, "10"):
        response = requests.post(f"{url}/{demo_index}/_search", json=rerank_body("x", timeout_ms=bad), timeout=30)
        assert response.status_code == 422 and response.json()["field"] == "ext.rerank.timeout_ms", bad
    surrogate = json.dumps(rerank_body("lone \ud800 surrogate"))  # the JSON escape \\ud800, unpaired
    for _ in range(6):
        response = requests.post(f"{url}/{demo_index}/_search", data=surrogate, timeout=30,
                                 headers={"Content-Type": "application/json"})
        assert response.status_code == 422 and response.json()["field"] == "ext.rerank.query_text"
    state = circuit(url)
    assert state["state"] == "closed" and state["consecutive_failures"] == 0
    assert search(url, demo_index, rerank_body("still reranking"))["ext"]["rerank"]["status"] == "ok"


def test_full_queue_degrades_search_and_429s_compat_endpoints(faulty):
    url, remote, direct, demo_index = faulty
    remote.mode = "ok"
    too_many = QUEUE_SIZE + 1
    body = search(url, demo_index, rerank_body("overload", window=too_many))
    assert body["ext"]["rerank"]["status"] == "overloaded" and ids(body) == direct
    docs = [f"document {i}" for i in range(too_many)]
    for path, payload in (("/v1/rerank", {"query": "q", "documents": docs}),
                          ("/rerank", {"query": "q", "texts": docs}),
                          ("/score", {"text_1": "q", "text_2": docs})):
        response = requests.post(url + path, json=payload, timeout=30)
        assert response.status_code == 429, path
        assert response.headers["Retry-After"] == "1"
        assert response.json()["error_type"] == "overloaded"
    assert circuit(url)["state"] == "closed", "overload is not a model failure"
    assert search(url, demo_index, rerank_body("after overload"))["ext"]["rerank"]["status"] == "ok"


def test_unreachable_opensearch_is_502_json_everywhere(remote):
    proc, url, _ = start_sidecar(f"http://127.0.0.1:{free_port()}", RESCORE_OPENSEARCH_TIMEOUT_S="2",
                                 **remote_env(remote))
    try:
        calls = [
            ("GET", "/idx/_search", None),
            ("POST", "/idx/_search", rerank_body("x")),
            ("POST", "/idx/_search/template", {"id": "rescore-bm25", "params": {"query_text": "x", "rerank": True}}),
            ("POST", "/idx/_search/template", {"source": {"query": {"match_all": {}}},
                                               "ext": {"rerank": {"query_context": {"query_text": "x"}}}}),
            ("PUT", "/idx/_doc/1", {}),
        ]
        for method, path, body in calls:
            response = requests.request(method, url + path, json=body, timeout=30)
            assert response.status_code == 502, (path, response.text)
            assert response.json()["error_type"] == "opensearch_unavailable"
        data = json.dumps({"index": "idx"}) + "\n" + json.dumps(rerank_body("x")) + "\n"
        msearch = requests.post(f"{url}/_msearch", data=data, timeout=30,
                                headers={"Content-Type": "application/x-ndjson"})
        assert msearch.status_code == 200 and msearch.json()["responses"][0]["status"] == 502
        assert requests.get(f"{url}/ready", timeout=30).status_code == 503
        assert requests.get(f"{url}/health", timeout=30).status_code == 200
    finally:
        stop_process(proc)


@pytest.mark.slow
def test_opensearch_killed_and_restarted_mid_run(remote):
    port = free_port()
    env = {**os.environ, "OPENSEARCH_PORT": str(port), "OPENSEARCH_TRANSPORT_PORT": str(free_port())}
    script = str(ROOT / "scripts" / "opensearch.sh")
    os_url = f"http://127.0.0.1:{port}"

    def start_opensearch() -> None:
        started = subprocess.run(["bash", script, "start"], env=env, capture_output=True, text=True)
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        docs = "".join(json.dumps(line) + "\n" for i in range(8)
                       for line in ({"index": {"_index": "restart", "_id": f"d{i}"}},
                                    {"title": f"doc {i}", "text": f"the {'solar ' * i}panel number {i}"}))
        bulk = requests.post(f"{os_url}/_bulk?refresh=true", data=docs, timeout=60,
                             headers={"Content-Type": "application/x-ndjson"})
        assert bulk.status_code == 200 and not bulk.json()["errors"]

    body = {"query": {"match": {"text": "the"}}, "size": 8,
            "ext": {"rerank": {"query_context": {"query_text": "solar"}, "window_size": 8, "fusion": "replace"}}}
    remote.mode = "ok"
    start_opensearch()
    proc, url, _ = start_sidecar(os_url, RESCORE_OPENSEARCH_TIMEOUT_S="3", **remote_env(remote))
    try:
        before = requests.post(f"{url}/restart/_search", json=body, timeout=30)
        assert before.status_code == 200 and ids(before.json())[0] == "d7"
        pid = int(Path(f"/tmp/rescore-opensearch-{port}/opensearch.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and requests.get(f"{url}/ready", timeout=10).status_code == 200:
            time.sleep(0.2)
        for method, path, payload in (("POST", "/restart/_search", body), ("GET", "/restart/_search", None),
                                      ("GET", "/_cat/indices", None)):
            during = requests.request(method, url + path, json=payload, timeout=30)
            assert during.status_code in (502, 503), (path, during.status_code, during.text)
            assert during.json()["error_type"] in ("opensearch_unavailable", "unavailable")
        start_opensearch()
        wait_for(f"{url}/ready", 60)
        after = requests.post(f"{url}/restart/_search", json=body, timeout=30)
        assert after.status_code == 200 and after.json()["ext"]["rerank"]["status"] == "ok"
        assert ids(after.json())[0] == "d7"
        assert requests.get(f"{url}/restart/_count", timeout=30).json()["count"] == 8
        assert proc.poll() is None, "the same sidecar process served before, during and after"
    finally:
        stop_process(proc)
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True, text=True)
