"""ES/OpenSearch-compatible search endpoints that rerank when asked and pass through otherwise."""
from __future__ import annotations

import contextvars
import json
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

from flask import Blueprint, Response, current_app, request

from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import SerializationError

from sidecar.api.errors import BadRequest, UpstreamUnavailable, engine_challenges
from sidecar.api.experiment_hook import RequestIdentity, plan_experiment, request_identity
from sidecar.api.handover import handover
from sidecar.api.proxy import forward_current_request
from sidecar.api.response_format import OUTPUT_PARAMS, current_output_options, render
from sidecar.api.schemas import decoded_body, parse_json
from sidecar.observability.metrics import metrics
from sidecar.engine.client import OpenSearchUnavailable
from sidecar.search.flow import UpstreamError, first_stage, search_with_rerank
from sidecar.search.policies import NO_POLICY, Decision
from sidecar.search.syntax import SearchPlan, opts_out, plan_search, wants_rerank
from sidecar.search.retrievers import has_nested_reranker, replace_nested, window_of
from sidecar.search.templates import fill_query_vector

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
    """The final response, shaped by the request's filter_path / format / pretty like the engine's."""
    return render(body, status, current_output_options())


def _query_params() -> dict[str, str]:
    """The caller's query parameters for the first stage: all but those that shape the final response.

    Checked first (422 naming `format`/`pretty`) so a bad one fails before any search runs.
    """
    current_output_options()
    return {k: v for k, v in request.args.items() if k not in OUTPUT_PARAMS}


def _run_plain_or_rerank(index: str | None, body: dict, params: dict[str, str],
                         identity: RequestIdentity | None = None, decision: Decision = NO_POLICY) -> dict:
    """Execute one search body: reranked when it asks for it or a policy says so, plain otherwise."""
    services = _services()
    retriever = body.get("retriever") if isinstance(body, dict) else None
    if isinstance(retriever, dict) and has_nested_reranker(retriever):
        return _with_nested_rerankers(index, body, params, identity, decision)
    plan = plan_search(body, services.rerank_defaults, services.engine.get())
    params = {**params, **plan.params}
    if plan.rerank is None and decision.rerank:
        plan = SearchPlan(plan.body, decision.policy.spec(decision.query_text, body, services.rerank_defaults),
                          plan.params)
    if plan.rerank is None:
        return first_stage(services.caller_client, index, plan.body, params)
    identity = identity or request_identity()
    experiment = plan_experiment(services, plan.rerank, index, identity)
    try:
        result = search_with_rerank(services.caller_client, experiment.reranker_factory, index, plan.body,
                                    experiment.spec, params, breaker=experiment.breaker,
                                    query_id=identity.query_id, experiment=experiment.ext)
    except Exception:
        if decision.rerank:  # the caller gets the engine's (or our) error; count it for the policy
            metrics().observe_policy(decision.policy.name, "error")
        raise
    ext = result.get("ext", {}).get("rerank")
    if decision.rerank and isinstance(ext, dict):
        ext["policy"] = decision.policy.name
        metrics().observe_policy(decision.policy.name, str(ext.get("status", "unknown")))
    metrics().observe_rerank(ext)
    return result


def _with_nested_rerankers(index: str | None, body: dict, params: dict[str, str],
                           identity: RequestIdentity | None, decision: Decision) -> dict:
    """Serve every text_similarity_reranker below the root first (each one reranked on its own), then
    the tree with their hits in their place; ext.rerank.nested lists what each one did."""
    node_params = {k: v for k, v in params.items() if k not in ("from", "size")}

    def serve(node: dict, path: str) -> dict:
        return _run_plain_or_rerank(index, {"retriever": node, "size": window_of(node), "_source": False},
                                    node_params, identity)

    tree, nested = replace_nested(body["retriever"], serve)
    result = _run_plain_or_rerank(index, {**body, "retriever": tree}, params, identity, decision)
    ext = result.setdefault("ext", {}).setdefault("rerank", {})
    ext.setdefault("status", next((n["status"] for n in nested if n.get("status") != "ok"), "ok"))
    ext["nested"] = nested
    return result



def _not_json() -> bool:
    """Whether the body is YAML, CBOR or Smile (the engine accepts them; the sidecar reranks JSON only).

    Such bodies pass through untouched and the engine answers them as it would directly.
    """
    content_type = (request.content_type or "").lower()
    return any(kind in content_type for kind in ("yaml", "cbor", "smile"))


@bp.app_errorhandler(UpstreamError)
def _upstream_error(exc: UpstreamError) -> Response:
    """An engine error met while serving a request: relayed with the engine's status and body."""
    return _engine_error(exc.status, exc.body)


