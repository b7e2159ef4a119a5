"""Rerank policies against a real OpenSearch and a real sidecar: requests the dashboards send, replayed.

The fixtures (tests/fixtures/dashboards/*.json) are written from the tools' own source (each case names
the files): every case goes once through the sidecar with a policy file on and once straight to the
engine. Reranked cases must keep every hit the engine returned and carry the policy's name; untouched
cases must answer exactly what the engine answers (apart from `took` and scroll ids).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests

from sidecar.search.ingest import ingest
from sidecar.search.templates import install
from tests.conftest import DEMO_CORPUS, ROOT, start_sidecar, stop_process

pytestmark = pytest.mark.integration

FIXTURES = ROOT / "tests" / "fixtures" / "dashboards"
INDEX, OTHER, ALIAS, TEMPLATE_INDEX, PLAIN = "policy-docs", "policy-other", "policy-alias", "policy-tpl", "policy-plain"
POLICIES = f"""
policies:
  - name: discover
    indices: ["{INDEX}*", "{ALIAS}"]
    rerank: {{window_size: 50, fields: [title, text], fusion: replace}}
  - name: templates
    indices: ["{TEMPLATE_INDEX}"]
    endpoints: [search_template, msearch_template]
    query: {{template_params: [q]}}
    rerank: {{window_size: 20, fusion: replace}}
