"""A real gunicorn sidecar: one log line per event, no credentials, unforgeable fields, bounded memory.

Reads the process's own stderr (start_sidecar sends it to a file) and its worker's VmRSS.
"""
from __future__ import annotations

import json
import uuid

import pytest
import requests

from sidecar.experiments.soak import tree_rss_bytes, worker_pids
from tests.conftest import start_sidecar, stop_process

SECRET = "hunter2-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def sidecar_with_credentials(opensearch_url):
    """One worker; RESCORE_OPENSEARCH_URL carries user:password (OpenSearch without security ignores them)."""
    url_with_secret = opensearch_url.replace("://", f"://admin:{SECRET}@", 1)
    proc, url, log_path = start_sidecar(url_with_secret, RESCORE_WORKERS="1", RESCORE_PRELOAD_MODEL="false",
                                        RESCORE_LOG_FORMAT="json")
    try:
        yield proc, url, log_path
    finally:
        stop_process(proc)


def _lines(log_path) -> list[dict]:
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]


def test_each_line_once_no_secret_and_request_data_in_its_own_fields(sidecar_with_credentials):
    proc, url, log_path = sidecar_with_credentials
    forged = "/_cat status=200 endpoint=admin.health level=DEBUG request_id=forged"
    ids = []
    for path in ("/health", "/ready", "/metrics", forged.replace(" ", "%20"), "/no-such-index/_search"):
        response = requests.get(url + path, timeout=30)
        ids.append((path, response.headers["X-Request-Id"], response.status_code))
        assert SECRET not in response.text
    stop_process(proc)  # flush and close stderr; the rest of the checks read the file
    text = log_path.read_text()
    assert SECRET not in text and "admin:***@" not in text and "***@" in text  # start-up line, masked
    lines = _lines(log_path)
    assert sum(1 for e in lines if e["msg"].startswith("sidecar ready")) == 1
    for path, request_id, status in ids:
        access = [e for e in lines if e["logger"] == "sidecar.access" and e.get("request_id") == request_id]
        assert len(access) == 1, (path, access)  # written once, not by both a root and a gunicorn handler
        entry = access[0]
        assert entry["status"] == status and entry["level"] == "INFO"
        assert entry["path"] == path.replace("%20", " ")
        assert entry["endpoint"] != "admin.health" or path == "/health"
    forged_entry = next(e for e in lines if e.get("path", "").startswith("/_cat status=200"))
    assert forged_entry["request_id"] != "forged" and forged_entry["endpoint"] == "proxy.passthrough"
    # The front's gunicorn and the rerank pool's ("role": "pool") each write their own start-up lines.
    gunicorn_lines = [(e.get("role"), e["msg"]) for e in lines if e["logger"] == "gunicorn.error"]
    assert len(gunicorn_lines) == len(set(gunicorn_lines)) and gunicorn_lines


def test_worker_memory_stays_flat_under_long_made_up_template_ids(opensearch_url, demo_index):
    """Before: every template id was kept forever (+29 MB here); now a 1 MiB digest cache."""
    proc, url, _ = start_sidecar(opensearch_url, RESCORE_WORKERS="1", RESCORE_PRELOAD_MODEL="false")
    try:
        [worker] = worker_pids(proc.pid)
        session = requests.Session()

        def send(first: int, count: int) -> None:
            for i in range(first, first + count):
                body = {"id": f"t{i}-" + "x" * 200_000, "params": {"query_text": "q"}}
                response = session.post(f"{url}/{demo_index}/_search/template", json=body, timeout=60)
                assert response.status_code < 500, response.text[:300]

        send(0, 30)  # warm-up: allocator pools, connection pools
        warm = tree_rss_bytes(worker)
        send(30, 150)  # 30 MB of ids
        grown = tree_rss_bytes(worker) - warm
        print(f"worker RSS grew {grown / 2**20:.1f} MB over 150 requests")
        assert grown < 12 * 2**20, f"worker RSS grew {grown / 2**20:.1f} MB over 150 requests"
    finally:
        stop_process(proc)