def _engine_error(status: int, body: Any) -> Response:
    """The engine's error answer to a call made for the caller: its status, body and 401 challenge."""
    body = body if isinstance(body, (dict, list)) else {"error": str(body), "status": status}
    response = _json_response(body, status)
    for challenge in engine_challenges(status, body):
        response.headers.add("WWW-Authenticate", challenge)
    return response


def _decide(endpoint: str, index: str | None, body: Any, params: dict[str, str],
            template_params: dict | None = None) -> Decision:
    """Return the rerank policy's decision for one search body (counted when a policy covers it)."""
    services = _services()
    if not services.policies or wants_rerank(body) or (isinstance(body, dict) and "retriever" in body):
        return NO_POLICY
    decision = services.policies.decide(endpoint, index, request.headers, body, params,
                                        services.index_resolver.names, template_params=template_params)
    # A skip is counted where the request came in: the front, not again by a pool it was handed to.
    if decision.policy is not None and decision.reason is not None and services.settings.serving_role != "pool":
        metrics().observe_policy(decision.policy.name, f"skipped_{decision.reason}")
    return decision


def _needs_sidecar(body: Any, decision: Decision) -> bool:
    """Return whether the sidecar must run this body itself (own rerank, policy rerank, opt-out to strip)."""
    return (decision.rerank or wants_rerank(body) or opts_out(body)
            or (isinstance(body, dict) and "retriever" in body))


def _runs_model(body: Any, decision: Decision) -> bool:
    """Return whether serving this body reranks (a front then hands the request to the rerank pool)."""
    if decision.rerank:
        return True
    if not isinstance(body, dict):
        return False
    retriever = body.get("retriever")
    if isinstance(retriever, dict) and has_nested_reranker(retriever):
        return True
    services = _services()
    try:
        return plan_search(body, services.rerank_defaults, services.engine.get()).rerank is not None
    except Exception:  # a bad rerank block, an engine that cannot be reached: the pool answers it as
        return True    # before (one msearch entry's error stays that entry's)


def _handed_over(body: Any, decision: Decision) -> Response | None:
    """The rerank pool's answer to this request when it reranks and a pool serves reranks, else None."""
    return handover() if _services().front_of_pool and _runs_model(body, decision) else None


def _status_of(result: dict | None, decision: Decision) -> tuple[str | None, str | None]:
    """Return (X-Rescore-Status, X-Rescore-Policy) for one search; (None, None): nothing to say."""
    ext = (result or {}).get("ext", {}).get("rerank") if isinstance(result, dict) else None
    name = decision.policy.name if decision.policy is not None else None
    if isinstance(ext, dict) and "status" in ext:
        return str(ext["status"]), name
    if decision.rerank:  # the search failed before reranking (the entry carries the engine's error)
        return "error", name
    if decision.policy is not None:
        return decision.header(), name
    return None, None


def _tag(response: Response, statuses: list[tuple[str | None, str | None]]) -> Response:
    """Set X-Rescore-Status / X-Rescore-Policy (one comma-separated item per msearch entry)."""
    if any(status is not None for status, _ in statuses):
        response.headers["X-Rescore-Status"] = ", ".join(status or "none" for status, _ in statuses)
    if any(name is not None for _, name in statuses):
        response.headers["X-Rescore-Policy"] = ", ".join(name or "-" for _, name in statuses)
    return response


def _covering_policy(endpoint: str, index: str | None) -> bool:
    """Return whether a policy covers this endpoint and index (a template must then be rendered)."""
    services = _services()
    return bool(services.policies) and services.policies.find(
        endpoint, index, request.headers, services.index_resolver.names) is not None


def _parse_or_none(raw: bytes) -> Any:
    """Parse a body only a policy looks at; None when it is not JSON (the engine answers it)."""
    try:
        return parse_json(raw) if raw else None
    except BadRequest:
        return None


@bp.route("/_search", methods=["GET", "POST"], defaults={"index": None})
@bp.route("/<index>/_search", methods=["GET", "POST"])
def search(index: str | None):
    """Search, reranked when the body asks for it in any supported syntax or a policy covers it."""
    raw = decoded_body()
    marked = _MARKER in raw or b"retriever" in raw
    if (not marked and not _services().policies) or _not_json():
        return forward_current_request()
    body = parse_json(raw) if marked else _parse_or_none(raw)
    params = _query_params()
    if not raw and "q" in params:  # URI search: the query is in the q param
        body = {}
    decision = _decide("search", index, body, params)
    if not _needs_sidecar(body, decision):
        return _tag(forward_current_request(), [_status_of(None, decision)])
    handed = _handed_over(body, decision)
    if handed is not None:
        return handed
    try:
        result = _run_plain_or_rerank(index, body, params, decision=decision)
    except UpstreamError as exc:
        return _engine_error(exc.status, exc.body)
    return _tag(_json_response(result), [_status_of(result, decision)])


