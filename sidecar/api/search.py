"""ES/OpenSearch-compatible search endpoints that rerank when asked and pass through otherwise."""
from __future__ import annotations

import contextvars
import json
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

from flask import Blueprint, Response, current_app, request

from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

from sidecar.api.errors import BadRequest, UpstreamUnavailable
from sidecar.api.experiment_hook import RequestIdentity, plan_experiment, request_identity
from sidecar.api.proxy import forward_current_request
from sidecar.api.schemas import parse_json
from sidecar.observability.metrics import metrics
from sidecar.search.flow import UpstreamError, search_with_rerank
from sidecar.search.opensearch import OpenSearchUnavailable
from sidecar.search.syntax import plan_search, wants_rerank

bp = Blueprint("search", __name__)
_MARKER = b"rerank"
# Entries of all _msearch requests run here; one request keeps at most MSEARCH_PER_REQUEST of them in
# flight, so a big _msearch never takes every thread from the others (the rerank scheduler then
# gives each request, not each entry, its turn at the model).
_MSEARCH_POOL = ThreadPoolExecutor(max_workers=64, thread_name_prefix="msearch")
MSEARCH_PER_REQUEST = 4


def _services():
    return current_app.extensions["rescore"]


def _json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json; charset=UTF-8")


def _query_params() -> dict[str, str]:
    return {k: v for k, v in request.args.items()}


def _run_plain_or_rerank(index: str | None, body: dict, params: dict[str, str],
                         identity: RequestIdentity | None = None) -> dict:
    """Execute one search body: reranked when it asks for it (A/B variant applied), plain otherwise."""
    services = _services()
    plan = plan_search(body, services.rerank_defaults)
    params = {**params, **plan.params}
    if plan.rerank is None:
        return services.client.search(index=index, body=plan.body, params=params)
    identity = identity or request_identity()
    experiment = plan_experiment(services, plan.rerank, index, identity)
    result = search_with_rerank(services.client, experiment.reranker_factory, index, plan.body, experiment.spec,
                                params, breaker=experiment.breaker, query_id=identity.query_id,
                                experiment=experiment.ext)
    metrics().observe_rerank(result.get("ext", {}).get("rerank"))
    return result


@bp.route("/_search", methods=["GET", "POST"], defaults={"index": None})
@bp.route("/<index>/_search", methods=["GET", "POST"])
def search(index: str | None):
    """Search, reranked when the body asks for it in any supported syntax."""
    raw = request.get_data(cache=True)
    if _MARKER not in raw and b"retriever" not in raw:
        return forward_current_request()
    body = parse_json(raw)
    if not wants_rerank(body) and not (isinstance(body, dict) and "retriever" in body):
        return forward_current_request()
    try:
        return _json_response(_run_plain_or_rerank(index, body, _query_params()))
    except UpstreamError as exc:
        return _json_response(exc.body, exc.status)


@bp.route("/_search/template", methods=["GET", "POST"], defaults={"index": None})
@bp.route("/<index>/_search/template", methods=["GET", "POST"])
def search_template(index: str | None):
    """Search template: rendered by OpenSearch; reranked when the rendered body asks for it."""
    raw = request.get_data(cache=True)
    if not raw:
        return forward_current_request()
    template_request = parse_json(raw)
    try:
        rendered = _render_if_rerank(template_request)
        if rendered is None:
            return forward_current_request()
        return _json_response(_run_plain_or_rerank(index, rendered, _query_params()))
    except UpstreamError as exc:
        return _json_response(exc.body, exc.status)


