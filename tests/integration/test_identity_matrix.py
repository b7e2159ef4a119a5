"""Security matrix: a real Elasticsearch with security on, three file-realm users and an anonymous
caller, each asking the engine directly and through a real sidecar that holds superuser
credentials and opens every API group (RESCORE_PROXY_ALLOW=all, the most permissive set-up).

alice reads index sec-a only, bob reads sec-b only, the admin reads everything. For every path
a caller can take (pass-through search/get/count/mget/msearch, reranked search in each syntax,
msearch with rerank entries, the compare options, the feedback report, admin APIs) the sidecar's
answer must carry the engine's status for that caller and never a document the engine would not
show that caller directly. Templates and /v1/compare need lang-mustache, which the integ-test-zip
lacks: those cells skip with that reason when the engine cannot render templates.

Set RESCORE_TEST_ES_SECURE_URL to reuse a running node started with USERS/ROLES below.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, start_elasticsearch, start_sidecar, stop_elasticsearch, stop_process

pytestmark = pytest.mark.integration

ADMIN = ("rescore-admin", "rescore-admin-pw")
USERS = {"alice": ("alice", "alice-pw-1"), "bob": ("bob", "bob-pw-22"), "admin": ADMIN, "anonymous": None}
ROLES = """\
reads_a:
  cluster: [monitor]
  indices:
    - names: ["sec-a"]
      privileges: [read, view_index_metadata, monitor]
reads_b:
  cluster: [monitor]
  indices:
    - names: ["sec-b"]
      privileges: [read, view_index_metadata, monitor]
"""
ES_USERS = "alice:alice-pw-1:reads_a bob:bob-pw-22:reads_b"
# Each index's documents carry a marker no other index has: it must never reach a caller who
# may not read that index.
MARKERS = {"sec-a": "marker-aaa-7f3", "sec-b": "marker-bbb-2c9"}
READS = {"alice": {"sec-a"}, "bob": {"sec-b"}, "admin": {"sec-a", "sec-b"}, "anonymous": set()}
TARGETS = ("sec-a", "sec-b", "sec-*")
QUERY = {"match": {"text": "solar"}}
RERANK = {"query_context": {"query_text": "solar panels"}, "window_size": 5}


@pytest.fixture(scope="module")
def secured_es(tmp_path_factory) -> str:
    """A real Elasticsearch with xpack security and file-realm users (scripts/elasticsearch.sh)."""
    existing = os.environ.get("RESCORE_TEST_ES_SECURE_URL")
    if existing:
        yield existing
        return
    folder = tmp_path_factory.mktemp("es-security")
    roles = folder / "roles.yml"
    roles.write_text(ROLES)
    os.chmod(folder, 0o755)
    os.chmod(roles, 0o644)
    port = free_port()
    env = start_elasticsearch(port, free_port(), ELASTICSEARCH_SECURITY="true", ELASTICSEARCH_ROLES_FILE=str(roles),
                              ELASTICSEARCH_USERS=ES_USERS, ELASTICSEARCH_ADMIN_USER=ADMIN[0],
                              ELASTICSEARCH_ADMIN_PASSWORD=ADMIN[1])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_elasticsearch(env)


@pytest.fixture(scope="module")
def secured_indices(secured_es) -> str:
    """sec-a and sec-b, two documents each, written as the admin directly."""
    for index, marker in MARKERS.items():
        requests.delete(f"{secured_es}/{index}", auth=ADMIN, timeout=60)
        created = requests.put(f"{secured_es}/{index}", auth=ADMIN, timeout=60,
                               json={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
        assert created.status_code == 200, created.text
        lines = [{"index": {"_id": "1"}}, {"title": f"Solar panels {index}", "text": f"solar panels {marker}"},
                 {"index": {"_id": "2"}}, {"title": f"Wind {index}", "text": f"solar and wind {marker}"}]
        bulk = requests.post(f"{secured_es}/{index}/_bulk?refresh=true", auth=ADMIN, timeout=60,
                             data="".join(json.dumps(line) + "\n" for line in lines),
                             headers={"Content-Type": "application/x-ndjson"})
        assert bulk.status_code == 200 and not bulk.json()["errors"], bulk.text
    return secured_es


@pytest.fixture(scope="module")
def secured_sidecar(secured_indices):
    """A real sidecar holding the superuser's credentials, every API group open."""
    proc, url, log_path = start_sidecar(
        secured_indices, RESCORE_OPENSEARCH_USER=ADMIN[0], RESCORE_OPENSEARCH_PASSWORD=ADMIN[1],
        RESCORE_PROXY_ALLOW="all", RESCORE_PRELOAD_MODEL="false")
    try:
        yield url
    finally:
        stop_process(proc)


