"""Drop-in proxy: every request the sidecar does not serve itself goes to OpenSearch unchanged."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from sidecar.api.auth import forward_headers

bp = Blueprint("proxy", __name__)

_METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]


def forward_current_request() -> Response:
    """Send the current request to OpenSearch and relay its response byte for byte.

    The caller's headers go on as received, its own credentials included; a sidecar key is
    dropped and the sidecar's credentials are never added (README "Identity").
    """
    services = current_app.extensions["rescore"]
    upstream = services.gateway.forward(
        request.method,
        request.path,
        request.query_string,
        forward_headers(),
        request.get_data(cache=True),
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