@bp.route("/_search/template", methods=["GET", "POST"], defaults={"index": None})
@bp.route("/<index>/_search/template", methods=["GET", "POST"])
def search_template(index: str | None):
    """Search template: rendered by OpenSearch; reranked when the rendered body asks for it or a policy says so."""
    raw = decoded_body()
    if not raw or _not_json():
        return forward_current_request()
    template_request = parse_json(raw)
    filled = _fill_vector(template_request)
    body = None
    if filled is not None:
        template_request, body = filled, json.dumps(filled).encode()
    params = _query_params()
    try:
        rendered = _render_if_rerank(template_request, force=_covering_policy("search_template", index))
        if rendered is None:
            return forward_current_request(body)
        template_params = template_request.get("params") if isinstance(template_request.get("params"), dict) else {}
        decision = _decide("search_template", index, rendered, params, template_params)
        if not _needs_sidecar(rendered, decision):
            return _tag(forward_current_request(body), [_status_of(None, decision)])
        handed = _handed_over(rendered, decision)
        if handed is not None:
            return handed
        result = _run_plain_or_rerank(index, rendered, params, decision=decision)
    except UpstreamError as exc:
        return _engine_error(exc.status, exc.body)
    return _tag(_json_response(result), [_status_of(result, decision)])


def _fill_vector(template_request: Any, field: str = "params") -> dict | None:
    """The template request with its query_vector embedded from query_text, when it needs one."""
    services = _services()
    return fill_query_vector(template_request, services.engine.get().vector_templates(),
                             lambda text: services.embedder.embed_query(text), field)


# Async-search parameters that have no _search counterpart (the sidecar answers at once instead).
_ASYNC_ONLY = ("wait_for_completion_timeout", "keep_on_completion", "keep_alive")
_DEFAULT_KEEP_ALIVE_MS = 5 * 24 * 3600 * 1000  # Elasticsearch's default keep_alive (5d)


@bp.route("/_async_search", methods=["POST"], defaults={"index": None})
@bp.route("/<index>/_async_search", methods=["POST"])
def async_search(index: str | None):
    """Elasticsearch async search: a search to rerank is run to completion and answered at once.

    The answer is a completed async-search response (is_running false, no id, so nothing is
    polled); every other submit, and every GET/DELETE of an id, goes to the engine unchanged.
    """
    raw = decoded_body()
    marked = _MARKER in raw or b"retriever" in raw
    if (not marked and not _services().policies) or _not_json() or not _services().engine.get().has_async_search:
        return forward_current_request()  # an engine without the API answers its own error
    body = parse_json(raw) if marked else _parse_or_none(raw)
    params = {k: v for k, v in _query_params().items() if k not in _ASYNC_ONLY}
    decision = _decide("async_search", index, body, params)
    if not _needs_sidecar(body, decision):
        return _tag(forward_current_request(), [_status_of(None, decision)])
    handed = _handed_over(body, decision)
    if handed is not None:
        return handed
    started = int(time.time() * 1000)
    try:
        result = _run_plain_or_rerank(index, body, params, decision=decision)
    except UpstreamError as exc:
        return _engine_error(exc.status, exc.body)
    shards = result.get("_shards", {}) if isinstance(result.get("_shards"), dict) else {}
    envelope = {
        "is_partial": bool(result.get("timed_out")) or bool(shards.get("failed")),
        "is_running": False,
        "start_time_in_millis": started,
        "expiration_time_in_millis": started + _keep_alive_ms(request.args.get("keep_alive")),
        "completion_time_in_millis": int(time.time() * 1000),
        "response": result,
    }
    return _tag(_json_response(envelope), [_status_of(result, decision)])


def _keep_alive_ms(value: str | None) -> int:
    """Return an Elasticsearch time value (e.g. 1m, 30s, 5d) in milliseconds; the default when absent/odd."""
    units = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}
    if value:
        for unit in sorted(units, key=len, reverse=True):
            number = value[:-len(unit)]
            if value.endswith(unit) and number.isdigit():
                return int(number) * units[unit]
    return _DEFAULT_KEEP_ALIVE_MS


