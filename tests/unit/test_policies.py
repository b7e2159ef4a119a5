"""Rerank policies: file validation, index coverage, what stays untouched, query text from tool shapes."""
import json

import pytest

from sidecar.search.policies import (Decision, PolicyError, PolicySet, extract_query_text, load_policies,
                                     lucene_free_text, skip_reason)
from sidecar.search.syntax import RerankDefaults
from tests.conftest import ROOT

DEFAULTS = RerankDefaults()
FIXTURES = ROOT / "tests" / "fixtures" / "dashboards"


def _load(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_policies(path, DEFAULTS), path


def test_yaml_and_json_files_load_the_same_rules(tmp_path):
    rule = {"name": "docs", "indices": ["docs-*"], "endpoints": ["search", "msearch"],
            "headers": {"X-App": "discover*"}, "client": "Kibana/*",
            "query": {"fields": ["title"], "template_params": ["q"]},
            "rerank": {"window_size": 20, "fusion": "rrf", "fields": ["title", "text"], "passages": True}}
    from_json, _ = _load(tmp_path, json.dumps({"policies": [rule]}), "p.json")
    from_yaml, _ = _load(tmp_path, "policies:\n  - " + json.dumps(rule) + "\n")
    assert from_json.policies == from_yaml.policies
    policy = from_yaml.policies[0]
    assert policy.indices == ("docs-*",) and policy.template_params == ("q",) and policy.client == "Kibana/*"


@pytest.mark.parametrize("text, where", [
    ("policies: {}", "must be an object with one key, policies"),
    ("policies:\n  - indices: [a]\n", "policies[0].name"),
    ("policies:\n  - {name: a, indices: []}\n", "policies[0].indices: must not be empty"),
    ("policies:\n  - {name: a, indices: [a], endpoints: [scroll]}\n", "policies[0].endpoints[0]"),
    ("policies:\n  - {name: a, indices: [a], rerank: {window_size: 0}}\n", "policies[0].rerank.window_size"),
    ("policies:\n  - {name: a, indices: [a], rerank: {fusion: best}}\n", "policies[0].rerank.fusion"),
    ("policies:\n  - {name: a, indices: [a], rerank: {windows: 5}}\n", "policies[0].rerank.windows"),
    ("policies:\n  - {name: a, indices: [a], query: {field: x}}\n", "policies[0].query.field"),
    ("policies:\n  - {name: a, indices: [a]}\n  - {name: a, indices: [b]}\n", "policies[1].name: 'a' is used twice"),
    ("policies:\n  - {name: a, indices: [a]\n", "not valid YAML at line"),
])
def test_bad_files_name_the_file_and_the_path_inside(tmp_path, text, where):
    with pytest.raises(PolicyError) as failed:
        _load(tmp_path, text)
    message = str(failed.value)
    assert message.startswith(str(tmp_path / "p.yaml") + ": ") and where in message


def _resolver(table):
    calls = []

    def resolve(expression):
        calls.append(expression)
        return table.get(expression, ())
    return resolve, calls


def test_alias_and_data_stream_targets_are_resolved_only_when_the_name_does_not_match(tmp_path):
    policies, _ = _load(tmp_path, "policies:\n  - {name: logs, indices: ['logs-*', 'web']}\n")
    resolve, calls = _resolver({
        "current": (frozenset({"logs-2026", "current"}),),            # an alias over a logs-* index
        ".ds-web-000001": (frozenset({".ds-web-000001", "web"}),),    # a data stream's backing index
        "mixed": (frozenset({"logs-1", "mixed"}), frozenset({"other", "mixed"})),
    })
    assert policies.find("search", "logs-2026,logs-2027", {}, resolve).name == "logs"
    assert calls == []
    assert policies.find("search", "current", {}, resolve).name == "logs"
    assert policies.find("search", ".ds-web-000001", {}, resolve).name == "logs"
    assert policies.find("search", "mixed", {}, resolve) is None  # one index the rule does not cover
    assert policies.find("search", "missing", {}, resolve) is None


def test_endpoints_headers_and_client_narrow_a_rule(tmp_path):
    policies, _ = _load(tmp_path, "policies:\n  - {name: k, indices: [a], endpoints: [async_search], "
                                  "headers: {X-App: 'disc*'}, client: 'Kibana/*'}\n")
    resolve, _ = _resolver({})
    ok = {"X-App": "discover", "User-Agent": "Kibana/9.1.0"}
    assert policies.find("async_search", "a", ok, resolve).name == "k"
    assert policies.find("search", "a", ok, resolve) is None
    assert policies.find("async_search", "a", {**ok, "X-App": "lens"}, resolve) is None
    assert policies.find("async_search", "a", {**ok, "User-Agent": "curl/8"}, resolve) is None


@pytest.mark.parametrize("body, params, reason", [
    ({"sort": [{"@timestamp": {"order": "desc"}}, {"_doc": "desc"}]}, {}, "sorted"),
    ({"sort": [{"_score": {"order": "asc"}}]}, {}, "sorted"),
    ({}, {"sort": "price:asc"}, "sorted"),
    ({"size": 0, "aggs": {"h": {"date_histogram": {"field": "t"}}}}, {}, "size_0"),
    ({}, {"size": "0"}, "size_0"),
    ({}, {"scroll": "1m"}, "continuation"),
    ({"pit": {"id": "x"}, "sort": ["_score"]}, {}, "continuation"),
    ({"search_after": [1.0], "sort": ["_score"]}, {}, "continuation"),
    ({"sort": [{"_score": {"order": "desc"}}], "size": 500}, {}, None),
    ({"sort": ["_score"]}, {"sort": "_score:desc"}, None),
    ({"sort": []}, {}, None),
    ({"aggs": {"t": {"terms": {"field": "x"}}}}, {}, None),  # hits and aggregations: hits are reranked
])
def test_what_stays_untouched(body, params, reason):
    assert skip_reason(body, params) == reason


def test_query_text_from_every_dashboards_fixture_that_is_reranked():
    for name in ("opensearch_dashboards.json", "kibana_discover.json"):
        fixture = json.loads((FIXTURES / name).read_text())
        for case in fixture["cases"]:
            if case["expect"] == "reranked" and "body" in case and "query" in case["body"]:
                text = extract_query_text(case["body"]["query"])
                assert text and set(text.split()) <= set("why do cats scratch the sofa OR furniture".split()), \
                    (case["name"], text)


@pytest.mark.parametrize("query, fields, text", [
    ({"match": {"title": "solar panels"}}, (), "solar panels"),
    ({"match": {"title": {"query": "solar", "operator": "and"}}}, (), "solar"),
    ({"match_phrase": {"text": "heat pump"}}, (), "heat pump"),
    ({"multi_match": {"query": "wind", "fields": ["title^2", "text"]}}, (), "wind"),
    ({"combined_fields": {"query": "wind power", "fields": ["title", "text"]}}, (), "wind power"),
    ({"simple_query_string": {"query": "+solar -wind \"roof top\""}}, (), "solar roof top"),
    ({"neural": {"emb": {"query_text": "sunny roofs", "k": 5}}}, (), "sunny roofs"),
    # KQL `title: solar and not text: wind`: is.ts (bool.should match), not.ts (must_not), and.ts (filter)
    ({"bool": {"filter": [{"bool": {"should": [{"match": {"title": "solar"}}], "minimum_should_match": 1}},
                          {"bool": {"must_not": {"bool": {"should": [{"match": {"text": "wind"}}]}}}}]}}, (), "solar"),
    ({"bool": {"must": [{"match": {"status": 404}}, {"term": {"host": "web-1"}}, {"range": {"t": {"gte": 1}}}]}},
     (), ""),
    ({"bool": {"should": [{"match": {"title": "solar"}}, {"match": {"brand": "acme"}}]}}, ("title", "text"), "solar"),
    ({"dis_max": {"queries": [{"match": {"title": "solar"}}, {"match": {"text": "solar"}}]}}, (), "solar"),
    ({"function_score": {"query": {"match": {"title": "solar"}}, "functions": []}}, (), "solar"),
    ({"nested": {"path": "c", "query": {"match": {"c.body": "great"}}}}, (), "great"),
    ({"hybrid": {"queries": [{"match": {"text": "solar"}}, {"knn": {"emb": {"vector": [1], "k": 2}}}]}}, (), "solar"),
    ({"query_string": {"query": "title:solar AND status:200", "default_field": "brand"}}, ("title",), "solar"),
])
def test_query_text_shapes(query, fields, text):
    assert extract_query_text(query, fields) == text


@pytest.mark.parametrize("lucene, text", [
    ("cats OR sofa NOT dog", "cats sofa"),
    ("title:solar AND (panels OR \"roof top\") -wind !hydro", "solar panels roof top"),
    ("date:[2020 TO 2021] AND response:{1 TO 5} price:>10 fuzzy~2 boost^3 *", "fuzzy boost"),
    ("status:200 AND ip:10.0.0.1 AND day:2026-11-30", ""),
    ("sol* panel?", "sol panel"),
])
def test_lucene_free_text(lucene, text):
    assert lucene_free_text(lucene) == text


def test_decide_opt_out_template_params_and_no_text(tmp_path):
    policies, _ = _load(tmp_path, "policies:\n  - {name: t, indices: [a], query: {template_params: [q]}}\n")
    resolve, _ = _resolver({})
    body = {"query": {"match": {"text": "solar"}}}
    assert policies.decide("search", "a", {}, body, {}, resolve) == Decision(policies.policies[0], None, "solar")
    assert policies.decide("search", "a", {"X-Rescore-Rerank": "false"}, body, {}, resolve).reason == "opted_out"
    assert policies.decide("search", "a", {}, {**body, "ext": {"rerank": False}}, {}, resolve).reason == "opted_out"
    assert policies.decide("search_template", "a", {}, body, {}, resolve,
                           template_params={"q": "from params"}).query_text == "from params"
    assert policies.decide("search", "a", {}, {"query": {"match_all": {}}}, {}, resolve).reason == "no_text"
    assert policies.decide("search", "b", {}, body, {}, resolve) == Decision(None)
    assert PolicySet().decide("search", "a", {}, body, {}, resolve) == Decision(None)


def test_policy_spec_uses_the_rule_options(tmp_path):
    policies, _ = _load(tmp_path, "policies:\n  - {name: t, indices: [a], rerank: {window_size: 7, fusion: rrf, "
                                  "instruction: Find manuals, timeout_ms: 900}}\n")
    spec = policies.policies[0].spec("solar", {"explain": True}, DEFAULTS)
    assert (spec.window_size, spec.fusion, spec.instruction, spec.timeout_ms, spec.explain, spec.syntax) == \
        (7, "rrf", "Find manuals", 900, True, "policy")


def test_async_keep_alive_and_msearch_header_params():
    from sidecar.api.search import _header_params, _keep_alive_ms

    assert _keep_alive_ms("60000ms") == 60000 and _keep_alive_ms("1m") == 60000 and _keep_alive_ms("2d") == 172800000
    assert _keep_alive_ms(None) == _keep_alive_ms("soon") == 5 * 24 * 3600 * 1000
    # Dashboards' msearch headers carry JSON booleans and numbers; the engine reads "true", not "True".
    assert _header_params({"index": "a", "ignore_unavailable": True, "preference": 17, "routing": ["x", "y"]}) == \
        {"ignore_unavailable": "true", "preference": "17", "routing": "x,y"}


def test_uri_search_text_comes_from_the_q_param(tmp_path):
    policies, _ = _load(tmp_path, "policies:\n  - {name: t, indices: [a]}\n")
    resolve, _ = _resolver({})
    assert policies.decide("search", "a", {}, {}, {"q": "title:solar AND -wind"}, resolve).query_text == "solar"
    assert policies.decide("search", "a", {}, {}, {"q": "solar", "sort": "date:desc"}, resolve).reason == "sorted"


def test_index_resolver_cache_keeps_digests_within_its_byte_budget() -> None:
    """Index expressions come from request paths: the cache holds digests, never more than its bytes."""
    from sidecar.search.policies import IndexResolver

    class Engine:
        calls = 0

        class transport:  # noqa: N801 - the shape opensearch-py's client has
            @staticmethod
            def perform_request(method, path, params=None):
                Engine.calls += 1
                name = path.rsplit("/", 1)[1]
                return {"indices": [{"name": name, "aliases": ["alias-" + name]}]}

    resolver = IndexResolver(Engine(), max_bytes=64 * 1024)
    for i in range(3000):
        assert resolver.names(f"logs-{i:05d}-" + "x" * 200) == (frozenset({f"logs-{i:05d}-" + "x" * 200,
                                                                          f"alias-logs-{i:05d}-" + "x" * 200}),)
    stats = resolver._cache.stats()
    assert stats.bytes <= 64 * 1024 and stats.evictions > 0
    assert all(isinstance(k, bytes) and len(k) == 16 for k in resolver._cache._entries)
    calls = Engine.calls
    resolver.names("logs-02999-" + "x" * 200)  # the most recent one is still cached
    assert Engine.calls == calls
