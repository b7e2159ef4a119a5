"""Request validation helpers shared by the sidecar's own JSON endpoints."""
from __future__ import annotations

import json
import zlib
from typing import Any

from flask import current_app, request

from sidecar.api.errors import BadRequest, PayloadTooLarge, ValidationFailed

# Content-Encodings of request bodies the sidecar reads (clients' http_compress sends gzip).
_DECODED = frozenset({"gzip", "x-gzip", "deflate"})


# Deeper JSON is refused (400) before any code walks it recursively; real search bodies stay far
# below (the engines cap bool nesting at 20 levels), and Python's recursion limit is ~1000 frames.
MAX_JSON_DEPTH = 128


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range for a 64-bit float")
    return value


def parse_json(raw: bytes, field: str = "body") -> Any:
    """Decode UTF-8 JSON bytes strictly, or raise a 400 naming `field` and the problem.

    Strict: no NaN/Infinity literals, no number that overflows a double (1e400), no integer over
    Python's 4,300-digit conversion limit, no nesting deeper than MAX_JSON_DEPTH.
    """
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise BadRequest("request body is not valid UTF-8", field=field) from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                         field=field) from None
    except RecursionError:
        raise BadRequest(f"request body is nested deeper than {MAX_JSON_DEPTH} levels", field=field) from None
    except ValueError as exc:  # NaN/Infinity, 1e400, integers over 4,300 digits
        raise BadRequest(f"request body is not valid JSON: {exc}", field=field) from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise BadRequest(f"request body is nested deeper than {MAX_JSON_DEPTH} levels", field=field)
    return value


def json_depth(value: Any) -> int:
    """Return the nesting depth of a parsed JSON value (iteratively; scalars are depth 0)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def decoded_body() -> bytes:
    """Return the request body to read, gunzipped/inflated when the client compressed it (http_compress).

    Other encodings come back as sent: such a request is then passed through and the engine decides.
    The decoded body obeys RESCORE_MAX_BODY_BYTES like an uncompressed one.
    """
    raw = request.get_data(cache=True)
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if not raw or encoding not in _DECODED:
        return raw
    limit = current_app.extensions["rescore"].settings.max_body_bytes
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    try:
        decoded = decoder.decompress(raw, limit + 1)
    except zlib.error:
        raise BadRequest(f"request body is not valid {encoding} data", field="Content-Encoding") from None
    if len(decoded) > limit:
        raise PayloadTooLarge("decompressed request body is larger than RESCORE_MAX_BODY_BYTES")
    if not decoder.eof:
        raise BadRequest(f"request body is truncated {encoding} data", field="Content-Encoding")
    return decoded


def json_body() -> dict:
    """Return the request body as a JSON object, or raise a 400 naming the problem."""
    raw = request.get_data(cache=True)
    if not raw:
        raise BadRequest("request body is empty; expected a JSON object", field="body")
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ValidationFailed("request body must be a JSON object", field="body")
    return body


def required_str(body: dict, field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{field} must be a non-empty string", field=field)
    return value


def optional_bool(body: dict, field: str, default: bool) -> bool:
    value = body.get(field, default)
    if not isinstance(value, bool):
        raise ValidationFailed(f"{field} must be true or false", field=field)
    return value


def optional_positive_int(body: dict, field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValidationFailed(f"{field} must be a positive integer", field=field)
    return value


def text_list(value: Any, field: str, *, max_items: int, text_key: str = "text") -> list[str]:
    """Validate a list of strings or {text: ...} objects and return the texts."""
    if not isinstance(value, list) or not value:
        raise ValidationFailed(f"{field} must be a non-empty list", field=field)
    if len(value) > max_items:
        raise ValidationFailed(f"{field} has {len(value)} items; the maximum is {max_items}", field=field)
    texts = []
    for i, item in enumerate(value):
        if isinstance(item, dict):
            item = item.get(text_key)
        if not isinstance(item, str):
            raise ValidationFailed(f"{field}[{i}] must be a string or an object with a string '{text_key}'",
                                   field=f"{field}[{i}]")
        texts.append(item)
    return texts