@bp.route("/_msearch", methods=["GET", "POST"], defaults={"index": None, "templated": False})
@bp.route("/<index>/_msearch", methods=["GET", "POST"], defaults={"templated": False})
@bp.route("/_msearch/template", methods=["GET", "POST"], defaults={"index": None, "templated": True})
@bp.route("/<index>/_msearch/template", methods=["GET", "POST"], defaults={"templated": True})
def msearch(index: str | None, templated: bool):
    """Multi-search (plain or templated); each reranking entry goes through the flow."""
    raw = decoded_body()
    if _not_json():
        return forward_current_request()
    services = _services()
    marked = _MARKER in raw or b"retriever" in raw
    if not marked and not templated and not services.policies:
        return forward_current_request()
    try:
        entries = _parse_ndjson(raw)
    except BadRequest:
        if marked or templated:
            raise
        return forward_current_request()  # not ours to judge: the engine answers it
    endpoint = "msearch_template" if templated else "msearch"
    # max_concurrent_searches is the msearch's own; each entry is a plain _search that would refuse it.
    base_params = {k: v for k, v in _query_params().items() if k != "max_concurrent_searches"}
    bodies: list[Any] = []
    decisions: list[Decision] = []
    filled_any = False  # a template entry got its query_vector from the sidecar: it must run it
    failed: dict[int, UpstreamError] = {}  # template entries the engine could not render: per-entry errors
    for number, (header, original) in enumerate(entries):
        target = _entry_index(header, index)
        params = {**base_params, **_header_params(header)}
        if templated:
            filled = _fill_vector(original, field=f"line {2 * number + 2}.params")
            if filled is not None:
                original, filled_any = filled, True
                entries[number] = (header, original)
        body = original
        if templated:
            try:
                body = _render_if_rerank(original, field=f"line {2 * number + 2}",
                                         force=_covering_policy(endpoint, target))
            except UpstreamError as exc:
                body, failed[number] = None, exc
        template_params = original.get("params") if templated and isinstance(original, dict) else None
        decisions.append(_decide(endpoint, target, body, params,
                                 template_params if isinstance(template_params, dict) else None)
                         if body is not None else NO_POLICY)
        bodies.append(body)
    if not filled_any and not any(b is not None and _needs_sidecar(b, d) for b, d in zip(bodies, decisions)):
        return _tag(forward_current_request(), [_status_of(None, d) for d in decisions])
    if services.front_of_pool and any(b is not None and _runs_model(b, d) for b, d in zip(bodies, decisions)):
        handed = handover()  # the whole msearch: its entries share one answer
        if handed is not None:
            return handed
    started = time.perf_counter()
    identity = request_identity()  # the entries run outside the request context
    app = current_app._get_current_object()

    def run(i: int) -> dict:
        header, original = entries[i]
        body = bodies[i]
        if i in failed:
            exc = failed[i]
            return {**(exc.body if isinstance(exc.body, dict) else {"error": exc.body}), "status": exc.status}
        params = {**base_params, **_header_params(header)}
        target = _entry_index(header, index)
        with app.app_context():
            try:
                if body is None:  # a template entry that does not rerank: let OpenSearch run it
                    result = services.caller_client.search_template(index=target, body=original, params=params)
                else:
                    result = _run_plain_or_rerank(target, body, params, identity.for_entry(i), decisions[i])
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
    unauthenticated = next((r for r in responses if r.get("status") == 401), None)
    if unauthenticated is not None:
        # The engine authenticates a request once, before any entry runs: a 401 is the whole answer.
        return _engine_error(401, unauthenticated)
    return _tag(_json_response({"took": int((time.perf_counter() - started) * 1000), "responses": responses}),
                [_status_of(r, d) for r, d in zip(responses, decisions)])


def _header_params(header: dict) -> dict[str, str]:
    """Return an msearch header's keys (but index) as query params, written as the engine reads them."""
    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return ",".join(text(v) for v in value)
        return str(value)

    return {k: text(v) for k, v in header.items() if k != "index"}


def _entry_index(header: dict, index: str | None) -> str | None:
    """Return the index expression of one msearch entry (its header's, else the URL's)."""
    target = header.get("index", index)
    return ",".join(target) if isinstance(target, list) else target


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


def _render_if_rerank(template_request: Any, field: str = "body", force: bool = False) -> dict | None:
    """Render a search-template request when it may carry a rerank block or `force` (a policy covers
    it); None = pass through."""
    if not isinstance(template_request, dict):
        raise BadRequest("search template request must be a JSON object", field=field)
    services = _services()
    if not force and not services.template_inspector.may_rerank(template_request):
        return None
    render_body = {k: template_request[k] for k in ("id", "source", "params") if k in template_request}
    try:
        rendered = services.caller_client.transport.perform_request("POST", "/_render/template", body=render_body)
    except SerializationError:
        # The template renders to something that is not JSON: the engine answers that request itself
        # (its own 400), as it would directly; never reranked.
        return None
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            raise UpstreamError(status, getattr(exc, "info", str(exc))) from exc
        raise
    output = rendered.get("template_output")
    if not force and not wants_rerank(output):
        return None
    if template_request.get("explain"):
        output["explain"] = True
    return output