@bp.route("/_msearch", methods=["GET", "POST"], defaults={"index": None, "templated": False})
@bp.route("/<index>/_msearch", methods=["GET", "POST"], defaults={"templated": False})
@bp.route("/_msearch/template", methods=["GET", "POST"], defaults={"index": None, "templated": True})
@bp.route("/<index>/_msearch/template", methods=["GET", "POST"], defaults={"templated": True})
def msearch(index: str | None, templated: bool):
    """Multi-search (plain or templated); each reranking entry goes through the flow."""
    raw = request.get_data(cache=True)
    if _MARKER not in raw and b"retriever" not in raw and not templated:
        return forward_current_request()
    entries = _parse_ndjson(raw)
    bodies: list[Any] = []
    for number, (_, body) in enumerate(entries):
        bodies.append(_render_if_rerank(body, field=f"line {2 * number + 2}") if templated else body)
    if not any(b is not None and (wants_rerank(b) or (isinstance(b, dict) and "retriever" in b)) for b in bodies):
        return forward_current_request()
    started = time.perf_counter()
    base_params = _query_params()
    services = _services()
    identity = request_identity()  # the entries run outside the request context
    app = current_app._get_current_object()

    def run(i: int) -> dict:
        header, original = entries[i]
        body = bodies[i]
        params = {**base_params, **{k: str(v) for k, v in header.items() if k not in ("index",)}}
        target = header.get("index", index)
        if isinstance(target, list):
            target = ",".join(target)
        with app.app_context():
            try:
                if body is None:  # a template entry that does not rerank: let OpenSearch run it
                    result = services.client.search_template(index=target, body=original, params=params)
                else:
                    result = _run_plain_or_rerank(target, body, params, identity.for_entry(i))
                return {**result, "status": 200}
            except UpstreamError as exc:
                return {**(exc.body if isinstance(exc.body, dict) else {"error": exc.body}), "status": exc.status}
            except (OpenSearchUnavailable, OpenSearchConnectionError) as exc:
                error = UpstreamUnavailable(f"OpenSearch unreachable: {type(exc).__name__}")
                return {"error": error.to_dict(), "status": error.status}
            except Exception as exc:  # one failing entry must not fail the others (msearch semantics)
                status = getattr(exc, "status", None) or getattr(exc, "status_code", 500)
                error = exc.to_dict() if hasattr(exc, "to_dict") else {"type": type(exc).__name__, "reason": str(exc)}
                return {"error": error, "status": status if isinstance(status, int) else 500}

    # Each entry runs in the request's context (request id for logs and X-Opaque-Id, trace).
    responses = _run_bounded(run, len(entries), MSEARCH_PER_REQUEST)
    return _json_response({"took": int((time.perf_counter() - started) * 1000), "responses": responses})


def _run_bounded(run, count: int, limit: int) -> list:
    """Return [run(0), ..., run(count - 1)] computed on the shared pool, at most `limit` at a time."""
    results: list = [None] * count
    pending: dict = {}
    next_index = 0
    while next_index < count or pending:
        while next_index < count and len(pending) < limit:
            future = _MSEARCH_POOL.submit(contextvars.copy_context().run, run, next_index)
            pending[future] = next_index
            next_index += 1
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            results[pending.pop(future)] = future.result()
    return results


def _parse_ndjson(raw: bytes) -> list[tuple[dict, Any]]:
    try:
        lines = [line for line in raw.decode("utf-8").split("\n") if line.strip()]
    except UnicodeDecodeError:
        raise BadRequest("request body is not valid UTF-8", field="body") from None
    if len(lines) % 2:
        raise BadRequest("msearch body must have an even number of lines (header, body pairs)", field="body")
    entries = []
    for i in range(0, len(lines), 2):
        header = parse_json(lines[i].encode(), field=f"line {i + 1}")
        body = parse_json(lines[i + 1].encode(), field=f"line {i + 2}")
        if not isinstance(header, dict):
            raise BadRequest("msearch header must be a JSON object", field=f"line {i + 1}")
        entries.append((header, body))
    return entries


def _render_if_rerank(template_request: Any, field: str = "body") -> dict | None:
    """Render a search-template request when it may carry a rerank block; None = pass through."""
    if not isinstance(template_request, dict):
        raise BadRequest("search template request must be a JSON object", field=field)
    services = _services()
    if not services.template_inspector.may_rerank(template_request):
        return None
    render_body = {k: template_request[k] for k in ("id", "source", "params") if k in template_request}
    try:
        rendered = services.client.transport.perform_request("POST", "/_render/template", body=render_body)
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            raise UpstreamError(status, getattr(exc, "info", str(exc))) from exc
        raise
    output = rendered.get("template_output")
    if not wants_rerank(output):
        return None
    if template_request.get("explain"):
        output["explain"] = True
    return output
