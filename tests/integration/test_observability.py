"""Metrics, JSON logs and request ids through a real sidecar process and a real OpenSearch."""
from __future__ import annotations

import glob
import json
import time
from urllib.parse import urlparse

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BROAD_QUERY, start_sidecar, stop_process

pytestmark = pytest.mark.integration

BROAD = {"query": BROAD_QUERY}


def rerank_body(query: str, **options) -> dict:
    return {**BROAD, "size": 5, "ext": {"rerank": {"query_context": {"query_text": query}, "window_size": 10,
                                                   **options}}}


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    """Return {sample name: {sorted label items: value}} from the sidecar's /metrics."""
    response = requests.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    """Sum the samples of name whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for key, v in samples.get(name, {}).items() if wanted <= set(key))


@pytest.fixture(scope="module")
def observed_sidecar(opensearch_url, demo_index, tmp_path_factory):
    eval_file = tmp_path_factory.mktemp("eval") / "scifact.json"
    eval_file.write_text(json.dumps({"hybrid": {"ndcg_cut_10": 0.7067, "recip_rank_10": 0.6762},
                                     "hybrid+rerank": {"ndcg_cut_10": 0.7218}}))
    proc, url, log_path = start_sidecar(opensearch_url, RESCORE_EVAL_METRICS_FILE=str(eval_file))
    try:
        yield url, log_path
    finally:
        stop_process(proc)


def test_metrics_appear_after_traffic(observed_sidecar, demo_index):
    url, _ = observed_sidecar
    before = scrape(url)
    body = rerank_body("how do solar panels produce electricity")
    first = requests.post(f"{url}/{demo_index}/_search", json=body, timeout=120)
    assert first.status_code == 200 and first.json()["ext"]["rerank"]["status"] == "ok"
    again = requests.post(f"{url}/{demo_index}/_search", json=body, timeout=120)  # all pairs cached now
    assert again.json()["ext"]["rerank"]["cache_hits"] == again.json()["ext"]["rerank"]["window"]
    assert requests.post(f"{url}/v1/rescore", data=b"{not json", timeout=30).status_code == 400
    assert requests.get(f"{url}/{demo_index}/_count", timeout=30).status_code == 200
    after = scrape(url)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("rescore_http_requests_total", endpoint="search.search", method="POST", status="200") == 2
    assert delta("rescore_http_requests_total", endpoint="proxy.passthrough", status="200") == 1
    assert delta("rescore_http_request_duration_seconds_count", endpoint="search.search") == 2
    for stage in ("first_stage", "queue", "model", "fusion", "rerank", "total"):
        assert delta("rescore_stage_duration_seconds_count", stage=stage) == 2, stage
    assert delta("rescore_stage_duration_seconds_sum", stage="first_stage") > 0
    assert delta("rescore_rerank_requests_total", status="ok", variant="none") == 2
    assert delta("rescore_errors_total", error_type="bad_request") == 1
    # One search scored 10 pairs in >= 1 batch; the second came from the cache.
    assert delta("rescore_model_pairs_total") == 10
    assert delta("rescore_batch_size_count") >= 1 and delta("rescore_batch_size_sum") == 10
    assert delta("rescore_model_tokens_total") > 10 * 5
    assert delta("rescore_model_busy_seconds_total") > 0
    assert value(after, "rescore_model_tokens_per_second") > 0
    assert delta("rescore_cache_lookups_total", result="miss") == 10
    assert delta("rescore_cache_lookups_total", result="hit") == 10
    assert 0 < value(after, "rescore_cache_hit_ratio") < 1
    assert value(after, "rescore_model_info", backend="cross-encoder", quantization="none", device="cpu") == 1
    assert value(after, "rescore_eval_quality", dataset="scifact", mode="hybrid+rerank",
                 metric="ndcg_cut_10") == pytest.approx(0.7218)


def test_degraded_searches_are_counted(observed_sidecar, demo_index):
    url, _ = observed_sidecar
    before = scrape(url)
    # A 1 ms budget for 30 unseen long pairs: the deadline passes before scoring ends.
    body = rerank_body("a question nobody asked before about ancient pottery glazes", timeout_ms=1)
    body["size"], body["ext"]["rerank"]["window_size"] = 30, 30
    data = requests.post(f"{url}/{demo_index}/_search", json=body, timeout=120).json()
    status = data["ext"]["rerank"]["status"]
    assert status in ("partial", "timeout")
    after = scrape(url)
    assert value(after, "rescore_degraded_total", reason=status) - value(before, "rescore_degraded_total",
                                                                          reason=status) == 1
    assert value(after, "rescore_rerank_requests_total", status=status) - value(
        before, "rescore_rerank_requests_total", status=status) == 1


def test_request_id_is_returned_logged_and_sent_to_opensearch(observed_sidecar, demo_index, opensearch_url,
                                                              os_client):
    url, log_path = observed_sidecar
    # Passthrough: the id is returned and logged but not added to the engine request (an added
    # X-Opaque-Id would change the engine's answer: it deduplicates deprecation warnings per id).
    plain = requests.get(f"{url}/{demo_index}/_count", headers={"X-Request-Id": "rid-pass-1"}, timeout=30)
    assert plain.headers["X-Request-Id"] == "rid-pass-1"
    assert "X-Opaque-Id" not in plain.headers
    minted = requests.get(f"{url}/{demo_index}/_count", timeout=30)
    assert len(minted.headers["X-Request-Id"]) == 32 and "X-Opaque-Id" not in minted.headers
    # A caller's own X-Opaque-Id is kept as the request id and reaches the engine, which echoes it.
    own = requests.get(f"{url}/{demo_index}/_count", headers={"X-Opaque-Id": "app-42"}, timeout=30)
    assert own.headers["X-Request-Id"] == "app-42" == own.headers["X-Opaque-Id"]

    # Reranked search: the flow's own OpenSearch call carries the id; OpenSearch's search slow log
    # (threshold 0 ms on this index) records it.
    os_client.indices.put_settings(index=demo_index, body={"index.search.slowlog.threshold.query.info": "0ms"})
    try:
        response = requests.post(f"{url}/{demo_index}/_search", json=rerank_body("wind turbines"),
                                 headers={"X-Request-Id": "rid-rerank-7"}, timeout=120)
        assert response.status_code == 200 and response.headers["X-Request-Id"] == "rid-rerank-7"
        port = urlparse(opensearch_url).port
        slowlogs = glob.glob(f"/tmp/rescore-opensearch-{port}/**/*search_slowlog*", recursive=True)
        if not slowlogs:
            pytest.skip("OpenSearch slow log files not found (external test cluster?)")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any("rid-rerank-7" in open(path, errors="replace").read() for path in slowlogs):
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"rid-rerank-7 not in OpenSearch slow logs {slowlogs}")
    finally:
        os_client.indices.put_settings(index=demo_index, body={"index.search.slowlog.threshold.query.info": None})

    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert records, "the sidecar writes JSON lines by default"
    mine = [r for r in records if r.get("request_id") == "rid-rerank-7"]
    events = {r.get("event") for r in mine}
    assert {"rerank_search", "rerank_scored", "request"} <= events, events
    # One line per event: opensearch-py's own per-call INFO line would repeat the first stage.
    assert not [r for r in mine if r.get("logger") == "opensearch"], mine
    access = next(r for r in mine if r.get("event") == "request")
    assert access["status"] == 200 and access["path"] == f"/{demo_index}/_search" and access["duration_ms"] > 0
    search = next(r for r in mine if r.get("event") == "rerank_search")
    assert search["status"] == "ok" and search["window"] == 10
