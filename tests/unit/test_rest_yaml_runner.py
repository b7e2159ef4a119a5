"""The REST API YAML test runner's DSL pieces (no engine needed)."""
import pytest

from tests.rest_yaml.runner import (_MISSING, ApiSpec, Context, Stash, StepFailed, assert_step, build_request,
                                    evaluate, response_warnings, subset, version_in_ranges, YamlTest)


@pytest.mark.parametrize("ranges, skipped", [(" - 7.3.99", False), ("7.4.0 - ", True), (" - 2.99.99", False),
                                             ("3.0.0 - ", True), ("all", True), ("2.0.0 - 3.5.99", False),
                                             (" - 3.6.0", True), ("1.0.0 - 1.9.9, 3.6.0 - 3.6.9", True)])
def test_skip_ranges_order_legacy_elasticsearch_versions_first(ranges, skipped):
    assert version_in_ranges("3.6.0", ranges) is skipped


def test_evaluate_paths_with_escaped_dots_lists_and_stash():
    stash = Stash()
    stash.values["node"] = "n1"
    response = {"nodes": {"n1": {"settings": {"index.number_of_shards": "1"}}}, "hits": [{"_id": "a"}]}
    assert evaluate(response, "nodes.$node.settings.index\\.number_of_shards", stash) == "1"
    assert evaluate(response, "hits.0._id", stash) == "a"
    assert evaluate(response, "hits.1._id", stash) is _MISSING
    assert evaluate(response, "nodes._arbitrary_key_", stash) == "n1"
    assert stash.replace({"id": "$node", "text": "x-${node}-y"}) == {"id": "n1", "text": "x-n1-y"}


SPEC = ApiSpec("indices.put_alias", [
    {"path": "/{index}/_alias/{name}", "methods": ["PUT", "POST"], "parts": {"index": {}, "name": {}}},
    {"path": "/{index}/_alias", "methods": ["PUT"], "parts": {"index": {}}},
    {"path": "/_alias", "methods": ["PUT"], "parts": {}},
], frozenset({"timeout"}))


def test_build_request_picks_the_path_with_most_parts_and_encodes_them():
    method, path, params, body = build_request(SPEC, {"index": "<logs-{now/M}>", "name": ["a", "b"], "timeout": "1s"})
    assert (method, path, params, body) == ("PUT", "/%3Clogs-%7Bnow%2FM%7D%3E/_alias/a,b", {"timeout": "1s"}, None)
    assert build_request(SPEC, {"index": "i", "body": {"x": 1}})[:2] == ("PUT", "/i/_alias")
    assert build_request(SPEC, {})[:2] == ("PUT", "/_alias")


def test_warning_headers_are_parsed_like_the_java_runner():
    header = '299 OpenSearch-3.6.0-abc "[index] is \\"deprecated\\"", 299 OpenSearch-3.6.0-abc "second"'
    assert response_warnings({"Warning": header}) == ['[index] is "deprecated"', "second"]


def test_assertions():
    ctx = Context("http://unused", {}, "3.6.0", None)
    ctx.response = {"count": 3, "text": "green open idx", "list": [{"name": "a", "v": 1}], "f": 0.5}
    assert_step(ctx, "match", {"count": 3})
    assert_step(ctx, "match", {"text": "/^green \\s+ open/"})
    assert_step(ctx, "length", {"list": 1})
    assert_step(ctx, "gte", {"count": 3})
    assert_step(ctx, "contains", {"list": {"name": "a"}})
    assert_step(ctx, "close_to", {"f": {"value": 0.49, "error": 0.02}})
    assert_step(ctx, "is_false", "missing")
    with pytest.raises(StepFailed):
        assert_step(ctx, "match", {"count": 4})
    with pytest.raises(StepFailed):
        assert_step(ctx, "is_true", "missing")


def test_subset_spreads_over_families_deterministically():
    tests = [YamlTest(f"{family}/10_basic.yml", f"t{i}", [], [], []) for family in "abc" for i in range(3)]
    picked = subset(tests, 4)
    assert [t.test_id for t in picked] == ["a/10_basic.yml::t0", "b/10_basic.yml::t0", "c/10_basic.yml::t0",
                                          "a/10_basic.yml::t1"]
