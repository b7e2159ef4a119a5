"""Whole-body reading with the size limit enforced for every framing, chunked included.

Werkzeug limits a body without Content-Length (chunked) by returning its first
RESCORE_MAX_BODY_BYTES bytes and silently dropping the rest; a cut `_bulk` would then be
forwarded and half indexed. This hook reads such bodies itself before any handler runs and
answers 413 when they are over the limit, so nothing is forwarded.
"""
from __future__ import annotations

import io

from flask import Flask, current_app, request

from sidecar.api.errors import PayloadTooLarge

_CHUNK = 64 * 1024


def _buffer_unsized_body() -> None:
    environ = request.environ
    if environ.get("CONTENT_LENGTH") or not environ.get("wsgi.input_terminated"):
        return  # sized bodies: werkzeug checks Content-Length against the limit itself
    if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    stream = environ["wsgi.input"]
    data = bytearray()
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        data.extend(chunk)
        if limit is not None and len(data) > limit:
            raise PayloadTooLarge(f"request body is larger than RESCORE_MAX_BODY_BYTES ({limit} bytes)",
                                  field="body")
    environ["wsgi.input"] = io.BytesIO(bytes(data))
    environ["CONTENT_LENGTH"] = str(len(data))


def install(app: Flask) -> None:
    """Buffer (and size-check) chunked request bodies before any other hook reads them."""
    app.before_request(_buffer_unsized_body)
