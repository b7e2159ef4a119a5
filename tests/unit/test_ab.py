"""A/B experiments: stable and balanced bucketing, config validation, variants applied to spec and options."""
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from scipy.stats import chisquare

from sidecar.experiments.ab import (
    BUCKETS, Experiment, ExperimentConfigError, Variant, apply_to_spec, assign, bucket_of, load_config,
    parse_config, reranker_options,
)
from sidecar.rerank.options import RerankerOptions
from sidecar.search.syntax import RerankDefaults, build_spec

ROOT = Path(__file__).resolve().parents[2]


def experiment(*weights: float, unit: str = "user", salt: str = "s1") -> Experiment:
    names = ["control"] + [f"t{i}" for i in range(1, len(weights))]
    return Experiment(name="exp", salt=salt, unit=unit,
                      variants=tuple(Variant(name=n, weight=w) for n, w in zip(names, weights)))


def test_bucket_is_sha256_based_and_in_range():
    buckets = [bucket_of("salt", "exp", f"user-{i}") for i in range(2000)]
    assert all(0 <= b < BUCKETS for b in buckets)
    assert len(set(buckets)) > 1700  # spread out, not a handful of values
    # Every input part matters.
    ids = [f"u{i}" for i in range(100)]
    base = [bucket_of("salt", "exp", u) for u in ids]
    assert sum(a != b for a, b in zip(base, [bucket_of("salt2", "exp", u) for u in ids])) > 95
    assert sum(a != b for a, b in zip(base, [bucket_of("salt", "exp2", u) for u in ids])) > 95
    # Pinned values: a change of the hash would silently reshuffle every running experiment.
    assert [bucket_of("s1", "exp", u) for u in ("alice", "bob", "carol")] == [8314, 838, 2786]


def test_same_id_gets_same_variant_across_calls_and_processes():
    exp = experiment(50, 50)
    ids = [f"user-{i}" for i in range(200)]
    here = [assign(exp, {"user": u}).variant.name for u in ids]
    assert here == [assign(exp, {"user": u}).variant.name for u in ids]
    # Another interpreter with a different str-hash seed computes the same buckets (sha256, not hash()).
    code = ("import json,sys; from sidecar.experiments.ab import bucket_of; "
            "print(json.dumps([bucket_of('s1','exp',f'user-{i}') for i in range(200)]))")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        assert json.loads(out.stdout) == [bucket_of("s1", "exp", u) for u in ids]
    # Known values, computed independently with hashlib: sha256("s1\x1fexp\x1falice")[:8] mod 10000.
    import hashlib
    digest = hashlib.sha256(b"s1\x1fexp\x1falice").digest()
    assert bucket_of("s1", "exp", "alice") == int.from_bytes(digest[:8], "big") % 10000


@pytest.mark.parametrize("weights", [(50, 50), (30, 70), (20, 30, 50), (1, 1, 1, 1)])
def test_assignment_is_balanced_by_weight_chi_square(weights):
    exp = experiment(*weights)
    counts = Counter(assign(exp, {"user": f"user-{i}"}).variant.name for i in range(10000))
    observed = [counts[v.name] for v in exp.variants]
    expected = [10000 * w / sum(weights) for w in weights]
    result = chisquare(observed, expected)
    assert result.pvalue > 0.001, (observed, expected, result)
    # And the test can fail: a 50/50 split is far from 30/70.
    if weights == (30, 70):
        assert chisquare(observed, [5000, 5000]).pvalue < 1e-6


def test_salt_reshuffles_units():
    a, b = experiment(50, 50, salt="a"), experiment(50, 50, salt="b")
    same = sum(assign(a, {"user": f"u{i}"}).variant.name == assign(b, {"user": f"u{i}"}).variant.name
               for i in range(4000))
    assert 1700 < same < 2300  # independent: about half agree


