"""A/B variants and click feedback through the real sidecar (gunicorn), real OpenSearch and model."""
import json
import subprocess
import sys

import pytest
import requests

from sidecar.config import Settings
from sidecar.experiments.ab import assign, bucket_of, load_config
from sidecar.experiments.feedback import parse_event
from sidecar.experiments.report import build_report
from sidecar.rerank.options import RerankerOptions
from sidecar.search.feedback_store import feedback_index_body
from tests.conftest import BROAD_QUERY, ROOT, start_sidecar, stop_process
from tests.servers import TeiReranker

pytestmark = pytest.mark.integration

FEEDBACK_INDEX = "feedback-it"
QUERY = "how do solar panels produce electricity"
BROAD = {"query": BROAD_QUERY}
EXPERIMENTS = {"experiments": [
    {"name": "window-test", "salt": "it", "unit": "user", "indices": ["demo-test"],
     "variants": [{"name": "control", "weight": 50},
                  {"name": "small-window", "weight": 50, "window_size": 3, "fusion": "replace"}]},
    # No "indices": applies to /v1/rescore (and other indices); its treatment scores on another backend.
    {"name": "backend-test", "salt": "it", "unit": "session",
     "variants": [{"name": "control", "weight": 50}, {"name": "remote-tei", "weight": 50, "backend": "remote"}]},
]}


@pytest.fixture(scope="module")
def tei():
    with TeiReranker() as server:
        yield server


@pytest.fixture(scope="module")
def experiments_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("experiments") / "experiments.json"
    path.write_text(json.dumps(EXPERIMENTS))
    return path


@pytest.fixture(scope="module")
def sidecar(opensearch_url, demo_index, tei, experiments_file):
    # The default reranker stays the bundled cross-encoder; RESCORE_REMOTE_* only matter to the
    # variant that switches the backend to "remote".
    proc, url, _ = start_sidecar(opensearch_url, RESCORE_EXPERIMENTS_FILE=str(experiments_file),
                                 RESCORE_FEEDBACK_INDEX=FEEDBACK_INDEX, RESCORE_REMOTE_URL=tei.url,
                                 RESCORE_REMOTE_API="tei")
    try:
        yield url
    finally:
        stop_process(proc)


def unit_in(experiments_file, experiment: str, variant: str, unit: str) -> str:
    """Return a unit id that the experiment puts into `variant` (by the same bucketing as the sidecar)."""
    config = load_config(experiments_file, base=RerankerOptions(remote_url="http://127.0.0.1:9"))
    [exp] = [e for e in config.experiments if e.name == experiment]
    return next(f"{unit}-{i}" for i in range(1000) if assign(exp, {unit: f"{unit}-{i}"}).variant.name == variant)


