"""A/B experiments: config parsing, deterministic bucketing, and applying a variant (pure).

Config (RESCORE_EXPERIMENTS_FILE, a JSON file)::

    {"experiments": [{"name": "window-fusion", "salt": "2025-06", "unit": "user",
                      "indices": ["products"],
                      "variants": [{"name": "control", "weight": 50},
                                   {"name": "wide-rrf", "weight": 50, "window_size": 100,
                                    "fusion": "rrf", "weights": [0.3, 0.7], "instruction": "...",
                                    "model": "...", "quantization": "...", "backend": "..."}]}]}

A unit (user or session id) lands in bucket sha256(salt, name, id) mod 10000 and the bucket picks
a variant by cumulative weight, so one id sees one variant in every worker, process and restart.
The control is the variant named "control", else the first one; requests without an id get it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.rerank.options import OptionsError, RerankerOptions
from sidecar.search import fusion

BUCKETS = 10000
UNITS = ("user", "session")
FUSIONS = fusion.METHODS
CONTROL = "control"
# Request headers that carry the unit ids (README "Experiments and feedback").
UNIT_HEADERS = {"user": "X-User-Id", "session": "X-Session-Id"}

_EXPERIMENT_KEYS = {"name", "salt", "unit", "indices", "variants"}
_SPEC_KEYS = ("window_size", "fusion", "weights", "instruction")
_RERANKER_KEYS = ("model", "quantization", "backend")
_VARIANT_KEYS = {"name", "weight", *_SPEC_KEYS, *_RERANKER_KEYS}


class ExperimentConfigError(ValueError):
    """The experiments file is invalid; the message names the file and the JSON path."""


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One arm of an experiment: its traffic weight and what it overrides (None = keep)."""

    name: str
    weight: float
    window_size: int | None = None
    fusion: str | None = None
    weights: tuple[float, float] | None = None
    instruction: str | None = None
    model: str | None = None
    quantization: str | None = None
    backend: str | None = None

    def overrides(self) -> dict[str, Any]:
        """Return the settings this variant changes, for logs and docs."""
        return {k: v for k in (*_SPEC_KEYS, *_RERANKER_KEYS) if (v := getattr(self, k)) is not None}


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """Named experiment: salt, bucketing unit, optional index filter, variants."""

    name: str
    salt: str
    unit: str
    variants: tuple[Variant, ...]
    indices: tuple[str, ...] = ()

    @property
    def control(self) -> Variant:
        """Return the variant named "control", else the first one."""
        return next((v for v in self.variants if v.name == CONTROL), self.variants[0])

    def applies_to(self, index: str | None) -> bool:
        """Return whether a search on `index` (None: /v1/rescore) is part of this experiment."""
        return not self.indices or index in self.indices

    def variant_for_bucket(self, bucket: int) -> Variant:
        """Return the variant whose cumulative-weight range holds `bucket` (0 <= bucket < 10000)."""
        total = sum(v.weight for v in self.variants)
        cumulative = 0.0
        for variant in self.variants:
            cumulative += variant.weight
            if variant.weight > 0 and bucket * total < cumulative * BUCKETS:
                return variant
        return next(v for v in reversed(self.variants) if v.weight > 0)  # float rounding at the top end


@dataclass(frozen=True)
class ExperimentConfig:
    """Every configured experiment; a request takes part in the first one that applies to it."""

    experiments: tuple[Experiment, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.experiments)

    def for_index(self, index: str | None) -> Experiment | None:
        """Return the first experiment that applies to a search on `index`, or None."""
        return next((e for e in self.experiments if e.applies_to(index)), None)


@dataclass(frozen=True, kw_only=True)
class Assignment:
    """The variant a request got; bucket is None when the request had no unit id (control)."""

    experiment: str
    variant: Variant
    unit: str
    bucket: int | None

    def to_ext(self) -> dict[str, Any]:
        """Return ext.rerank.experiment: name, variant, unit, bucket (+ why when unassigned)."""
        ext: dict[str, Any] = {"name": self.experiment, "variant": self.variant.name, "unit": self.unit,
                               "bucket": self.bucket, "assigned": self.bucket is not None}
        if self.bucket is None:
            ext["reason"] = f"no {UNIT_HEADERS[self.unit]} header: control"
        return ext


