"""The rerank pool (RESCORE_RERANK_POOL_WORKERS, on by default) against real processes.

A sidecar started as users start it (gunicorn, default settings, the bundled model) in front of the
test OpenSearch: reranked searches and model endpoints are served by the pool's processes (niced, in
a session of their own, holding the only model), plain searches by the front; a killed pool degrades
reranks to first-stage order at once and is started again; a killed front takes its pool along.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import start_sidecar, stop_process

pytestmark = pytest.mark.integration

POOL_MARK = "RESCORE_SERVING_ROLE=pool"


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()  # fields after the command name: state, ppid, pgrp, session, ...


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat(int(entry))[1]) == pid:
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _environ(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").replace("\0", " ")
    except OSError:
        return ""


def _is_model_process(pid: int) -> bool:
    try:
        return b"sidecar.backends.model_process" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


def _tree(front_master: int) -> dict:
    """The front master's processes: its workers, and the pool master with its workers."""
    front_workers, pool_masters = [], []
    for child in _children(front_master):
        (pool_masters if POOL_MARK in _environ(child) else front_workers).append(child)
    pool_workers = [w for master in pool_masters for w in _children(master)]
    return {"front_workers": front_workers, "pool_masters": pool_masters, "pool_workers": pool_workers}


def _wait(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def _rerank(url: str, index: str, text: str) -> requests.Response:
    return requests.post(f"{url}/{index}/_search", timeout=60, json={
        "query": {"match": {"text": text}}, "size": 5,
        "ext": {"rerank": {"query_context": {"query_text": text}, "window_size": 10}}})


def _access_lines(log: Path, request_id: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if request_id in line and '"sidecar.access"' in line]


@pytest.fixture(scope="module")
def pooled(opensearch_url, demo_index):
    proc, url, log = start_sidecar(opensearch_url)
    try:
        _wait(lambda: requests.get(f"{url}/ready", timeout=10).status_code == 200, 120, "the pool to be ready")
        yield proc, url, log, demo_index
    finally:
        stop_process(proc)


def test_reranks_run_in_the_niced_pool_and_plain_searches_in_the_front(pooled, opensearch_url) -> None:
    proc, url, log, index = pooled
    tree = _tree(proc.pid)
    assert len(tree["front_workers"]) == 1 and len(tree["pool_masters"]) == 1 and tree["pool_workers"], tree
    pool_master = tree["pool_masters"][0]
    # A session (hence autogroup) of its own, at the configured niceness; its workers inherit it.
    assert int(_stat(pool_master)[3]) == pool_master != int(_stat(proc.pid)[3])
    own = os.getpriority(os.PRIO_PROCESS, 0)  # a test run under `nice` starts everything that nice
    assert all(os.getpriority(os.PRIO_PROCESS, p) == max(own, 5) for p in [pool_master, *tree["pool_workers"]])
    assert os.getpriority(os.PRIO_PROCESS, tree["front_workers"][0]) == own
    # The model lives only in the pool: the front worker has no model process.
    assert not any(_is_model_process(c) for c in _children(tree["front_workers"][0]))
    assert any(_is_model_process(c) for w in tree["pool_workers"] for c in _children(w))

    reranked = _rerank(url, index, "neural ranking models for search")
    body = reranked.json()
    assert reranked.status_code == 200 and reranked.headers["X-Rescore-Status"] == "ok", body
    request_id = reranked.headers["X-Request-Id"]
    for name in ("Server", "Date", "X-Request-Id", "Content-Length", "X-Rescore-Status", "Content-Type"):
        assert len(reranked.raw.headers.getlist(name)) == 1, (name, reranked.raw.headers)  # nothing doubled
    assert body["ext"]["rerank"]["query_id"] == request_id  # one id, front and pool
    # Scored although the front holds no model (it would have answered status "error"): by the pool,
    # whose log lines carry the front's request id; one access line, the front's.
    assert body["ext"]["rerank"]["scored"] > 0
    _wait(lambda: f'"request_id": "{request_id}"' in log.read_text() and "rerank_search" in log.read_text(), 10,
          "the pool's rerank_search line")
    assert any("rerank_search" in line and request_id in line for line in log.read_text().splitlines())
    assert len(_wait(lambda: _access_lines(log, request_id), 10, "the front's access line")) == 1

    plain = requests.post(f"{url}/{index}/_search", json={"query": {"match": {"text": "search"}}}, timeout=30)
    direct = requests.post(f"{opensearch_url}/{index}/_search", json={"query": {"match": {"text": "search"}}},
                           timeout=30)
    assert plain.status_code == 200 and [h["_id"] for h in plain.json()["hits"]["hits"]] == \
        [h["_id"] for h in direct.json()["hits"]["hits"]]
    assert len(_wait(lambda: _access_lines(log, plain.headers["X-Request-Id"]), 10, "access line")) == 1

    scored = requests.post(f"{url}/v1/rerank", timeout=30,
                           json={"query": "cats", "documents": ["a dog", "cats purr", "stock prices"]})
    assert scored.status_code == 200 and sorted(r["index"] for r in scored.json()["results"]) == [0, 1, 2]
    assert len(_wait(lambda: _access_lines(log, scored.headers["X-Request-Id"]), 10, "access lines")) == 1

    ready = requests.get(f"{url}/ready", timeout=30).json()
    assert ready["reranker"]["status"] == "ok" and ready["reranker"]["model_process"]["alive"]


def test_a_killed_pool_degrades_reranks_at_once_and_comes_back(pooled) -> None:
    proc, url, log, index = pooled
    before = _tree(proc.pid)
    pool_master = before["pool_masters"][0]
    os.killpg(pool_master, signal.SIGKILL)  # the pool's whole session: master, workers, model processes
    _wait(lambda: not any(_alive(p) for p in [pool_master, *before["pool_workers"]]), 10, "the pool to die")

    started = time.monotonic()
    degraded = _rerank(url, index, "graph algorithms for shortest paths")
    assert degraded.status_code == 200, degraded.text
    assert degraded.headers["X-Rescore-Status"] == "error"
    assert degraded.json()["ext"]["rerank"]["status"] == "error"
    assert time.monotonic() - started < 5
    plain = requests.post(f"{url}/{index}/_search", json={"query": {"match": {"text": "graph"}}}, timeout=30)
    assert plain.status_code == 200 and plain.json()["hits"]["hits"]
    assert requests.get(f"{url}/ready", timeout=30).status_code == 503  # not ready while the pool is down
    assert "rerank_pool_unreachable" in log.read_text()

    # The supervisor in the front's master starts a new pool; reranks are served again.
    _wait(lambda: _rerank(url, index, "graph algorithms").headers.get("X-Rescore-Status") == "ok", 90,
          "reranks to be served again")
    after = _tree(proc.pid)
    assert after["pool_masters"] and after["pool_masters"][0] != pool_master
    assert "rerank_pool_exited" in log.read_text()


def test_a_killed_front_takes_its_pool_along(opensearch_url) -> None:
    proc, _, _ = start_sidecar(opensearch_url, RESCORE_PRELOAD_MODEL="false")
    tree: dict = {}
    try:
        tree = _tree(proc.pid)
        assert tree["pool_masters"], tree
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # The pool's master gets SIGTERM as its parent dies, and stops its workers.
        _wait(lambda: not any(_alive(p) for p in [*tree["pool_masters"], *tree["pool_workers"]]), 60,
              "the pool to stop after its front died")
    finally:
        for pid in [*tree.get("front_workers", []), *tree.get("pool_masters", [])]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            stop_process(proc)


def test_no_pool_serves_reranks_in_the_front(opensearch_url, demo_index) -> None:
    proc, url, log = start_sidecar(opensearch_url, RESCORE_RERANK_POOL_WORKERS="0")
    try:
        assert not _tree(proc.pid)["pool_masters"]
        reranked = _rerank(url, demo_index, "neural ranking models for search")
        assert reranked.headers["X-Rescore-Status"] == "ok"
        # The log writer thread writes the line after the answer went out: wait for it.
        request_id = reranked.headers["X-Request-Id"]
        assert len(_wait(lambda: _access_lines(log, request_id), 10, "the access line")) == 1
    finally:
        stop_process(proc)
