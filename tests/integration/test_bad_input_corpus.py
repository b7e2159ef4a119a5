"""Bad-input corpus against a real sidecar (gunicorn) and OpenSearch: no response is ever a 5xx.

Every JSON endpoint gets deep nesting, huge integers, overflowing and non-finite numbers,
broken UTF-8 and wrong shapes; reranked searches get hostile option values and the query
parameters opensearch-py would take as its own. Every answer must be < 500, strict JSON (no
NaN/Infinity tokens), and a sidecar error must name the offending field.
"""
from __future__ import annotations

import json

import pytest
import requests

pytestmark = pytest.mark.integration

RERANK = {"query_context": {"query_text": "coffee"}, "fields": ["text"], "window_size": 5}


def _deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def _deep_query(levels: int) -> str:
    """A rerank search whose query is nested `levels` deep (bool inside bool)."""
    inner = '{"match_all":{}}'
    for _ in range(levels):
        inner = '{"bool":{"must":[' + inner + "]}}"
    return '{"query":' + inner + ',"ext":{"rerank":' + json.dumps(RERANK) + "}}"


def _search(options: dict | None = None, **extra) -> str:
    return json.dumps({"query": {"match": {"text": "coffee"}}, "ext": {"rerank": {**RERANK, **(options or {})}},
                       **extra})


BIG_INT = "9" * 5000
JSON_ENDPOINTS = ["/v1/rerank", "/v1/score", "/v1/rescore", "/v1/feedback", "/v1/compare", "/{index}/_search",
                  "/_search/template", "/{index}/_msearch"]

CASES: list[tuple[str, str, str, str | bytes, dict]] = []
for endpoint in JSON_ENDPOINTS:
    ndjson = "msearch" in endpoint
    for name, body in (("deep500", _deep(500)), ("deep5000", _deep(5000)), ("deep100k", _deep(100_000)),
                       ("bigint", '{"rerank": ' + BIG_INT + "}"), ("overflow", '{"rerank": 1e400}'),
                       ("nan", '{"rerank": NaN}'), ("infinity", '{"rerank": [Infinity, 1]}'),
                       ("bad_utf8", b'{"rerank": "\xff\xfe"}'), ("not_object", '["rerank"]'),
                       ("truncated", '{"rerank": {')):
        text = body.decode("latin-1") if isinstance(body, bytes) else body
        data = ('{"index": "{index}"}\n' + text + "\n") if ndjson else body
        CASES.append((f"{endpoint}:{name}", "POST", endpoint, data, {}))