"""
IGNORED = ("took", "_scroll_id", "pit_id")


@pytest.fixture(scope="module")
def indices(os_client):
    for name in (INDEX, OTHER, TEMPLATE_INDEX, PLAIN):
        install(os_client, name, recreate=True)
        with DEMO_CORPUS.open() as fh:
            assert ingest(os_client, name, fh, embedder=None).indexed == 30
    os_client.indices.put_alias(index=OTHER, name=ALIAS)
    return {"{index}": INDEX, "{alias}": ALIAS, "{template_index}": TEMPLATE_INDEX}


@pytest.fixture(scope="module")
def policy_sidecar(opensearch_url, tmp_path_factory):
    path = tmp_path_factory.mktemp("policies") / "policies.yaml"
    path.write_text(POLICIES)
    proc, url, log_path = start_sidecar(opensearch_url, RESCORE_POLICIES_FILE=str(path))
    try:
        yield url
    finally:
        stop_process(proc)


def _fill(value, names):
    text = json.dumps(value)
    for key, name in names.items():
        text = text.replace(key, name)
    return json.loads(text)


def _send(base: str, case: dict, names: dict) -> requests.Response:
    path = _fill(case["path"], names)
    headers = {"Content-Type": "application/json", **case.get("headers", {})}
    if "ndjson" in case:
        data = "".join(json.dumps(line) + "\n" for line in _fill(case["ndjson"], names))
        headers["Content-Type"] = "application/x-ndjson"
    else:
        data = json.dumps(_fill(case["body"], names))
    return requests.request(case["method"], base + path, params=case.get("params"), data=data.encode(),
                            headers=headers, timeout=120)


def _strip(body):
    if isinstance(body, dict):
        return {k: _strip(v) for k, v in body.items() if k not in IGNORED}
    if isinstance(body, list):
        return [_strip(v) for v in body]
    return body


def _check_reranked(mine: dict, engine: dict, policy: str, case: dict) -> None:
    assert mine["ext"]["rerank"]["policy"] == policy, mine["ext"]
    assert mine["ext"]["rerank"]["status"] == "ok", mine["ext"]
    ids, engine_ids = [h["_id"] for h in mine["hits"]["hits"]], [h["_id"] for h in engine["hits"]["hits"]]
    assert sorted(ids) == sorted(engine_ids) and len(ids) == len(set(ids))  # none lost, none duplicated
    if "top" in case:
        assert ids[0] == case["top"], ids[:5]
    if case.get("order_changes"):  # filter-context text (KQL/DQL): every first-stage score is the same
        assert ids != engine_ids
    assert mine["hits"]["total"] == engine["hits"]["total"]
    for hit in mine["hits"]["hits"]:  # what the tool asked for still comes back (highlight, _source filter)
        twin = next(h for h in engine["hits"]["hits"] if h["_id"] == hit["_id"])
        assert hit.get("_source") == twin.get("_source") and hit.get("highlight") == twin.get("highlight")


def _cases(name: str) -> list[dict]:
    return json.loads((FIXTURES / name).read_text())["cases"]


@pytest.mark.parametrize("case", _cases("opensearch_dashboards.json"), ids=lambda c: c["name"])
def test_dashboards_requests_through_policy(case, policy_sidecar, opensearch_url, indices):
    mine, engine = _send(policy_sidecar, case, indices), _send(opensearch_url, case, indices)
    assert mine.status_code == engine.status_code == 200, (mine.text[:500], engine.text[:500])
    expects = case["expect"] if isinstance(case["expect"], list) else [case["expect"]]
    pairs = (list(zip(mine.json()["responses"], engine.json()["responses"])) if "ndjson" in case
             else [(mine.json(), engine.json())])
    policy = "templates" if "template" in case["path"] else "discover"
    for (m, e), expect in zip(pairs, expects, strict=True):
        if expect == "reranked":
            _check_reranked(m, e, policy, case)
        else:
            assert _strip(m) == _strip(e)
    statuses = [s.strip() for s in mine.headers["X-Rescore-Status"].split(",")]
    assert mine.headers["X-Rescore-Policy"].split(", ") == [policy] * len(expects)
    for status, expect in zip(statuses, expects, strict=True):
        assert status == ("ok" if expect == "reranked" else f"skipped;reason={case.get('reason', 'size_0')}")


def test_uncovered_index_passes_through_without_policy_headers(policy_sidecar, opensearch_url, indices):
    body = {"query": {"match": {"text": "why do cats scratch the sofa"}}}
    mine = requests.post(f"{policy_sidecar}/{PLAIN}/_search", json=body, timeout=60)
    engine = requests.post(f"{opensearch_url}/{PLAIN}/_search", json=body, timeout=60)
    assert _strip(mine.json()) == _strip(engine.json())
    assert "X-Rescore-Status" not in mine.headers and "X-Rescore-Policy" not in mine.headers


def test_uri_search_q_param_is_reranked(policy_sidecar, opensearch_url, indices):
    params = {"q": "cats OR sofa OR scratch", "size": 30}
    mine = requests.get(f"{policy_sidecar}/{INDEX}/_search", params=params, timeout=60)
    engine = requests.get(f"{opensearch_url}/{INDEX}/_search", params=params, timeout=60).json()
    assert mine.status_code == 200 and mine.headers["X-Rescore-Policy"] == "discover"
    _check_reranked(mine.json(), engine, "discover", {"top": "cat-scratching"})


def test_ext_rerank_false_opts_out(policy_sidecar, opensearch_url, indices):
    body = {"query": {"match": {"text": "why do cats scratch the sofa"}}, "size": 30}
    mine = requests.post(f"{policy_sidecar}/{INDEX}/_search", json={**body, "ext": {"rerank": False}}, timeout=60)
    engine = requests.post(f"{opensearch_url}/{INDEX}/_search", json=body, timeout=60)
    assert mine.status_code == 200, mine.text
    assert _strip(mine.json()) == _strip(engine.json())
    assert mine.headers["X-Rescore-Status"] == "skipped;reason=opted_out"


def test_own_rerank_wins_and_metrics_count_per_policy(policy_sidecar, indices):
    own = {"query": {"match": {"title": "cats"}}, "ext": {"rerank": {"query_context": {"query_text": "cats"}}}}
    answer = requests.post(f"{policy_sidecar}/{INDEX}/_search", json=own, timeout=60)
    assert answer.status_code == 200 and "policy" not in answer.json()["ext"]["rerank"]
    assert answer.headers["X-Rescore-Status"] == "ok" and "X-Rescore-Policy" not in answer.headers
    for body in ({"query": {"match": {"title": "cats"}}}, {"query": {"match": {"title": "cats"}}, "sort": ["_doc"]}):
        assert requests.post(f"{policy_sidecar}/{INDEX}/_search", json=body, timeout=60).status_code == 200
    text = requests.get(f"{policy_sidecar}/metrics", timeout=30).text
    assert 'rescore_policy_searches_total{outcome="ok",policy="discover"}' in text, [l for l in text.splitlines() if "policy" in l]
    assert 'rescore_policy_searches_total{outcome="skipped_sorted",policy="discover"}' in text


def test_bad_policies_file_stops_start_naming_file_and_path(opensearch_url, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("policies:\n  - name: x\n    indices: [a]\n    rerank: {window_size: 0}\n")
    with pytest.raises(RuntimeError) as failed:
        start_sidecar(opensearch_url, RESCORE_POLICIES_FILE=str(path), RESCORE_PRELOAD_MODEL="false")
    assert f"{path}: policies[0].rerank.window_size" in str(failed.value)


# --- Elasticsearch (Kibana Discover, async search) ------------------------------------------------

@pytest.fixture(scope="module")
def es_url(request):
    """The shared Elasticsearch fixture (scripts/elasticsearch.sh) where conftest has one, else the env var."""
    try:
        return request.getfixturevalue("elasticsearch_url")
    except pytest.FixtureLookupError:
        url = os.environ.get("RESCORE_TEST_ELASTICSEARCH_URL")
        if not url:
            pytest.skip("no Elasticsearch: set RESCORE_TEST_ELASTICSEARCH_URL to replay the Kibana fixtures")
        return url


@pytest.fixture(scope="module")
def async_search_module(es_url):
    probe = requests.post(f"{es_url}/_async_search", json={"size": 0}, timeout=30)
    if probe.status_code != 200:
        pytest.skip(f"Elasticsearch at {es_url} has no async-search module (the integ-test-zip ships "
                    f"without it and it is not published on Maven Central): POST /_async_search answered "
                    f"{probe.status_code}")


@pytest.fixture(scope="module")
def es_sidecar(es_url, tmp_path_factory):
    with DEMO_CORPUS.open() as fh:
        docs = [json.loads(line) for line in fh]
    requests.delete(f"{es_url}/{INDEX}", timeout=30)
    # A time field, as a time-based data view has (Discover sorts by it with a date format).
    bulk = "".join(json.dumps({"index": {"_index": INDEX, "_id": d["_id"]}}) + "\n"
                   + json.dumps({"title": d["title"], "text": d["text"],
                                 "timestamp": f"2026-11-30T10:{i:02d}:00Z"}) + "\n" for i, d in enumerate(docs))
    requests.post(f"{es_url}/_bulk?refresh=true", data=bulk.encode(),
                  headers={"Content-Type": "application/x-ndjson"}, timeout=60).raise_for_status()
    path = tmp_path_factory.mktemp("es-policies") / "policies.json"
    path.write_text(json.dumps({"policies": [{"name": "discover", "indices": [f"{INDEX}*"],
                                              "rerank": {"fusion": "replace"}}]}))
    proc, url, _ = start_sidecar(es_url, RESCORE_POLICIES_FILE=str(path))
    try:
        yield url
    finally:
        stop_process(proc)


@pytest.mark.parametrize("case", _cases("kibana_discover.json"), ids=lambda c: c["name"])
def test_kibana_requests_through_policy(case, es_url, es_sidecar, request):
    names = {"{index}": INDEX}
    asynchronous = case["path"].endswith("_async_search")
    if asynchronous and case["expect"] == "untouched":
        request.getfixturevalue("async_search_module")  # only the engine itself can answer (and poll) these
    mine = _send(es_sidecar, case, names)
    reference = case
    if asynchronous and case["expect"] == "reranked":
        # The sidecar answers a submit it reranks itself; the engine's reference is the same search
        # as a plain _search (so this runs on an Elasticsearch without the async-search module too).
        reference = {**case, "path": case["path"].replace("_async_search", "_search"),
                     "params": {k: v for k, v in case["params"].items()
                                if k not in ("wait_for_completion_timeout", "keep_on_completion", "keep_alive")}}
    engine = _send(es_url, reference, names)
    assert mine.status_code == engine.status_code == 200, (mine.text[:500], engine.text[:500])
    m, e = mine.json(), engine.json()
    if asynchronous:
        assert m["is_running"] is False or case["expect"] == "untouched"
        m, e = m["response"], e.get("response", e)
    if case["expect"] == "reranked":
        if asynchronous:
            assert mine.json()["is_partial"] is False and "id" not in mine.json()  # complete: nothing to poll
        _check_reranked(m, e, "discover", case)
        return
    assert _strip(m["hits"]) == _strip(e["hits"])
    assert mine.headers["X-Rescore-Status"] == f"skipped;reason={case['reason']}"
    if case.get("poll") and mine.json().get("id"):  # Discover polls the id it got back
        polled = requests.get(f"{es_sidecar}/_async_search/{mine.json()['id']}",
                              params={"keep_alive": "60000ms", "wait_for_completion_timeout": "1s"}, timeout=60)
        assert polled.status_code == 200 and _strip(polled.json()["response"]["hits"]) == _strip(e["hits"])


def test_async_search_on_opensearch_answers_what_opensearch_answers(policy_sidecar, opensearch_url, indices) -> None:
    """OpenSearch has no async search: a covered submit must not be answered by the sidecar as if it had."""
    body = {"query": {"match": {"text": "solar power"}}, "size": 5}
    direct = requests.post(f"{opensearch_url}/{INDEX}/_async_search", json=body, timeout=60)
    through = requests.post(f"{policy_sidecar}/{INDEX}/_async_search", json=body, timeout=60)
    assert direct.status_code >= 400  # the engine's own "no handler" answer
    assert (through.status_code, through.json()) == (direct.status_code, direct.json())
