"""Two gunicorn workers (RESCORE_WORKERS=2): concurrent rerank searches all come back right."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import BROAD_QUERY, start_sidecar, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BROAD = {"query": BROAD_QUERY}
# One pair per batch (RESCORE_MAX_BATCH_SIZE=1): the INT8 cross-encoder's dynamic quantization
# ranges are per batch, so only batch-independent scoring makes scores exactly comparable; any
# mix-up between concurrent requests or workers then shows as a difference of whole logits.
TOLERANCE = 1e-3
QUERIES = ["how do solar panels produce electricity", "wind turbines", "history of the printing press",
           "how vaccines train the immune system", "coffee brewing temperature", "black holes and gravity"]


@pytest.fixture(scope="module")
def two_worker_sidecar(opensearch_url):
    # Two front workers and two rerank pool workers (the model's): reranks spread over the pool's.
    proc, url, _ = start_sidecar(opensearch_url, RESCORE_WORKERS="2", RESCORE_THREADS="4",
                                        RESCORE_RERANK_POOL_WORKERS="2", RESCORE_MAX_BATCH_SIZE="1")
    try:
        yield url, proc
    finally:
        stop_process(proc)


def _workers(proc) -> list[int]:
    """How many workers the front's master and the rerank pool's master run."""
    from sidecar.experiments.soak import children, pool_pids, worker_pids

    return [len(worker_pids(proc.pid)), sum(len(children(pid)) for pid in pool_pids(proc.pid))]


def _search(url: str, index: str, query: str) -> tuple[dict[str, float], str]:
    body = {**BROAD, "size": 10,
            "ext": {"rerank": {"query_context": {"query_text": query}, "window_size": 20, "fusion": "replace"}}}
    response = requests.post(f"{url}/{index}/_search", json=body, timeout=180)
    assert response.status_code == 200, response.text
    data = response.json()
    hits = data["hits"]["hits"]
    scores = [h["_score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    return {h["_id"]: h["_score"] for h in hits}, data["ext"]["rerank"]["status"]


def _rerank(url: str, query: str, documents: list[str]) -> dict[int, float]:
    response = requests.post(f"{url}/v1/rerank", json={"query": query, "documents": documents}, timeout=180)
    assert response.status_code == 200, response.text
    return {r["index"]: r["relevance_score"] for r in response.json()["results"]}


def test_concurrent_rerank_searches_on_two_workers(two_worker_sidecar, opensearch_url, demo_index):
    url, proc = two_worker_sidecar
    # Expected answers, one at a time (and the same first-stage hits straight from OpenSearch).
    expected = {q: _search(url, demo_index, q)[0] for q in QUERIES}
    direct = requests.post(f"{opensearch_url}/{demo_index}/_search", json={**BROAD, "size": 20}, timeout=60).json()
    window = {h["_id"] for h in direct["hits"]["hits"]}
    documents = [h["_source"]["text"] for h in direct["hits"]["hits"][:8]]
    expected_rerank = _rerank(url, QUERIES[0], documents)

    jobs = [("search", q) for q in QUERIES * 4] + [("rerank", QUERIES[0])] * 6
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(
            lambda job: (job, _search(url, demo_index, job[1]) if job[0] == "search"
                         else _rerank(url, job[1], documents)), jobs))

    # Same window, no duplicates, a clear winner stays first, every score equal within TOLERANCE.
    worst = 0.0
    for (kind, query), result in results:
        if kind == "search":
            scores, status = result
            assert status == "ok" and len(scores) == 10  # a dict: ids are unique
            assert set(scores) <= window
            want = expected[query]
            common = set(scores) & set(want)
            worst = max([worst] + [abs(scores[i] - want[i]) for i in common])
            # Near-ties may trade places; a hit clearly better than the last one returned may not go missing.
            floor = min(scores.values())
            assert all(i in scores for i, v in want.items() if v > floor + 2 * TOLERANCE), query
            ranked = sorted(want.values(), reverse=True)
            if ranked[0] - ranked[1] > 2 * TOLERANCE:
                assert max(scores, key=scores.get) == max(want, key=want.get), query
        else:
            assert set(result) == set(expected_rerank)
            worst = max([worst] + [abs(result[i] - expected_rerank[i]) for i in result])
    print(f"\n{len(results)} concurrent requests on 2 workers; largest score difference {worst:.3f}")
    assert worst < TOLERANCE
    assert _workers(proc) == [2, 2], "both front and both pool workers run"


def test_metrics_count_requests_of_both_workers(two_worker_sidecar):
    """/metrics aggregates every worker (prometheus multiprocess mode set up by gunicorn.conf.py)."""
    from prometheus_client.parser import text_string_to_metric_families

    url, proc = two_worker_sidecar

    def health_count() -> float:
        text = requests.get(f"{url}/metrics", timeout=30).text
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "rescore_http_requests_total" and s.labels.get("endpoint") == "admin.health")

    before = health_count()
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: requests.get(f"{url}/health", timeout=30).status_code, range(40)))
    assert statuses == [200] * 40
    # Every scrape, whichever worker answers it, sees all 40 requests.
    assert [health_count() - before for _ in range(4)] == [40.0] * 4
    assert _workers(proc) == [2, 2]