def test_zero_weight_variant_is_never_chosen_and_boundaries_follow_weights():
    exp = experiment(0, 100)
    assert {assign(exp, {"user": f"u{i}"}).variant.name for i in range(500)} == {"t1"}
    exp = experiment(30, 70)
    assert exp.variant_for_bucket(0).name == "control"
    assert exp.variant_for_bucket(2999).name == "control"
    assert exp.variant_for_bucket(3000).name == "t1"
    assert exp.variant_for_bucket(9999).name == "t1"


def test_no_unit_id_gets_control_and_says_so():
    exp = experiment(10, 90, unit="session")
    got = assign(exp, {"user": "alice", "session": None})
    assert got.variant.name == "control" and got.bucket is None
    assert got.to_ext() == {"name": "exp", "variant": "control", "unit": "session", "bucket": None,
                            "assigned": False, "reason": "no X-Session-Id header: control"}
    with_id = assign(exp, {"session": "s-1"}).to_ext()
    assert with_id["assigned"] is True and with_id["bucket"] == bucket_of("s1", "exp", "s-1")
    assert set(with_id) == {"name", "variant", "unit", "bucket", "assigned"}


def test_control_is_the_variant_named_control_else_the_first():
    exp = Experiment(name="e", salt="", unit="user",
                     variants=(Variant(name="a", weight=1), Variant(name="control", weight=1)))
    assert exp.control.name == "control"
    exp = Experiment(name="e", salt="", unit="user", variants=(Variant(name="a", weight=1), Variant(name="b", weight=1)))
    assert exp.control.name == "a"


def test_variant_overrides_spec_fields_and_keeps_the_rest():
    spec = build_spec({"window_size": 20, "fields": ["text"]}, "q", RerankDefaults(), "body")
    variant = Variant(name="wide", weight=1, window_size=100, fusion="rrf", weights=(0.3, 0.7), instruction="Find X")
    changed = apply_to_spec(spec, variant)
    assert (changed.window_size, changed.fusion, changed.weights, changed.instruction) == (100, "rrf", (0.3, 0.7),
                                                                                           "Find X")
    assert changed.fields == ("text",) and changed.query_text == "q"
    assert apply_to_spec(spec, Variant(name="control", weight=1)) is spec


def test_reranker_options_only_for_model_changes():
    base = RerankerOptions()
    assert reranker_options(base, Variant(name="c", weight=1, window_size=5)) is None
    assert reranker_options(base, Variant(name="c", weight=1, quantization="auto")) is None  # same as base
    onnx = reranker_options(base, Variant(name="q", weight=1, backend="onnx", quantization="int8", model="m"))
    assert (onnx.backend, onnx.quantization, onnx.model) == ("onnx", "int8", "m")
    assert onnx.cache_size == base.cache_size  # everything else inherited
    assert onnx == reranker_options(base, Variant(name="q2", weight=5, backend="onnx", quantization="int8", model="m"))
    assert hash(onnx)  # the Services cache key


