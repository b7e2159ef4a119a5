"""GET /ui: a page that shows first-stage vs reranked results; POST /v1/compare feeds it.

The page is three static files (no build step, no CDN: the sidecar may run offline) and stays
open like /openapi.json; /v1/compare and /v1/compare/options need a key whenever any key is set
(RESCORE_API_KEYS or RESCORE_PROXY_API_KEYS), so the page sends the key the user typed (kept in
the browser's localStorage). Both read the engine with the caller's own credentials.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, send_file
from opensearchpy.exceptions import TransportError

from sidecar.api.errors import Unavailable, ValidationFailed
from sidecar.api.schemas import json_body, required_str
from sidecar.search.compare import compare as run_compare
from sidecar.search.flow import UpstreamError
from sidecar.search.syntax import build_spec, fit_text
from sidecar.search.templates import MODES

bp = Blueprint("ui", __name__)

STATIC_DIR = Path(__file__).resolve().with_name("ui_static")
MAX_SIZE = 100
DEFAULT_SIZE = 10
_KEYS = frozenset({"index", "template", "query", "size", "window_size", "fields"})
# OpenSearch's index-name rules, minus wildcards, lists and hidden (dot) indices: one named index.
_INDEX_NAME = re.compile(r"[^_\-+.\\/*?\"<>| ,#:A-Z][^\\/*?\"<>| ,#:A-Z]{0,254}")


def _services():
    return current_app.extensions["rescore"]


def _static(name: str, mimetype: str):
    response = send_file(STATIC_DIR / name, mimetype=mimetype, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/ui")
def page():
    """Serve the comparison page."""
    return _static("index.html", "text/html")


@bp.get("/ui/ui.js")
def script():
    """Serve the page's script."""
    return _static("ui.js", "text/javascript")


@bp.get("/ui/ui.css")
def style():
    """Serve the page's style sheet."""
    return _static("ui.css", "text/css")


@bp.get("/v1/compare/options")
def options():
    """List the indices (no hidden ones), templates and defaults the page offers."""
    services = _services()
    try:
        rows = services.caller_client.cat.indices(format="json", h="index,docs.count")
    except TransportError as exc:
        if isinstance(exc.status_code, int):
            raise UpstreamError(exc.status_code, exc.info) from exc
        raise
    indices = sorted(({"name": row["index"], "docs": _int_or_none(row.get("docs.count"))}
                      for row in rows if not row["index"].startswith(".")), key=lambda r: r["name"])
    defaults = services.rerank_defaults
    return jsonify({"indices": indices, "templates": list(MODES),
                    "defaults": {"size": DEFAULT_SIZE, "window_size": defaults.window_size,
                                 "max_size": MAX_SIZE, "max_window_size": defaults.max_window,
                                 "fields": list(defaults.fields), "fusion": defaults.fusion}})


@bp.post("/v1/compare")
def compare():
    """Run one first stage and return it next to its reranked version, with stage timings."""
    services = _services()
    body = json_body()
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        raise ValidationFailed(f"unknown key {unknown[0]!r}", field=unknown[0])
    index = required_str(body, "index")
    if not _INDEX_NAME.fullmatch(index):
        raise ValidationFailed("index must name one index: lowercase, no wildcards, commas or leading "
                               "'_', '-', '+' or '.'", field="index")
    template = body.get("template")
    if not isinstance(template, str) or template not in MODES:
        raise ValidationFailed(f"template must be one of {', '.join(MODES)}", field="template")
    query = required_str(body, "query")
    defaults = services.rerank_defaults
    query, query_truncated = fit_text(query, "query", defaults.max_text_chars, defaults.text_overflow)
    size = _bounded_int(body, "size", DEFAULT_SIZE, MAX_SIZE)
    options: dict[str, Any] = {"window_size": _bounded_int(body, "window_size", defaults.window_size,
                                                           defaults.max_window)}
    if "fields" in body:
        options["fields"] = _fields(body["fields"])
    spec = dataclasses.replace(build_spec(options, query, defaults, "body", syntax="compare"),
                               query_truncated=query_truncated)
    result = run_compare(services.caller_client, lambda: services.reranker, index=index, mode=template, spec=spec,
                         size=size, embed=_embed, breaker=services.breaker,
                         engine=services.engine.get())
    return jsonify(result.as_dict())


def _embed(text: str) -> list[float]:
    from sidecar.embed.onnx_embedder import EmbedderUnavailable

    try:
        embedder = _services().embedder
    except EmbedderUnavailable as exc:
        raise Unavailable(f"the query embedder is not available: {exc}", field="template") from exc
    return embedder.embed_query(text)


def _bounded_int(body: dict, field: str, default: int, maximum: int) -> int:
    value = body.get(field, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise ValidationFailed(f"{field} must be an integer in 1..{maximum}", field=field)
    return value


def _fields(value: Any) -> list[str]:
    fields = [value] if isinstance(value, str) else value
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f.strip() for f in fields):
        raise ValidationFailed("fields must be a field name or a non-empty list of field names", field="fields")
    return fields


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