def visible(body) -> set[tuple[str, str]]:
    """Return the (index, id) pairs of the documents a response shows."""
    if not isinstance(body, dict):
        return set()
    found = {(h["_index"], h["_id"]) for h in body.get("hits", {}).get("hits", []) if isinstance(h, dict)}
    if body.get("found") is True:
        found.add((body["_index"], body["_id"]))
    for doc in body.get("docs", []):
        if doc.get("found"):
            found.add((doc["_index"], doc["_id"]))
    for response in body.get("responses", []):
        found |= visible(response)
    return found


def summary(response: requests.Response):
    """Return (status, per-entry statuses of an msearch, count, visible documents) of a response."""
    try:
        body = response.json()
    except ValueError:
        body = None
    entries = [r.get("status") for r in body.get("responses", [])] if isinstance(body, dict) else []
    count = body.get("count") if isinstance(body, dict) else None
    return response.status_code, entries, count, visible(body)


def ndjson(*lines) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


def cells(target: str) -> list[tuple[str, tuple, tuple]]:
    """Return (name, sidecar request, direct equivalent) per path; a request is (method, path, json, ndjson)."""
    plain = {"query": QUERY}
    return [
        ("search", ("POST", f"/{target}/_search", plain, None), None),
        ("search GET", ("GET", f"/{target}/_search", None, None), None),
        ("get", ("GET", f"/{target}/_doc/1", None, None), None),
        ("count", ("POST", f"/{target}/_count", plain, None), None),
        ("mget", ("POST", "/_mget", {"docs": [{"_index": target, "_id": "1"}, {"_index": target, "_id": "2"}]},
                  None), None),
        ("msearch", ("POST", "/_msearch", None, ndjson({"index": target}, plain)), None),
        ("rerank ext", ("POST", f"/{target}/_search", {"query": QUERY, "ext": {"rerank": RERANK}}, None),
         ("POST", f"/{target}/_search", plain, None)),
        ("rerank rescore", ("POST", f"/{target}/_search",
                            {"query": QUERY, "rescore": {"window_size": 5, "rerank": {"query_text": "solar panels"}}},
                            None), ("POST", f"/{target}/_search", plain, None)),
        ("rerank retriever", ("POST", f"/{target}/_search", {"retriever": {"text_similarity_reranker": {
            "retriever": {"standard": {"query": QUERY}}, "field": "text", "inference_text": "solar panels",
            "rank_window_size": 5}}}, None), ("POST", f"/{target}/_search", plain, None)),
        ("msearch rerank", ("POST", "/_msearch", None, ndjson({"index": target}, {"query": QUERY, "ext": {"rerank": RERANK}},
                                                              {"index": target}, plain)),
         ("POST", "/_msearch", None, ndjson({"index": target}, plain, {"index": target}, plain))),
    ]


def call(base: str, user: str, request: tuple) -> requests.Response:
    method, path, body, lines = request
    if lines is not None:
        return requests.request(method, base + path, data=lines, auth=USERS[user], timeout=120,
                                headers={"Content-Type": "application/x-ndjson"})
    return requests.request(method, base + path, json=body, auth=USERS[user], timeout=120)


def test_no_caller_reads_through_the_sidecar_what_the_engine_refuses_it(secured_indices, secured_sidecar):
    mismatches, table = [], []
    for user in USERS:
        for target in TARGETS:
            for name, through, direct_request in cells(target):
                direct = call(secured_indices, user, direct_request or through)
                proxied = call(secured_sidecar, user, through)
                want, got = summary(direct), summary(proxied)
                table.append((user, target, name, want[0], got[0], sorted(got[3])))
                if (want[0], want[1], want[2]) != (got[0], got[1], got[2]) or got[3] != want[3]:
                    mismatches.append((user, target, name, want, got, proxied.text[:300]))
                for index, marker in MARKERS.items():
                    if index not in READS[user]:
                        assert marker not in proxied.text, (user, target, name, "leaked", index)
    assert mismatches == [], "\n".join(map(str, mismatches))
    # The matrix can fail: it holds allowed and refused cells of every kind.
    statuses = {(user, status) for user, _, _, _, status, _ in table}
    assert {("alice", 200), ("alice", 403), ("bob", 200), ("bob", 403), ("anonymous", 401), ("admin", 200)} <= statuses
    assert ("alice", "sec-a", "rerank ext", 200, 200, [("sec-a", "1"), ("sec-a", "2")]) in table
    assert ("bob", "sec-*", "rerank retriever", 200, 200, [("sec-b", "1"), ("sec-b", "2")]) in table