def bucket_of(salt: str, experiment: str, unit_id: str) -> int:
    """Return the unit's bucket in [0, 10000): sha256 of salt, experiment and id (stable everywhere)."""
    digest = hashlib.sha256("\x1f".join((salt, experiment, unit_id)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign(experiment: Experiment, unit_ids: dict[str, str | None]) -> Assignment:
    """Pick the variant for a request with these unit ids ({"user": ..., "session": ...})."""
    unit_id = unit_ids.get(experiment.unit)
    if not unit_id:
        return Assignment(experiment=experiment.name, variant=experiment.control, unit=experiment.unit, bucket=None)
    bucket = bucket_of(experiment.salt, experiment.name, unit_id)
    return Assignment(experiment=experiment.name, variant=experiment.variant_for_bucket(bucket),
                      unit=experiment.unit, bucket=bucket)


def apply_to_spec(spec: Any, variant: Variant) -> Any:
    """Return the rerank spec with the variant's window, fusion, weights and instruction."""
    changes = {k: getattr(variant, k) for k in _SPEC_KEYS if getattr(variant, k) is not None}
    return dataclasses.replace(spec, **changes) if changes else spec


def reranker_options(base: RerankerOptions, variant: Variant) -> RerankerOptions | None:
    """Return the variant's reranker options, or None when it uses the default reranker."""
    changes = {k: getattr(variant, k) for k in _RERANKER_KEYS if getattr(variant, k) is not None}
    if not changes:
        return None
    if "backend" in changes and "quantization" not in changes:
        changes["quantization"] = "auto"  # the default's quantization may not exist on the other backend
    options = dataclasses.replace(base, **changes)
    return None if options == base else options


def load_config(path: str | Path, *, base: RerankerOptions | None = None,
                max_window: int = 1000) -> ExperimentConfig:
    """Read and validate an experiments file; errors name the file and the JSON path."""
    source = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExperimentConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExperimentConfigError(f"{source}: not valid JSON: {exc}") from None
    return parse_config(data, source=source, base=base, max_window=max_window)


def parse_config(data: Any, *, source: str = "<experiments>", base: RerankerOptions | None = None,
                 max_window: int = 1000) -> ExperimentConfig:
    """Validate parsed experiments JSON and return the config."""
    base = base or RerankerOptions()

    def fail(where: str, problem: str) -> ExperimentConfigError:
        return ExperimentConfigError(f"{source}: {where}: {problem}")

    if not isinstance(data, dict):
        raise fail("$", "must be a JSON object with an 'experiments' list")
    _no_unknown(data, {"experiments"}, "", fail)
    raw_experiments = data.get("experiments")
    if not isinstance(raw_experiments, list):
        raise fail("experiments", "must be a list")
    experiments = []
    for i, raw in enumerate(raw_experiments):
        experiments.append(_experiment(raw, f"experiments[{i}]", base, max_window, fail))
    _unique([e.name for e in experiments], "experiments", fail)
    return ExperimentConfig(tuple(experiments))


def _experiment(raw: Any, where: str, base: RerankerOptions, max_window: int, fail) -> Experiment:
    if not isinstance(raw, dict):
        raise fail(where, "must be an object")
    _no_unknown(raw, _EXPERIMENT_KEYS, where, fail)
    name = _text(raw, "name", where, fail, required=True)
    salt = raw.get("salt", "")
    if not isinstance(salt, str):
        raise fail(f"{where}.salt", "must be a string")
    unit = raw.get("unit", "user")
    if unit not in UNITS:
        raise fail(f"{where}.unit", f"must be one of {list(UNITS)}")
    indices = raw.get("indices", [])
    if not isinstance(indices, list) or not all(isinstance(x, str) and x for x in indices):
        raise fail(f"{where}.indices", "must be a list of index names")
    variants_raw = raw.get("variants")
    if not isinstance(variants_raw, list) or not variants_raw:
        raise fail(f"{where}.variants", "must be a non-empty list")
    variants = tuple(_variant(v, f"{where}.variants[{j}]", base, max_window, fail)
                     for j, v in enumerate(variants_raw))
    _unique([v.name for v in variants], f"{where}.variants", fail)
    if sum(v.weight for v in variants) <= 0:
        raise fail(f"{where}.variants", "weights must add up to more than 0")
    return Experiment(name=name, salt=salt, unit=unit, variants=variants, indices=tuple(indices))


def _variant(raw: Any, where: str, base: RerankerOptions, max_window: int, fail) -> Variant:
    if not isinstance(raw, dict):
        raise fail(where, "must be an object")
    _no_unknown(raw, _VARIANT_KEYS, where, fail)
    name = _text(raw, "name", where, fail, required=True)
    weight = raw.get("weight")
    if not _is_number(weight) or weight < 0:
        raise fail(f"{where}.weight", "must be a non-negative number")
    window = raw.get("window_size")
    if window is not None and (not isinstance(window, int) or isinstance(window, bool)
                               or not 1 <= window <= max_window):
        raise fail(f"{where}.window_size", f"must be an integer in 1..{max_window} (RESCORE_MAX_WINDOW_SIZE)")
    fusion = raw.get("fusion")
    if fusion is not None and fusion not in FUSIONS:
        raise fail(f"{where}.fusion", f"must be one of {list(FUSIONS)}")
    weights = raw.get("weights")
    if weights is not None:
        if (not isinstance(weights, list) or len(weights) != 2 or not all(_is_number(w) and w >= 0 for w in weights)
                or sum(weights) <= 0):
            raise fail(f"{where}.weights", "must be two non-negative numbers [first_stage, rerank] with a positive sum")
        weights = (float(weights[0]), float(weights[1]))
    variant = Variant(
        name=name, weight=float(weight), window_size=window, fusion=fusion, weights=weights,
        instruction=_text(raw, "instruction", where, fail), model=_text(raw, "model", where, fail),
        quantization=_text(raw, "quantization", where, fail), backend=_text(raw, "backend", where, fail),
    )
    try:
        reranker_options(base, variant)
    except OptionsError as exc:
        key = next((k for k in _RERANKER_KEYS if str(exc).startswith(k)), "backend")
        raise fail(f"{where}.{key}", str(exc)) from None
    return variant


def _text(raw: dict, key: str, where: str, fail, *, required: bool = False) -> str | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise fail(f"{where}.{key}", "must be a non-empty string")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _no_unknown(raw: dict, known: set[str], where: str, fail) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise fail(f"{prefix}{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(known))})")


def _unique(names: list[str], where: str, fail) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise fail(f"{where}[{i}].name", f"duplicate name {name!r}")
        seen.add(name)
