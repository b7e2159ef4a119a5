"""Engine-compatible rendering of the responses the sidecar builds itself (reranked searches, msearch).

The engine applies `filter_path`, `format`/Accept (json, yaml), `pretty` to the response it
returns; for a reranked search the response is the sidecar's, so these apply here, to the final
response, and are never sent to the first stage (which must return everything the flow needs).
Responses are strict JSON: a non-finite number is never written (RFC 8259 has none).
"""
from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml
from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider

from sidecar.api.errors import ValidationFailed

log = logging.getLogger(__name__)

# Query parameters that shape the response, not the search (consumed here, not forwarded).
OUTPUT_PARAMS = frozenset({"filter_path", "format", "pretty"})
_TRUE = ("", "true")


@dataclass(frozen=True)
class OutputOptions:
    filter_path: tuple[str, ...] = ()
    yaml: bool = False
    pretty: bool = False


def output_options(args: dict[str, str], accept: str = "") -> OutputOptions:
    """Read filter_path, format (or the Accept header) and pretty the way the engine does."""
    fmt = (args.get("format") or "").lower()
    if fmt and fmt not in ("json", "yaml"):
        raise ValidationFailed(f"format {fmt!r} is not produced for reranked searches; use json or yaml",
                               field="format")
    if not fmt and accept:
        fmt = "yaml" if "yaml" in accept.lower() and "json" not in accept.lower() else "json"
    pretty = args.get("pretty")
    if pretty is not None and pretty.lower() not in ("", "true", "false"):
        raise ValidationFailed("pretty must be true or false", field="pretty")
    paths = tuple(p.strip() for p in (args.get("filter_path") or "").split(",") if p.strip())
    return OutputOptions(filter_path=paths, yaml=fmt == "yaml", pretty=pretty is not None and pretty.lower() in _TRUE)


def current_output_options() -> OutputOptions:
    return output_options({k: v for k, v in request.args.items() if k in OUTPUT_PARAMS},
                          request.headers.get("Accept", ""))


def render(body: Any, status: int = 200, options: OutputOptions | None = None) -> Response:
    """Return body as an engine-shaped HTTP response (filtered, json or yaml, pretty or not)."""
    options = options or OutputOptions()
    if options.filter_path:
        body = filter_path(body, options.filter_path)
    if options.yaml:
        text = yaml.safe_dump(finite(body), sort_keys=False, default_flow_style=False, explicit_start=True,
                              allow_unicode=True)
        return Response(text, status=status, content_type="application/yaml")
    try:
        text = _json_text(body, options.pretty)
    except ValueError:  # a non-finite number somewhere: walk the body only then (most never have one)
        text = _json_text(finite(body), options.pretty)
    return Response(text, status=status, content_type="application/json; charset=UTF-8")


def _json_text(body: Any, pretty: bool) -> str:
    if pretty:
        return json.dumps(body, indent=2, separators=(",", " : "), allow_nan=False) + "\n"
    return json.dumps(body, allow_nan=False)


def finite(value: Any) -> Any:
    """Return value with every non-finite float replaced by null (logged; validation should prevent it)."""
    if isinstance(value, float) and not math.isfinite(value):
        log.warning("non_finite_number value=%s replaced_with=null", value)
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


# --- filter_path (the engine's FilterPath semantics: dotted names, * and ** wildcards, - excludes) ----

def _compile(path: str) -> list[str]:
    return [segment for segment in re.split(r"(?<!\\)\.", path) if segment != ""]


def _segment_matches(pattern: str, key: str) -> bool:
    if pattern == "*" or pattern == "**":
        return True
    if "*" not in pattern:
        return pattern.replace("\\.", ".") == key
    regex = "^" + ".*".join(re.escape(p.replace("\\.", ".")) for p in pattern.split("*")) + "$"
    return re.match(regex, key) is not None


def _matches(patterns: list[list[str]], keys: list[str]) -> tuple[bool, bool]:
    """Return (a pattern matches these keys exactly or as a prefix of its match, one may match deeper)."""
    full = deeper = False
    for pattern in patterns:
        ok, more = _walk(pattern, keys)
        full |= ok
        deeper |= more
    return full, deeper


def _walk(pattern: list[str], keys: list[str]) -> tuple[bool, bool]:
    """Match keys (the path so far) against pattern; (matched completely, could match a descendant)."""
    if not pattern:
        return True, False
    if not keys:
        return False, True
    head = pattern[0]
    if head == "**":
        full, deeper = _walk(pattern[1:], keys)
        if full:
            return True, deeper
        rest_full, rest_deeper = _walk(pattern, keys[1:])
        return rest_full, True or rest_deeper
    if not _segment_matches(head, keys[0]):
        return False, False
    return _walk(pattern[1:], keys[1:])


def filter_path(body: Any, paths: tuple[str, ...]) -> Any:
    """Apply the engine's filter_path: keep only matching fields (includes), drop `-`-prefixed ones."""
    includes = [_compile(p) for p in paths if not p.startswith("-")]
    excludes = [_compile(p[1:]) for p in paths if p.startswith("-")]
    result = _filter(body, [], includes, excludes) if includes else body
    if excludes:
        result = _exclude(result, [], excludes)
    return {} if result is _DROP else result


_DROP = object()


def _filter(value: Any, keys: list[str], includes: list[list[str]], excludes: list[list[str]]) -> Any:
    if keys:
        full, deeper = _matches(includes, keys)
        if full:
            return value
        if not deeper:
            return _DROP
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            kept = _filter(v, keys + [str(k)], includes, excludes)
            if kept is not _DROP:
                out[k] = kept
        return out if out or not keys else _DROP
    if isinstance(value, list):
        items = [_filter_array_item(v, keys, includes, excludes) for v in value]
        items = [i for i in items if i is not _DROP]
        return items if items else _DROP
    return _DROP


def _filter_array_item(value: Any, keys: list[str], includes, excludes) -> Any:
    # Array elements share their parent's path (the engine does not count indices as path segments).
    if isinstance(value, (dict, list)):
        return _filter(value, keys, includes, excludes) if keys else _filter(value, [], includes, excludes)
    return _DROP


def _exclude(value: Any, keys: list[str], excludes: list[list[str]]) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            path = keys + [str(k)]
            if _matches(excludes, path)[0]:
                continue
            kept = _exclude(v, path, excludes)
            out[k] = kept
        return out
    if isinstance(value, list):
        return [_exclude(v, keys, excludes) for v in value]
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider for jsonify(), writing strict JSON (no NaN/Infinity tokens)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        return super().dumps(finite(obj), **kwargs)


def install(app: Flask) -> None:
    """Make every jsonify() response strict JSON."""
    app.json = StrictJSONProvider(app)
