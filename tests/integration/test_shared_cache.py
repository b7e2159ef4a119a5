"""Scores shared by two sidecar replicas through a real redis-server; Redis down never fails a search."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import free_port, start_sidecar, stop_process

pytestmark = pytest.mark.integration

QUERY = "how do solar panels produce electricity"


def start_redis(port: int) -> subprocess.Popen:
    """Start redis-server on 127.0.0.1:port with a memory bound and no persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing (scripts/test.sh installs it with apt-get)")
        pytest.skip("redis-server is not installed")
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--maxmemory", "32mb", "--maxmemory-policy", "allkeys-lru"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("redis-server did not start")


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    port = free_port()
    proc = start_redis(port)
    yield port
    stop_process(proc)


@pytest.fixture(scope="module")
def replicas(opensearch_url, demo_index, redis_port) -> Iterator[tuple[str, str]]:
    """Two sidecar processes (one worker each) sharing one Redis."""
    env = {"RESCORE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "RESCORE_WORKERS": "1"}
    first, url_a, _ = start_sidecar(opensearch_url, **env)
    try:
        second, url_b, _ = start_sidecar(opensearch_url, **env)
    except Exception:
        stop_process(first)
        raise
    yield url_a, url_b
    stop_process(first)
    stop_process(second)


def search(url: str, index: str, query: str, *, start: int, size: int, window: int = 20) -> dict:
    body = {"query": {"match": {"text": query}}, "from": start, "size": size,
            "ext": {"rerank": {"query_context": {"query_text": query}, "window_size": window, "fields": ["text"]}}}
    response = requests.post(f"{url}/{index}/_search", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def ids(body: dict) -> list[str]:
    return [hit["_id"] for hit in body["hits"]["hits"]]


def test_page_two_from_the_other_replica_is_the_exact_slice_without_rescoring(replicas, demo_index) -> None:
    url_a, url_b = replicas
    whole = search(url_a, demo_index, QUERY, start=0, size=10)
    rerank = whole["ext"]["rerank"]
    assert rerank["status"] == "ok" and rerank["cache"] == "shared" and rerank["scored"] > 0
    page2 = search(url_b, demo_index, QUERY, start=5, size=5)
    assert ids(page2) == ids(whole)[5:10]
    assert [h["_score"] for h in page2["hits"]["hits"]] == [h["_score"] for h in whole["hits"]["hits"][5:10]]
    info = page2["ext"]["rerank"]
    assert info["scored"] == 0 and info["cache_hits"] == rerank["scored"]  # every score came from Redis
    shared = requests.get(f"{url_b}/ready", timeout=10).json()["reranker"]["shared_cache"]
    assert shared["state"] == "shared" and shared["hits"] >= rerank["scored"] and shared["errors"] == 0
    assert shared["url"].startswith("redis://127.0.0.1:")


def test_redis_holds_digests_not_text_and_every_key_expires(replicas, demo_index, redis_port) -> None:
    import redis

    url_a, _ = replicas
    secret = "zebra quokka marmalade telescope"
    search(url_a, demo_index, secret, start=0, size=5)
    client = redis.Redis(port=redis_port)
    keys = list(client.scan_iter(match=b"*", count=1000))
    assert keys and all(k.startswith(b"rescore:score:") and len(k) == len(b"rescore:score:") + 32 for k in keys)
    for key in keys:
        assert len(client.get(key)) == 8  # a packed double, nothing else
        assert 0 < client.ttl(key) <= 3600
    dump = b"".join(keys)
    assert b"zebra" not in dump and b"solar" not in dump


def test_redis_down_keeps_searching_on_the_local_cache_and_says_so(opensearch_url, demo_index) -> None:
    port = free_port()
    redis_proc = start_redis(port)
    proc, url, _ = start_sidecar(opensearch_url, RESCORE_REDIS_URL=f"redis://127.0.0.1:{port}/0",
                                 RESCORE_WORKERS="1")
    try:
        assert search(url, demo_index, "wind turbines at sea", start=0, size=5)["ext"]["rerank"]["cache"] == "shared"
        stop_process(redis_proc)
        started = time.monotonic()
        down = search(url, demo_index, "geothermal heat from the earth", start=0, size=5)
        assert time.monotonic() - started < 10
        assert down["ext"]["rerank"]["status"] == "ok"
        assert down["ext"]["rerank"]["cache"] == "local (shared cache unavailable)"
        again = search(url, demo_index, "geothermal heat from the earth", start=0, size=5)
        assert again["ext"]["rerank"]["scored"] == 0  # the local cache kept the scores meanwhile
        assert ids(again) == ids(down)
    finally:
        stop_process(proc)
        if redis_proc.poll() is None:
            stop_process(redis_proc)


def test_first_writer_wins_and_both_replicas_keep_the_same_bits(redis_port) -> None:
    from sidecar.rerank.cache import ScoreCache, hashed_key
    from sidecar.rerank.shared_cache import TieredScoreStore

    url = f"redis://:not-a-real-password@127.0.0.1:{redis_port}/1"
    # The password is rejected by a server without one; a URL without it is used for the stores.
    plain = f"redis://127.0.0.1:{redis_port}/1"
    one = TieredScoreStore(ScoreCache(100), plain, ttl_s=60, timeout_s=0.5)
    two = TieredScoreStore(ScoreCache(100), plain, ttl_s=60, timeout_s=0.5)
    key = hashed_key("model", "instruction", "query", "doc")
    value = 0.1 + 0.2  # not exactly representable in decimal: the bits must survive
    one.put_many([(key, value)])
    two.put_many([(key, -7.5)])  # scored concurrently elsewhere: loses to the first write
    assert one.get_many([key]) == [value] and two.get_many([key]) == [value]
    fresh = TieredScoreStore(ScoreCache(100), plain, ttl_s=60, timeout_s=0.5)
    assert fresh.get_many([key, hashed_key("other")]) == [value, None]
    masked = TieredScoreStore(ScoreCache(100), url, ttl_s=60, timeout_s=0.5).shared_health()["url"]
    assert "not-a-real-password" not in masked and masked.startswith("redis://***@")
    for store in (one, two, fresh):
        store.close()