CASES += [
    ("rank_constant_1e400", "POST", "/{index}/_search", _search().replace('"window_size": 5', '"window_size": 5, '
                                                                          '"rank_constant": 1e400'), {}),
    ("rank_constant_huge_int", "POST", "/{index}/_search", _search({"rank_constant": 10 ** 400, "fusion": "rrf"}), {}),
    ("weights_infinity", "POST", "/{index}/_search", _search().replace('"window_size": 5',
                                                                       '"window_size": 5, "weights": [Infinity, 1]'), {}),
    ("weights_huge", "POST", "/{index}/_search", _search({"weights": [1e308, 1e308], "fusion": "linear"}), {}),
    ("weights_huge_int", "POST", "/{index}/_search", _search({"weights": [10 ** 400, 1], "fusion": "linear"}), {}),
    ("min_score_nan", "POST", "/{index}/_search", _search().replace('"window_size": 5',
                                                                    '"window_size": 5, "min_score": NaN'), {}),
    ("window_bigint", "POST", "/{index}/_search", _search().replace('"window_size": 5', '"window_size": ' + BIG_INT),
     {}),
    ("window_negative", "POST", "/{index}/_search", _search({"window_size": -1}), {}),
    ("window_string", "POST", "/{index}/_search", _search({"window_size": "ten"}), {}),
    ("fields_wrong", "POST", "/{index}/_search", _search({"fields": {"a": 1}}), {}),
    ("query_text_object", "POST", "/{index}/_search", _search({"query_context": {"query_text": {"a": 1}}}), {}),
    ("size_string", "POST", "/{index}/_search", _search(size="many"), {}),
    ("size_huge", "POST", "/{index}/_search", _search(size=10 ** 30), {}),
    ("from_negative", "POST", "/{index}/_search", _search(**{"from": -5}), {}),
    ("rerank_not_object", "POST", "/{index}/_search", json.dumps({"ext": {"rerank": "yes"}}), {}),
    ("deep_bool_query", "POST", "/{index}/_search", _deep_query(600), {}),
    ("filter_path", "POST", "/{index}/_search?filter_path=took", _search(), {}),
    ("ignore_404", "POST", "/{index}/_search?ignore=404", _search(), {}),
    ("format_yaml", "POST", "/{index}/_search?format=yaml", _search(), {}),
    ("format_cbor", "POST", "/{index}/_search?format=cbor", _search(), {}),
    ("pretty_bad", "POST", "/{index}/_search?pretty=maybe", _search(), {}),
    ("timeout_2s", "POST", "/{index}/_search?timeout=2s", _search(), {}),
    ("timeout_garbage", "POST", "/{index}/_search?timeout=soon", _search(), {}),
    ("request_timeout", "POST", "/{index}/_search?request_timeout=1", _search(), {}),
    ("scroll_with_rerank", "POST", "/{index}/_search?scroll=1m", _search(), {}),
    ("missing_index", "POST", "/no-such-index-xyz/_search", _search(), {}),
    ("yaml_body", "POST", "/{index}/_search", "query:\n  match_all: {}\next:\n  rerank:\n    query_text: x\n",
     {"Content-Type": "application/yaml"}),
    ("template_invalid_json", "POST", "/{index}/_search/template",
     json.dumps({"source": '{"query": {"match": {"text": "{{q}}"}}, "ext": {"rerank": {"query_text": "{{q}}"}',
                 "params": {"q": "coffee", "rerank": True}}), {}),
    ("template_renders_garbage", "POST", "/{index}/_search/template",
     json.dumps({"source": "not json at all {{q}}", "params": {"q": "x", "rerank": 1}}), {}),
    ("template_unknown_id", "POST", "/{index}/_search/template",
     json.dumps({"id": "no-such-template", "params": {"rerank": True}}), {}),
    ("msearch_template_unknown_id", "POST", "/_msearch/template",
     '{"index": "{index}"}\n' + json.dumps({"id": "no-such-template", "params": {"rerank": True}}) + "\n"
     '{"index": "{index}"}\n' + json.dumps({"source": {"query": {"match": {"text": "{{q}}"}},
                                                      "ext": {"rerank": {"query_text": "{{q}}", "fields": ["text"]}}},
                                           "params": {"q": "coffee"}}) + "\n", {}),
    ("msearch_odd_lines", "POST", "/_msearch", '{"index": "{index}"}\n', {}),
    ("msearch_header_array", "POST", "/_msearch", '[]\n' + _search() + "\n", {}),
    ("rerank_texts_huge_list", "POST", "/v1/rerank", json.dumps({"query": "q", "texts": ["a"] * 100_000}), {}),
    ("rerank_query_surrogate", "POST", "/v1/rerank", '{"query": "\\ud800", "texts": ["a"]}', {}),
    ("rescore_hits_wrong", "POST", "/v1/rescore", json.dumps({"query": "q", "hits": [1, 2, 3]}), {}),
    ("feedback_wrong", "POST", "/v1/feedback", json.dumps({"events": [{"query_id": 5, "doc_id": []}]}), {}),
    ("compare_wrong", "POST", "/v1/compare", json.dumps({"index": ["x"], "query": 5}), {}),
    ("empty_body_rerank", "POST", "/v1/rerank", "", {}),
]


def _strict_json(text: str):
    def reject(name):
        raise ValueError(f"non-JSON token {name}")

    return json.loads(text, parse_constant=reject)


@pytest.mark.parametrize("name, method, path, body, headers", CASES, ids=[c[0] for c in CASES])
def test_bad_input_never_yields_a_5xx(sidecar_url, demo_index, name, method, path, body, headers):
    url = sidecar_url + path.replace("{index}", demo_index)
    data = body.replace("{index}", demo_index) if isinstance(body, str) else body
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    headers = {"Content-Type": "application/x-ndjson" if "msearch" in path else "application/json", **headers}
    resp = requests.request(method, url, data=data, headers=headers, timeout=120)
    assert resp.status_code < 500, f"{name}: {resp.status_code} {resp.text[:500]}"
    content_type = resp.headers.get("Content-Type", "")
    if "yaml" in content_type:
        return
    body = _strict_json(resp.text)
    if resp.status_code >= 400 and isinstance(body, dict) and "error_type" in body:
        assert body.get("field"), f"{name}: sidecar error names no field: {body}"
