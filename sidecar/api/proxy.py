"""Drop-in proxy: every request the sidecar does not serve itself goes to OpenSearch unchanged."""
from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, current_app, request

from sidecar.api.auth import forward_headers

bp = Blueprint("proxy", __name__)

_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_RAW_SAFE = "".join(chr(c) for c in range(33, 127))  # printable ASCII, '%' included: escapes stay as sent
_METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]


def raw_path() -> str:
    """Return the request path exactly as the client sent it (percent-encoding preserved).

    Werkzeug decodes the path (`%3Clogstash-%7Bnow%2FM%7D%3E` -> `<logstash-{now/M}>`, whose `/`
    then splits the index name); the WSGI server's RAW_URI/REQUEST_URI keeps the original.
    """
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    path = raw.partition("?")[0].partition("#")[0]
    if not path.startswith("/"):  # absent, or an absolute-form target: rebuild from the decoded path
        return quote(request.path, safe=_PATH_SAFE)
    # WSGI strings are latin-1 decoded bytes: percent-encode raw non-ASCII bytes and spaces, keep the rest.
    return quote(path, safe=_RAW_SAFE, encoding="latin-1")


def forward_current_request(body: bytes | None = None) -> Response:
    """Send the current request (with `body` instead of its own when given) to the engine and relay
    its response byte for byte.

    The caller's headers go on as received, its own credentials included; a sidecar key is
    dropped and the sidecar's credentials are never added (README "Identity").
    """
    services = current_app.extensions["rescore"]
    upstream = services.gateway.forward(
        request.method,
        raw_path(),
        request.query_string,
        forward_headers(),
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
