"""Read timeouts that cover what a request asks the engine to wait; filter_path; strict JSON parsing."""
import json

import pytest

from sidecar.api.errors import BadRequest, ValidationFailed
from sidecar.api.response_format import OutputOptions, filter_path, finite, output_options, render
from sidecar.api.schemas import MAX_JSON_DEPTH, parse_json
from sidecar.engine.wait import IMPLICIT_WAIT_S, parse_time_s, read_timeout_s


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("1m", 60), ("500ms", 0.5), ("2h", 7200), ("100", 0.1),
                                           ("-1", None), ("soon", None)])
def test_parse_time(text, seconds):
    assert parse_time_s(text) == seconds


@pytest.mark.parametrize("method, path, query, expected", [
    ("GET", "/x/_search", "", 30.0),
    ("GET", "/x/_search", "timeout=2s", 32.0),
    ("PUT", "/test1", "wait_for_active_shards=all", 30.0 + IMPLICIT_WAIT_S),
    ("PUT", "/test1", "wait_for_active_shards=all&timeout=90s", 120.0),
    ("GET", "/_cluster/health", "wait_for_status=green&timeout=50s", 80.0),
    ("GET", "/_cluster/health", "wait_for_status=green", 30.0 + IMPLICIT_WAIT_S),
    ("PUT", "/_cluster/settings", "cluster_manager_timeout=2m&timeout=1m", 210.0),
    ("POST", "/_reindex", "", None),
    ("POST", "/_reindex", "wait_for_completion=false", 30.0),
    ("GET", "/_tasks/n:1", "wait_for_completion=true", None),
    ("GET", "/_tasks/n:1", "wait_for_completion=true&timeout=10s", 40.0),
    ("PUT", "/_snapshot/r/s", "wait_for_completion=true", None),
    ("POST", "/x/_doc", "refresh=wait_for", None),
    ("POST", "/x/_forcemerge", "max_num_segments=1", None),
    ("GET", "/x/_search", "timeout=-1", None),
    ("GET", "/_nodes/hot_threads", "interval=1s&snapshots=20", 50.0),
])
def test_read_timeout_covers_the_requested_wait(method, path, query, expected):
    assert read_timeout_s(30.0, method, path, query.encode()) == expected


RESPONSE = {"took": 3, "timed_out": False, "_shards": {"total": 1, "failed": 0},
            "hits": {"total": {"value": 2}, "max_score": 1.5,
                     "hits": [{"_id": "a", "_score": 1.5, "_source": {"t": "x", "n": 1}},
                              {"_id": "b", "_score": 1.0, "_source": {"t": "y", "n": 2}}]},
            "ext": {"rerank": {"status": "ok"}}}


@pytest.mark.parametrize("paths, expected", [
    (("took",), {"took": 3}),
    (("hits.hits._id",), {"hits": {"hits": [{"_id": "a"}, {"_id": "b"}]}}),
    (("hits.hits._source.t", "took"), {"took": 3, "hits": {"hits": [{"_source": {"t": "x"}}, {"_source": {"t": "y"}}]}}),
    (("*.status",), {}),
    (("**.status",), {"ext": {"rerank": {"status": "ok"}}}),
    (("hits.*_score",), {"hits": {"max_score": 1.5}}),
    (("nothing",), {}),
    (("-hits", "-_shards", "-ext"), {"took": 3, "timed_out": False}),
])
def test_filter_path_like_the_engine(paths, expected):
    assert filter_path(RESPONSE, paths) == expected


def test_output_options_reject_formats_not_produced():
    assert output_options({"format": "yaml"}).yaml
    assert output_options({}, "application/yaml").yaml
    assert output_options({"pretty": ""}).pretty
    with pytest.raises(ValidationFailed) as err:
        output_options({"format": "cbor"})
    assert err.value.field == "format"


def test_finite_replaces_non_finite_numbers():
    assert finite({"a": [float("inf"), 1.0, float("nan")]}) == {"a": [None, 1.0, None]}


@pytest.mark.parametrize("pretty", [False, True])
def test_render_is_strict_json_with_or_without_non_finite_numbers(pretty):
    options = OutputOptions(pretty=pretty)
    assert json.loads(render({"a": [1.5, {"b": 2}]}, options=options).get_data(as_text=True)) == {"a": [1.5, {"b": 2}]}
    text = render({"a": [float("-inf"), {"b": float("nan")}, 1.0]}, options=options).get_data(as_text=True)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}")) == {"a": [None, {"b": None}, 1.0]}


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": 1e400}',
                                 b'{"a": ' + b"9" * 5000 + b"}", b'{"a":' * 5000 + b"1" + b"}" * 5000,
                                 b'[' * (MAX_JSON_DEPTH + 1) + b']' * (MAX_JSON_DEPTH + 1)])
def test_parse_json_is_strict_and_names_the_field(raw):
    with pytest.raises(BadRequest) as err:
        parse_json(raw, field="line 2")
    assert err.value.field == "line 2"


def test_parse_json_accepts_ordinary_depth_and_numbers():
    raw = b'[' * MAX_JSON_DEPTH + b'1.5e300' + b']' * MAX_JSON_DEPTH
    assert parse_json(raw) is not None