def search(url, user=None, **headers):
    if user is not None:
        headers["X-User-Id"] = user
    body = {**BROAD, "size": 20, "ext": {"rerank": {"query_context": {"query_text": QUERY}}}}
    response = requests.post(f"{url}/demo-test/_search", json=body, headers=headers, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def ids(body):
    return [h["_id"] for h in body["hits"]["hits"]]


def test_variant_is_applied_and_visible_in_ext(sidecar, opensearch_url, experiments_file):
    control_user = unit_in(experiments_file, "window-test", "control", "user")
    small_user = unit_in(experiments_file, "window-test", "small-window", "user")
    control = search(sidecar, control_user)["ext"]["rerank"]
    small = search(sidecar, small_user, **{"X-Request-Id": "req-123"})
    ext = small["ext"]["rerank"]
    assert ext["experiment"] == {"name": "window-test", "variant": "small-window", "unit": "user",
                                 "bucket": bucket_of("it", "window-test", small_user), "assigned": True}
    assert control["experiment"]["variant"] == "control" and control["experiment"]["assigned"] is True
    # The variant's overrides reach the flow: window 3 and fusion replace vs the defaults.
    assert (ext["window"], ext["fusion"]) == (3, "replace")
    assert control["window"] > 10 and control["fusion"] == Settings().rerank_fusion
    # Window 3: everything after the top 3 keeps OpenSearch's order.
    direct = requests.post(f"{opensearch_url}/demo-test/_search", json={**BROAD, "size": 20}, timeout=60).json()
    assert ids(small)[3:] == ids(direct)[3:] and sorted(ids(small)[:3]) == sorted(ids(direct)[:3])
    # The query id joins feedback to the response: the request id when given, else a fresh uuid4 hex.
    assert ext["query_id"] == "req-123"
    assert len(control["query_id"]) == 32 and control["query_id"] != search(sidecar, control_user)["ext"]["rerank"][
        "query_id"]
    # Same user, same variant on every request.
    assert {search(sidecar, small_user)["ext"]["rerank"]["experiment"]["variant"] for _ in range(3)} == {
        "small-window"}


def test_no_user_id_gets_control_and_ext_says_why(sidecar):
    ext = search(sidecar)["ext"]["rerank"]
    assert ext["experiment"] == {"name": "window-test", "variant": "control", "unit": "user", "bucket": None,
                                 "assigned": False, "reason": "no X-User-Id header: control"}
    assert ext["window"] > 10
    bad = requests.post(f"{sidecar}/demo-test/_search", headers={"X-User-Id": "x" * 300},
                        json={**BROAD, "ext": {"rerank": {"query_context": {"query_text": QUERY}}}}, timeout=60)
    assert bad.status_code == 422 and bad.json()["field"] == "X-User-Id"


def test_msearch_entries_get_their_own_query_ids(sidecar, experiments_file):
    small_user = unit_in(experiments_file, "window-test", "small-window", "user")
    entry = json.dumps({**BROAD, "size": 5, "ext": {"rerank": {"query_context": {"query_text": QUERY}}}})
    lines = f'{{"index": "demo-test"}}\n{entry}\n{{"index": "demo-test"}}\n{entry}\n'
    response = requests.post(f"{sidecar}/_msearch", data=lines, timeout=120,
                             headers={"Content-Type": "application/x-ndjson", "X-User-Id": small_user,
                                      "X-Request-Id": "batch-7"})
    exts = [r["ext"]["rerank"] for r in response.json()["responses"]]
    assert [e["query_id"] for e in exts] == ["batch-7-0", "batch-7-1"]
    assert [e["experiment"]["variant"] for e in exts] == ["small-window", "small-window"]
    assert [e["window"] for e in exts] == [3, 3]


def test_model_variant_uses_its_own_reranker_built_once(sidecar, tei, experiments_file):
    remote_session = unit_in(experiments_file, "backend-test", "remote-tei", "session")
    control_session = unit_in(experiments_file, "backend-test", "control", "session")
    body = {"query": "solar panels", "documents": ["wind power", "solar panels make power", "solar"]}

    def rescore(session):
        response = requests.post(f"{sidecar}/v1/rescore", json=body, headers={"X-Session-Id": session}, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    before = tei.calls
    control = rescore(control_session)
    assert tei.calls == before  # the default cross-encoder scored it
    assert control["ext"]["rerank"]["experiment"]["variant"] == "control"
    assert "remote:" not in control["ext"]["rerank"]["model"]
    treated = rescore(remote_session)
    ext = treated["ext"]["rerank"]
    assert ext["experiment"]["name"] == "backend-test" and ext["experiment"]["variant"] == "remote-tei"
    assert ext["model"].startswith(f"remote:{tei.url}") and tei.calls == before + 1
    # The TEI stand-in scores by shared words: "solar panels make power" (2) first.
    assert [h["_source"]["text"] for h in treated["hits"]][0] == "solar panels make power"
    rescore(remote_session)  # cached scores, same reranker instance: no second build, no new call
    assert tei.calls == before + 1
    # Searches on demo-test belong to the other experiment, which never switches the backend.
    assert search(sidecar, "anyone")["ext"]["rerank"]["experiment"]["name"] == "window-test"


def _events(query_id, variant, clicked: dict[int, float]):
    shown = [{"query_id": query_id, "doc_id": f"doc-{p}", "position": p, "click": False, "user_id": "u1",
              "variant": variant, "experiment": "window-test", "timestamp": "2025-02-01T10:00:00Z"}
             for p in range(1, 6)]
    clicks = [{"query_id": query_id, "doc_id": f"doc-{p}", "position": p, "click": True, "dwell_ms": dwell,
               "variant": variant, "experiment": "window-test", "timestamp": "2025-02-01T10:00:05.250Z"}
              for p, dwell in clicked.items()]
    return shown + clicks


def _stored(os_client, query_id):
    os_client.indices.refresh(index=FEEDBACK_INDEX)
    hits = os_client.search(index=FEEDBACK_INDEX, body={"query": {"term": {"query_id": query_id}}, "size": 100,
                                                        "sort": [{"position": "asc"}, {"click": "asc"}]})
    return [h["_source"] for h in hits["hits"]["hits"]]


def test_feedback_round_trips_through_opensearch(sidecar, os_client):
    query_id = search(sidecar, "u1")["ext"]["rerank"]["query_id"]
    events = _events(query_id, "control", {2: 41000.0})
    events[0]["query_text"] = QUERY
    response = requests.post(f"{sidecar}/v1/feedback", json={"events": events}, timeout=60)
    assert response.status_code == 200 and response.json() == {"accepted": 6}
    stored = _stored(os_client, query_id)
    expected = sorted(events, key=lambda e: (e["position"], e["click"]))
    for event in expected:
        event["timestamp"] = event["timestamp"].replace(":00Z", ":00.000Z")
    assert stored == expected
    # The index was created from es_templates/index/feedback.json (strict, explicit types).
    mapping = os_client.indices.get_mapping(index=FEEDBACK_INDEX)[FEEDBACK_INDEX]["mappings"]
    assert mapping == feedback_index_body()["mappings"]
    # A single event (not a batch) is accepted too, with click false and now as defaults.
    single = requests.post(f"{sidecar}/v1/feedback", json={"query_id": "single-1", "doc_id": "d", "position": 3},
                           timeout=60)
    assert single.json() == {"accepted": 1}
    [doc] = _stored(os_client, "single-1")
    assert doc["click"] is False and doc["timestamp"].endswith("Z") and set(doc) == {
        "query_id", "doc_id", "position", "click", "timestamp"}


@pytest.mark.parametrize("events, field", [
    ([{"query_id": "rej", "doc_id": "d", "position": 1}] * 3 + [{"query_id": "rej", "doc_id": "d", "position": 0}],
     "events[3].position"),
    ([{"query_id": "rej", "doc_id": "d", "position": 1}, {"query_id": "rej", "position": 2}], "events[1].doc_id"),
    ([{"query_id": "rej", "doc_id": "d", "position": 1, "dwell_ms": -5}], "events[0].dwell_ms"),
])
def test_bad_batch_is_rejected_whole_and_names_the_field(sidecar, os_client, events, field):
    response = requests.post(f"{sidecar}/v1/feedback", json={"events": events}, timeout=60)
    assert response.status_code == 422
    assert response.json()["field"] == field and response.json()["error_type"] == "validation_error"
    assert _stored(os_client, "rej") == []


def test_malformed_feedback_body_is_a_400(sidecar):
    response = requests.post(f"{sidecar}/v1/feedback", data=b'{"events": [', timeout=60,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["field"] == "body"


def test_report_from_stored_feedback_endpoint_and_script(sidecar, opensearch_url, tmp_path):
    batch = (_events("rep-1", "control", {1: 45000.0}) + _events("rep-2", "control", {})
             + _events("rep-3", "small-window", {3: 2000.0}) + _events("rep-4", "small-window", {1: 35000.0}))
    for event in batch:
        event["experiment"] = "report-test"
    assert requests.post(f"{sidecar}/v1/feedback", json={"events": batch}, timeout=60).json() == {"accepted": 23}
    requests.post(f"{opensearch_url}/{FEEDBACK_INDEX}/_refresh", timeout=60)
    local = build_report([parse_event(e) for e in batch], k=10, experiment="report-test", resamples=1000)
    served = requests.get(f"{sidecar}/v1/feedback/report", params={"experiment": "report-test"}, timeout=60).json()
    assert served["variants"] == local["variants"] and served["vs_control"] == local["vs_control"]
    assert served["variants"]["control"]["metrics"]["CTR@10"]["mean"] == 0.5
    assert served["variants"]["small-window"]["metrics"]["MRR"]["mean"] == pytest.approx((1 / 3 + 1) / 2)
    bad = requests.get(f"{sidecar}/v1/feedback/report", params={"experiment": "report-test", "k": "0"}, timeout=60)
    assert bad.status_code == 422 and bad.json()["field"] == "k"
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "scripts/experiment_report.py", "--opensearch-url", opensearch_url,
                           "--index", FEEDBACK_INDEX, "--experiment", "report-test", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from_script = json.loads((out / "report.json").read_text())
    expected = build_report([parse_event(e) for e in batch], k=10, experiment="report-test")
    assert from_script["variants"] == expected["variants"]
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_failing_variant_reranker_opens_only_its_own_circuit(sidecar, tei, experiments_file):
    remote_session = unit_in(experiments_file, "backend-test", "remote-tei", "session")
    control_session = unit_in(experiments_file, "backend-test", "control", "session")

    def rescore(session, number):
        body = {"query": f"question {number}", "documents": [f"answer {number}", "other"]}  # no cache hits
        response = requests.post(f"{sidecar}/v1/rescore", json=body, headers={"X-Session-Id": session}, timeout=60)
        return response.json()["ext"]["rerank"]["status"]

    tei.mode = "fail"
    try:
        statuses = [rescore(remote_session, n) for n in range(7)]  # RESCORE_CIRCUIT_FAILURES = 5
    finally:
        tei.mode = "ok"
    assert statuses[:5] == ["error"] * 5 and statuses[5:] == ["circuit_open"] * 2
    assert rescore(control_session, 99) == "ok"  # the control's reranker and circuit are untouched
    assert requests.get(f"{sidecar}/ready", timeout=30).json()["circuit"]["state"] == "closed"


def test_index_deleted_while_running_comes_back_with_the_explicit_mapping(sidecar, os_client):
    os_client.indices.delete(index=FEEDBACK_INDEX)
    response = requests.post(f"{sidecar}/v1/feedback", json={"query_id": "after-delete", "doc_id": "d",
                                                              "position": 1, "experiment": "e"}, timeout=60)
    assert response.json() == {"accepted": 1}
    mapping = os_client.indices.get_mapping(index=FEEDBACK_INDEX)[FEEDBACK_INDEX]["mappings"]
    assert mapping == feedback_index_body()["mappings"]  # not a dynamically guessed one (experiment: text)
    assert [d["query_id"] for d in _stored(os_client, "after-delete")] == ["after-delete"]