def test_load_config_reads_a_file(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text(json.dumps({"experiments": [{
        "name": "window-fusion", "salt": "2025", "unit": "session", "indices": ["products"],
        "variants": [{"name": "control", "weight": 50},
                     {"name": "wide-rrf", "weight": 50, "window_size": 100, "fusion": "rrf", "weights": [0.3, 0.7],
                      "instruction": "Find products", "backend": "onnx", "quantization": "int8"}]}]}))
    config = load_config(path)
    exp = config.experiments[0]
    assert exp.unit == "session" and exp.indices == ("products",)
    assert exp.variants[1].overrides() == {"window_size": 100, "fusion": "rrf", "weights": (0.3, 0.7),
                                           "instruction": "Find products", "quantization": "int8", "backend": "onnx"}
    assert config.for_index("products") is exp and config.for_index("other") is None
    assert config.for_index(None) is None


def _variants(*extra):
    return [{"name": "control", "weight": 50}, *extra]


@pytest.mark.parametrize("data, where", [
    ([], "$"),
    ({"experiments": {}}, "experiments"),
    ({"experimentz": []}, "experimentz"),
    ({"experiments": [{"salt": "x", "variants": _variants()}]}, "experiments[0].name"),
    ({"experiments": [{"name": "e", "unit": "device", "variants": _variants()}]}, "experiments[0].unit"),
    ({"experiments": [{"name": "e", "variants": []}]}, "experiments[0].variants"),
    ({"experiments": [{"name": "e", "variants": _variants({"name": "b", "weight": -1})}]},
     "experiments[0].variants[1].weight"),
    ({"experiments": [{"name": "e", "variants": _variants({"name": "b", "weight": "50"})}]},
     "experiments[0].variants[1].weight"),
    ({"experiments": [{"name": "e", "variants": [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]}]},
     "experiments[0].variants"),
    ({"experiments": [{"name": "e", "variants": _variants({"name": "b", "weight": 1, "window_size": 0})}]},
     "experiments[0].variants[1].window_size"),
    ({"experiments": [{"name": "e", "variants": _variants({"name": "b", "weight": 1, "window_size": 5000})}]},
     "experiments[0].variants[1].window_size"),
    ({"experiments": [{"name": "e", "variants": _variants({"name": "b", "weight": 1, "fusion": "max"})}]},
     "experiments[0].variants[1].fusion"),
    ({"experiments": [{"name": "e", "variants": _variants({"name": "b", "weight": 1, "weights": [1]})}]},
     "experiments[0].variants[1].weights"),
    ({"experiments": [{"name": "e", "variants": _variants({"name": "b", "weight": 1, "instruction": " "})}]},
     "experiments[0].variants[1].instruction"),
    ({"experiments": [{"name": "e", "variants": _variants({"name": "b", "weight": 1, "backend": "gpu"})}]},
     "experiments[0].variants[1].backend"),
    ({"experiments": [{"name": "e", "variants": _variants({"name": "b", "weight": 1, "quantization": "int4"})}]},
     "experiments[0].variants[1].quantization"),
    ({"experiments": [{"name": "e", "variants": _variants({"name": "b", "weight": 1, "windowsize": 5})}]},
     "experiments[0].variants[1].windowsize"),
    ({"experiments": [{"name": "e", "variants": _variants({"name": "control", "weight": 1})}]},
     "experiments[0].variants[1].name"),
    ({"experiments": [{"name": "e", "variants": _variants()}, {"name": "e", "variants": _variants()}]},
     "experiments[1].name"),
    ({"experiments": [{"name": "e", "indices": "products", "variants": _variants()}]}, "experiments[0].indices"),
])
def test_config_errors_name_the_file_and_the_json_path(tmp_path, data, where):
    path = tmp_path / "experiments.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ExperimentConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {where}: "), str(info.value)


def test_config_file_that_is_not_json_or_missing(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"experiments": [')
    with pytest.raises(ExperimentConfigError, match=f"^{path}: not valid JSON"):
        load_config(path)
    with pytest.raises(ExperimentConfigError, match="cannot read"):
        load_config(tmp_path / "missing.json")


def test_window_limit_comes_from_the_settings():
    data = {"experiments": [{"name": "e", "variants": _variants({"name": "b", "weight": 1, "window_size": 80})}]}
    assert parse_config(data, max_window=100).experiments[0].variants[1].window_size == 80
    with pytest.raises(ExperimentConfigError, match=r"window_size: must be an integer in 1\.\.50"):
        parse_config(data, max_window=50)


def test_bad_experiments_file_stops_the_app(tmp_path):
    from sidecar import create_app
    from sidecar.config import Settings, SettingsError

    path = tmp_path / "exp.json"
    path.write_text(json.dumps({"experiments": [{"name": "e", "variants": [{"name": "a"}]}]}))
    with pytest.raises(ExperimentConfigError, match=r"experiments\[0\]\.variants\[0\]\.weight"):
        create_app(Settings.from_env({}, experiments_file=str(path), preload_model=False))
    with pytest.raises(SettingsError, match="RESCORE_EXPERIMENTS_FILE"):
        Settings.from_env({"RESCORE_EXPERIMENTS_FILE": str(tmp_path / "nope.json")})
