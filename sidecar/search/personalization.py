"""Personalization: a bounded, explainable per-user term added to the fused score of the window.

final = fused + weight * scale * personal(hit), with personal(hit) in [0, 1] the clamped sum of
the weights of the user-context boosts whose field has the boost's value in the hit `_source`
(dotted paths, lists, case-insensitive exact match). `scale` puts the term on the fusion's own
scale so `weight` means "this fraction of the largest possible fused score":
- linear, calibrated, relative: fused lies in [0, w_first + w_rerank] (inputs in [0, 1]), scale = their sum;
- rrf: fused lies in (0, (w_first + w_rerank) / (rank_constant + 1)], scale = that bound;
- replace, zscore: fused is unbounded (logits, z-scores), scale = the window's score range.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sidecar.api.errors import ValidationFailed
from sidecar.rerank.documents import get_path

# A preferred brand or category counts this much on its own; both together reach the cap of 1.
PREFERRED_WEIGHT = 0.5
_KEYS = {"preferred_brands", "preferred_categories", "boosts", "weight"}
_BOOST_KEYS = {"field", "value", "weight"}


@dataclass(frozen=True, kw_only=True)
class Boost:
    """One field-value preference: hits whose `field` holds `value` get `weight` (0..1)."""

    field: str
    value: str
    weight: float


@dataclass(frozen=True, kw_only=True)
class UserContext:
    """A request's validated user context: its boosts and the term's weight."""

    boosts: tuple[Boost, ...]
    weight: float

    @property
    def fields(self) -> tuple[str, ...]:
        """Return the distinct `_source` fields the boosts read (the first stage must return them)."""
        return tuple(dict.fromkeys(b.field for b in self.boosts))


@dataclass(frozen=True, kw_only=True)
class Match:
    """How one hit matched: its personal score in [0, 1] and the boosts behind it."""

    personal: float
    matched: tuple[Boost, ...]


def parse_user_context(raw: Any, where: str, *, brand_field: str, category_field: str,
                       default_weight: float) -> UserContext:
    """Validate `ext.rerank.user_context` (or the rescore API's) and return it; 422 names the bad key."""
    if not isinstance(raw, dict):
        raise ValidationFailed("user_context must be a JSON object", field=where)
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ValidationFailed(f"unknown key {unknown[0]!r} (expected one of {', '.join(sorted(_KEYS))})",
                               field=f"{where}.{unknown[0]}")
    weight = raw.get("weight", default_weight)
    _check_unit(weight, f"{where}.weight", "weight")
    boosts: list[Boost] = []
    for key, field in (("preferred_brands", brand_field), ("preferred_categories", category_field)):
        values = raw.get(key, [])
        if not isinstance(values, list):
            raise ValidationFailed(f"{key} must be a list of strings", field=f"{where}.{key}")
        for i, value in enumerate(values):
            boosts.append(Boost(field=field, value=_value(value, f"{where}.{key}[{i}]"), weight=PREFERRED_WEIGHT))
    explicit = raw.get("boosts", [])
    if not isinstance(explicit, list):
        raise ValidationFailed("boosts must be a list of {field, value, weight} objects", field=f"{where}.boosts")
    for i, item in enumerate(explicit):
        at = f"{where}.boosts[{i}]"
        if not isinstance(item, dict):
            raise ValidationFailed("a boost must be a JSON object {field, value, weight}", field=at)
        unknown = sorted(set(item) - _BOOST_KEYS)
        if unknown:
            raise ValidationFailed(f"unknown key {unknown[0]!r}", field=f"{at}.{unknown[0]}")
        field = item.get("field")
        if not isinstance(field, str) or not field.strip():
            raise ValidationFailed("field must be a non-empty string (a dotted _source path)", field=f"{at}.field")
        if "value" not in item:
            raise ValidationFailed("value is required", field=f"{at}.value")
        boost_weight = item.get("weight", 1.0)
        _check_unit(boost_weight, f"{at}.weight", "weight")
        boosts.append(Boost(field=field.strip(), value=_value(item["value"], f"{at}.value"),
                            weight=float(boost_weight)))
    if len(boosts) > 1000:
        raise ValidationFailed(f"user_context has {len(boosts)} preferences; the maximum is 1000", field=where)
    return UserContext(boosts=tuple(boosts), weight=float(weight))


def match(source: Any, context: UserContext) -> Match:
    """Return the hit's personal score: the sum of its matched boosts' weights, capped at 1."""
    wanted: dict[str, set[str]] = {}
    matched: list[Boost] = []
    for boost in context.boosts:
        if boost.field not in wanted:
            wanted[boost.field] = {_key(v) for v in get_path(source, boost.field)}
        if boost.value in wanted[boost.field] and boost.weight > 0:
            matched.append(boost)
    return Match(personal=min(1.0, sum(b.weight for b in matched)), matched=tuple(matched))


@dataclass(frozen=True, kw_only=True)
class Applied:
    """The window's fused scores with the personal term added, and what to explain and report."""

    fused: list[float]
    details: list[dict]
    boosted: int
    scale: float


def apply(sources: Sequence[Any], fused: Sequence[float], context: UserContext, *, method: str,
          weights: tuple[float, float], rank_constant: int) -> Applied:
    """Add weight * scale * personal(hit) to each fused score (one `_source` per window position)."""
    term_scale = scale(fused, method=method, weights=weights, rank_constant=rank_constant)
    out, details, boosted = [], [], 0
    for source, score in zip(sources, fused, strict=True):
        found = match(source, context)
        term = context.weight * term_scale * found.personal
        boosted += term > 0
        out.append(score + term)
        details.append(explain(found, term, context, term_scale))
    return Applied(fused=out, details=details, boosted=boosted, scale=term_scale)


def scale(fused: Sequence[float], *, method: str, weights: tuple[float, float], rank_constant: int) -> float:
    """Return the size of the fused-score scale the personal term is measured against."""
    if method in ("linear", "calibrated", "relative"):
        return weights[0] + weights[1]
    if method == "rrf":
        return (weights[0] + weights[1]) / (rank_constant + 1)
    if method in ("replace", "zscore"):
        spread = max(fused) - min(fused) if fused else 0.0
        return spread if spread > 1e-12 else 1.0
    raise ValueError(f"unknown fusion method {method!r}")


def explain(found: Match, term: float, context: UserContext, term_scale: float) -> dict:
    """Return the `_explanation` detail of the personal term for one hit."""
    return {
        "value": term,
        "description": f"personalization weight={context.weight} scale={term_scale:.6g} "
                       f"personal={found.personal:.6g}",
        "details": [{"value": b.weight, "description": f"matched {b.field}={b.value}", "details": []}
                    for b in found.matched],
    }


def _value(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
        raise ValidationFailed("must be a non-empty string or a number", field=field)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationFailed("must be a finite number", field=field)
    return _key(str(value))


def _key(value: str) -> str:
    return value.strip().casefold()


def _check_unit(value: Any, field: str, name: str) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not 0 <= value <= 1):
        raise ValidationFailed(f"{name} must be a number in [0, 1]", field=field)