def test_reranked_searches_rerank_for_the_allowed_caller(secured_sidecar):
    response = requests.post(f"{secured_sidecar}/sec-a/_search", auth=USERS["alice"], timeout=120,
                             json={"query": QUERY, "ext": {"rerank": RERANK}})
    assert response.status_code == 200
    assert response.json()["ext"]["rerank"]["status"] == "ok"
    refused = requests.post(f"{secured_sidecar}/sec-a/_search", auth=USERS["bob"], timeout=120,
                            json={"query": QUERY, "ext": {"rerank": RERANK}})
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "security_exception"
    assert "bob" in refused.json()["error"]["reason"]


def test_admin_apis_answer_as_the_engine_answers_the_caller(secured_indices, secured_sidecar):
    """The sidecar's superuser credentials never stand in for a caller (anonymous included)."""
    requests_ = [("DELETE", "/sec-b", None), ("PUT", "/_cluster/settings",
                                              {"persistent": {"cluster.routing.allocation.enable": "all"}}),
                 ("PUT", "/_security/user/mallory", {"password": "mallory-pw-1", "roles": ["superuser"]}),
                 ("DELETE", "/sec-*", None), ("DELETE", "/sec-b/_doc/1", None),
                 ("PUT", "/sec-b/_doc/3", {"text": "planted"})]
    for user in ("anonymous", "alice", "bob"):
        for method, path, body in requests_:
            through = requests.request(method, secured_sidecar + path, json=body, auth=USERS[user], timeout=60)
            # Asking the engine directly changes nothing either: every one of these is refused.
            direct = requests.request(method, secured_indices + path, json=body, auth=USERS[user], timeout=60)
            assert through.status_code == direct.status_code == (401 if user == "anonymous" else 403), \
                (user, method, path, through.text[:300])
    for index in MARKERS:
        count = requests.get(f"{secured_indices}/{index}/_count", auth=ADMIN, timeout=30).json()["count"]
        assert count == 2, f"{index} lost documents"
    assert requests.get(f"{secured_indices}/_security/user/mallory", auth=ADMIN, timeout=30).status_code == 404


def test_compare_options_and_feedback_report_read_as_the_caller(secured_indices, secured_sidecar):
    stored = requests.post(f"{secured_sidecar}/v1/feedback", json={"query_id": "q-sec", "doc_id": "1", "position": 1},
                           timeout=60)
    assert stored.status_code == 200, stored.text  # written by the sidecar's own account
    requests.post(f"{secured_indices}/rescore-feedback/_refresh", auth=ADMIN, timeout=30)
    for user in USERS:
        direct_cat = requests.get(f"{secured_indices}/_cat/indices?format=json", auth=USERS[user], timeout=30)
        options = requests.get(f"{secured_sidecar}/v1/compare/options", auth=USERS[user], timeout=60)
        assert options.status_code == direct_cat.status_code, (user, options.text[:300])
        if options.status_code == 200:
            listed = {row["name"] for row in options.json()["indices"]}
            allowed = {row["index"] for row in direct_cat.json() if not row["index"].startswith(".")}
            assert listed == allowed and listed & set(MARKERS) == READS[user], (user, listed)
        direct_read = requests.post(f"{secured_indices}/rescore-feedback/_search", auth=USERS[user], timeout=30)
        report = requests.get(f"{secured_sidecar}/v1/feedback/report", auth=USERS[user], timeout=60)
        assert report.status_code == direct_read.status_code, (user, report.text[:300])
    assert requests.get(f"{secured_sidecar}/v1/feedback/report", auth=ADMIN, timeout=60).json()["events"] >= 1


def _templates_supported(es_url: str) -> bool:
    rendered = requests.post(f"{es_url}/_render/template", auth=ADMIN, timeout=30, json={"source": "{}"})
    return rendered.status_code == 200


def test_templates_and_compare_read_as_the_caller(secured_indices, secured_sidecar):
    if not _templates_supported(secured_indices):
        pytest.skip("this Elasticsearch has no lang-mustache module (the integ-test-zip lacks it): search "
                    "templates, _render/template and /v1/compare (stored templates) cannot run")
    inline = {"source": json.dumps({"query": QUERY, "ext": {"rerank": RERANK}}), "params": {"rerank": True}}
    for user in USERS:
        for target in TARGETS:
            direct = requests.post(f"{secured_indices}/{target}/_search", json={"query": QUERY}, auth=USERS[user],
                                   timeout=60)
            through = requests.post(f"{secured_sidecar}/{target}/_search/template", json=inline, auth=USERS[user],
                                    timeout=120)
            assert summary(through)[0] == summary(direct)[0] and summary(through)[3] == summary(direct)[3]
