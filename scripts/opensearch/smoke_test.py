#!/usr/bin/env python3
"""Smoke test for an OpenSearch started by scripts/opensearch.sh.

Usage: python3 scripts/opensearch/smoke_test.py [http://127.0.0.1:9200]

Checks the features rescore-sidecar relies on: plugins/modules present,
knn_vector (lucene engine) + knn query, mustache search templates, painless
script_score, hybrid query with a normalization-processor search pipeline,
and (if available) an RRF score-ranker-processor pipeline.
Standard library only; exits non-zero on the first failed check.
"""
import json
import sys
import urllib.error
import urllib.request

BASE = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9200").rstrip("/")
INDEX = "smoke-knn"
failures = []


def call(method, path, body=None, ok=(200, 201)):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if status not in ok:
        raise AssertionError(f"{method} {path} -> {status}: {text[:800]}")
    return json.loads(text) if text.strip().startswith(("{", "[")) else text


def check(name, fn):
    try:
        detail = fn()
        print(f"PASS {name}" + (f": {detail}" if detail else ""))
    except Exception as e:  # noqa: BLE001 - report every failure
        failures.append(name)
        print(f"FAIL {name}: {e}")


def hit_ids(res):
    return [h["_id"] for h in res["hits"]["hits"]]


def plugins():
    comps = {row["component"] for row in call("GET", "/_cat/plugins?format=json")}
    want = {"opensearch-job-scheduler", "opensearch-ml", "opensearch-knn", "opensearch-neural-search"}
    assert want <= comps, f"missing plugins {want - comps}"
    return ", ".join(sorted(comps))


def modules():
    nodes = call("GET", "/_nodes/plugins")["nodes"]
    mods = {m["name"] for n in nodes.values() for m in n["modules"]}
    assert {"lang-mustache", "lang-painless"} <= mods, f"modules: {sorted(mods)}"
    return "lang-mustache, lang-painless loaded"


def knn_index():
    call("DELETE", f"/{INDEX}", ok=(200, 404))
    call("PUT", f"/{INDEX}", {
        "settings": {"index": {"knn": True, "number_of_replicas": 0}},
        "mappings": {"properties": {
            "title": {"type": "text"},
            "rank": {"type": "integer"},
            "vec": {"type": "knn_vector", "dimension": 4,
                    "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}},
        }},
    })
    docs = {
        "1": {"title": "red apple fruit", "rank": 3, "vec": [1.0, 0.0, 0.0, 0.0]},
        "2": {"title": "green apple pie", "rank": 2, "vec": [0.9, 0.1, 0.0, 0.0]},
        "3": {"title": "blue ocean water", "rank": 1, "vec": [0.0, 0.0, 1.0, 0.0]},
    }
    for i, d in docs.items():
        call("PUT", f"/{INDEX}/_doc/{i}?refresh=true", d)
    res = call("POST", f"/{INDEX}/_search", {
        "size": 3, "query": {"knn": {"vec": {"vector": [1.0, 0.0, 0.0, 0.0], "k": 3}}}})
    ids = hit_ids(res)
    assert ids[:2] == ["1", "2"], ids
    return f"knn order {ids}"


def mustache():
    call("POST", "/_scripts/smoke-tmpl", {"script": {"lang": "mustache", "source": {
        "query": {"match": {"title": "{{q}}"}}, "size": "{{size}}"}}})
    rendered = call("POST", "/_render/template", {"id": "smoke-tmpl", "params": {"q": "apple", "size": 2}})
    assert rendered["template_output"]["query"]["match"]["title"] == "apple", rendered
    res = call("GET", f"/{INDEX}/_search/template", {"id": "smoke-tmpl", "params": {"q": "apple", "size": 2}})
    ids = sorted(hit_ids(res))
    assert ids == ["1", "2"], ids
    return f"render ok, search/template hits {ids}"


def painless():
    res = call("POST", f"/{INDEX}/_search", {"query": {"script_score": {
        "query": {"match_all": {}},
        "script": {"lang": "painless", "source": "doc['rank'].value * params.f", "params": {"f": 2}}}}})
    scores = [(h["_id"], h["_score"]) for h in res["hits"]["hits"]]
    assert scores[0] == ("1", 6.0), scores
    return f"scores {scores}"


def hybrid_query():
    return {"size": 3, "query": {"hybrid": {"queries": [
        {"match": {"title": "apple"}},
        {"knn": {"vec": {"vector": [0.0, 0.0, 1.0, 0.0], "k": 3}}},
    ]}}}


def normalization():
    call("PUT", "/_search/pipeline/smoke-norm", {"phase_results_processors": [{"normalization-processor": {
        "normalization": {"technique": "min_max"},
        "combination": {"technique": "arithmetic_mean"}}}]})
    res = call("POST", f"/{INDEX}/_search?search_pipeline=smoke-norm", hybrid_query())
    ids = hit_ids(res)
    assert set(ids) == {"1", "2", "3"}, ids
    return f"hybrid hits {[(h['_id'], round(h['_score'], 3)) for h in res['hits']['hits']]}"


def rrf():
    call("PUT", "/_search/pipeline/smoke-rrf", {"phase_results_processors": [{"score-ranker-processor": {
        "combination": {"technique": "rrf"}}}]})
    res = call("POST", f"/{INDEX}/_search?search_pipeline=smoke-rrf", hybrid_query())
    ids = hit_ids(res)
    assert set(ids) == {"1", "2", "3"}, ids
    return f"rrf hits {[(h['_id'], round(h['_score'], 4)) for h in res['hits']['hits']]}"


for name, fn in [("plugins", plugins), ("modules", modules), ("knn (lucene)", knn_index),
                 ("mustache template", mustache), ("painless script_score", painless),
                 ("hybrid + normalization-processor", normalization), ("hybrid + rrf", rrf)]:
    check(name, fn)

call("DELETE", f"/{INDEX}", ok=(200, 404))
if failures:
    print(f"{len(failures)} check(s) failed: {', '.join(failures)}")
    sys.exit(1)
print("all checks passed")
