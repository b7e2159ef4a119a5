"""Elasticsearch clients in front of OpenSearch: product header, compatible-with media types, GET / version.

elasticsearch-py (7.14+) and the other Elastic clients refuse a server that does not look like
Elasticsearch: 8.x/9.x raise UnsupportedProductError on any 2xx response without
`X-Elastic-Product: Elasticsearch`; 7.17 reads `GET /` once and wants a version >= 7.14 plus that
header. 8.x/9.x also send `application/vnd.elasticsearch+json; compatible-with=N` (and `+x-ndjson`)
as Content-Type and Accept, which OpenSearch answers with 406. With RESCORE_ELASTIC_CLIENT_COMPAT on
(the default), in front of OpenSearch the sidecar:

- maps those media types to `application/json` / `application/x-ndjson` before anything reads them;
- adds `X-Elastic-Product: Elasticsearch` to every response it gives (its own, proxied, errors, HEAD);
- answers `GET /` from a client that identifies itself with `x-elastic-client-meta` with the
  client's own major.minor as `version.number`; OpenSearch's number stays in
  `version.distribution_version` (and `version.distribution` still says "opensearch").

In front of Elasticsearch the media types and `GET /` pass unchanged and the header is added to the
sidecar's own responses whatever the setting (Elasticsearch's own responses already carry it).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, current_app, request

from sidecar.engine.client import OpenSearchUnavailable

PRODUCT_HEADER = "X-Elastic-Product"
PRODUCT = "Elasticsearch"
CLIENT_META_HEADER = "x-elastic-client-meta"

_COMPAT_MEDIA_TYPE = re.compile(
    r"application/vnd\.elasticsearch\+([a-z0-9.+-]+)(\s*;\s*compatible-with\s*=\s*[0-9]+)?", re.IGNORECASE)
# "es=8.19.3,py=3.11.7,t=8.19.0,ur=2.8.0": the client's own version is the `es` entry.
_CLIENT_VERSION = re.compile(r"(?:^|,)\s*es=([0-9]+)\.([0-9]+)")


def engine_is_elasticsearch(app: Flask) -> bool:
    """Return whether the engine behind the sidecar is Elasticsearch (False: OpenSearch).

    The one engine-dependent decision of this module; the engine layer answers it (an unreachable
    engine counts as OpenSearch here: the request then fails on its own with a 502).
    """
    try:
        return app.extensions["rescore"].engine.get().speaks_elastic_clients
    except OpenSearchUnavailable:
        return False


def plain_media_type(value: str) -> str:
    """Map every `application/vnd.elasticsearch+X[; compatible-with=N]` in a header value to `application/X`."""
    return _COMPAT_MEDIA_TYPE.sub(lambda m: f"application/{m.group(1).lower()}", value)


def client_version(meta: str) -> tuple[int, int] | None:
    """Return (major, minor) of the Elastic client named in an x-elastic-client-meta value, or None."""
    match = _CLIENT_VERSION.search(meta)
    return (int(match.group(1)), int(match.group(2))) if match else None


def main_response_for_client(body: dict[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    """Return the `GET /` body with a version the client accepts; the engine's number moves to distribution_version."""
    info = body.get("version")
    if not isinstance(info, dict) or not isinstance(info.get("number"), str):
        return body
    number = f"{version[0]}.{version[1]}.0"
    return {**body, "version": {**info, "number": number, "distribution_version": info["number"]}}


class _CompatMiddleware:
    """WSGI layer around the Flask app: request media types in, product header out."""

    def __init__(self, wsgi_app: Callable, app: Flask) -> None:
        self._wsgi_app = wsgi_app
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        compat = self._app.extensions["rescore"].settings.elastic_client_compat
        elasticsearch = engine_is_elasticsearch(self._app)
        if compat and not elasticsearch:
            for key in ("CONTENT_TYPE", "HTTP_ACCEPT"):
                if key in environ and "vnd.elasticsearch" in environ[key].lower():
                    environ[key] = plain_media_type(environ[key])
            if _is_main_request_from_elastic_client(environ):
                # GET / is rewritten below: ask the engine for an uncompressed body.
                environ.pop("HTTP_ACCEPT_ENCODING", None)
        if not (compat or elasticsearch):
            return self._wsgi_app(environ, start_response)

        def start_with_product(status: str, headers: list[tuple[str, str]], exc_info=None):
            if not any(name.lower() == "x-elastic-product" for name, _ in headers):
                headers = [*headers, (PRODUCT_HEADER, PRODUCT)]
            return start_response(status, headers, exc_info)

        return self._wsgi_app(environ, start_with_product)


def _is_main_request_from_elastic_client(environ: dict[str, Any]) -> bool:
    return (environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO") in ("", "/")
            and "HTTP_X_ELASTIC_CLIENT_META" in environ)


def install(app: Flask) -> None:
    """Wrap the app's WSGI callable and rewrite `GET /` for Elastic clients (RESCORE_ELASTIC_CLIENT_COMPAT)."""
    app.wsgi_app = _CompatMiddleware(app.wsgi_app, app)  # type: ignore[method-assign]

    @app.after_request
    def _main_response_version(response: Response) -> Response:
        if not (request.method == "GET" and request.path == "/" and response.status_code == 200):
            return response
        if not current_app.extensions["rescore"].settings.elastic_client_compat:
            return response
        if engine_is_elasticsearch(current_app) or response.headers.get("Content-Encoding"):
            return response
        version = client_version(request.headers.get(CLIENT_META_HEADER, ""))
        if version is None or not (response.mimetype or "").endswith("json"):
            return response
        try:
            body = json.loads(response.get_data())
        except ValueError:
            return response
        if isinstance(body, dict):
            response.set_data(json.dumps(main_response_for_client(body, version)).encode())
        return response
