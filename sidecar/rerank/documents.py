"""Build the text the reranker sees from a hit, and keep `_source` filtering exact.

The reranker needs the configured fields even when the caller's `_source` filter would drop
them; we widen the filter for the first stage and re-apply the caller's filter afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any


def get_path(source: Any, path: str) -> list[str]:
    """Return the string values at a dotted path (through nested objects and lists)."""
    values: list[Any] = [source]
    for part in path.split("."):
        next_values: list[Any] = []
        for value in values:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict) and part in item:
                    next_values.append(item[part])
        values = next_values
    out: list[str] = []
    for value in values:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (str, int, float)) and not isinstance(item, bool) and str(item).strip():
                out.append(str(item))
    return out


def hit_text(hit: dict, fields: tuple[str, ...], template: Any = None) -> str:
    """Join the hit's values of `fields` (from _source, else from `fields`) into one text.

    With a document template (rerank/doc_text.py) the template renders the text instead.
    """
    if template is not None:
        return template.render(hit)
    source = hit.get("_source") or {}
    parts: list[str] = []
    for field in fields:
        values = get_path(source, field)
        if not values and isinstance(hit.get("fields"), dict):
            values = [str(v) for v in hit["fields"].get(field, []) if isinstance(v, (str, int, float))]
        parts.extend(values)
    return "\n".join(parts)


@dataclass(frozen=True)
class SourcePlan:
    """The `_source` value to send to OpenSearch and the caller's original filter to re-apply."""

    send: Any
    original: Any
    changed: bool


def plan_source(original: Any, fields: tuple[str, ...], missing: bool) -> SourcePlan:
    """Widen the caller's `_source` filter (absent when `missing`) so `fields` come back."""
    if missing or original is True:
        return SourcePlan(original, original, False)
    if original is False:
        return SourcePlan({"includes": list(fields)}, original, True)
    includes, excludes = _normalize(original)
    if _returns_all(includes, excludes, fields):
        return SourcePlan(original, original, False)
    widened_includes = (includes + [f for f in fields if not _included(f, includes)]) if includes else []
    widened_excludes = [p for p in excludes if not any(_matches(f, p) for f in fields)]
    send: dict[str, list[str]] = {}
    if widened_includes:
        send["includes"] = widened_includes
    if widened_excludes:
        send["excludes"] = widened_excludes
    return SourcePlan(send or True, original, True)


def apply_source_filter(source: dict, original: Any) -> dict | None:
    """Apply a caller's `_source` value to a full source; None means "no _source at all"."""
    if original is False:
        return None
    includes, excludes = _normalize(original)
    return _filter(source, includes, excludes, "")


def _normalize(spec: Any) -> tuple[list[str], list[str]]:
    if spec is None or spec is True:
        return [], []
    if isinstance(spec, str):
        return [spec], []
    if isinstance(spec, list):
        return [str(p) for p in spec], []
    if isinstance(spec, dict):
        inc = spec.get("includes", spec.get("include", []))
        exc = spec.get("excludes", spec.get("exclude", []))
        inc = [inc] if isinstance(inc, str) else list(inc or [])
        exc = [exc] if isinstance(exc, str) else list(exc or [])
        return inc, exc
    return [], []


def _matches(path: str, pattern: str) -> bool:
    # A pattern selects the path itself, its children, and (for includes) its parents.
    return fnmatchcase(path, pattern) or fnmatchcase(path, pattern + ".*") or path.startswith(pattern + ".")


def _included(path: str, includes: list[str]) -> bool:
    return any(_matches(path, p) for p in includes)


def _returns_all(includes: list[str], excludes: list[str], fields: tuple[str, ...]) -> bool:
    return all((not includes or _included(f, includes)) and not any(_matches(f, p) for p in excludes)
               for f in fields)


def _filter(source: dict, includes: list[str], excludes: list[str], prefix: str) -> dict:
    out: dict = {}
    for key, value in source.items():
        path = f"{prefix}{key}"
        if any(fnmatchcase(path, p) for p in excludes):
            continue
        if not includes or any(fnmatchcase(path, p) for p in includes):
            out[key] = _filter(value, [], excludes, path + ".") if isinstance(value, dict) else value
        elif isinstance(value, dict) and any(p.startswith(path + ".") or fnmatchcase(path + ".", p[: len(path) + 1])
                                             for p in includes):
            inner = _filter(value, includes, excludes, path + ".")
            if inner:
                out[key] = inner
    return out
