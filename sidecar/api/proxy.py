"""Drop-in proxy: every request the sidecar does not serve itself goes to OpenSearch unchanged."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, request

bp = Blueprint("proxy", __name__)

_METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]


def forward_current_request(body: bytes | None = None) -> Response:
    """Send the current request (with `body` instead of its own when given) to the engine and relay
    its response byte for byte."""
    services = current_app.extensions["rescore"]
    headers = list(request.headers.items())
    if services.settings.proxy_api_key_set:
        # The bearer key was for the sidecar; OpenSearch gets the sidecar's own credentials.
        headers = [(k, v) for k, v in headers if k.lower() != "authorization"]
    upstream = services.gateway.forward(
        request.method,
        request.path,
        request.query_string,
        headers,
        request.get_data(cache=True) if body is None else body,
    )
    response = Response(upstream.body, status=upstream.status)
    response.headers.clear()
    for name, value in upstream.headers:
        response.headers.add(name, value)
    if request.method == "HEAD":
        response.automatically_set_content_length = False
    return response


@bp.route("/", defaults={"path": ""}, methods=_METHODS)
@bp.route("/<path:path>", methods=_METHODS)
def passthrough(path: str):
    """Forward any other path to OpenSearch."""
    return forward_current_request()
