"""POST /v1/feedback (click and impression events) and GET /v1/feedback/report (per-variant metrics).

Events are stored by the sidecar's service account in its own index (the caller only names query
and document ids); the report reads them with the caller's credentials, so it shows only what the
engine lets the caller read.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from opensearchpy.exceptions import TransportError

from sidecar.api.errors import UpstreamUnavailable, ValidationFailed
from sidecar.api.schemas import json_body
from sidecar.experiments.feedback import parse_event, parse_events
from sidecar.search.feedback_store import FeedbackStoreError
from sidecar.search.flow import UpstreamError

bp = Blueprint("feedback", __name__)

# GET /v1/feedback/report reads at most this many events; larger logs: scripts/experiment_report.py.
REPORT_MAX_EVENTS = 200000
REPORT_RESAMPLES = 1000


@bp.post("/v1/feedback")
def feedback():
    """Validate one event or {"events": [...]} and store all of them (or none); return {"accepted": n}."""
    store = current_app.extensions["rescore"].feedback
    events = parse_events(json_body())
    try:
        accepted = store.add([event.to_document() for event in events])
    except FeedbackStoreError as exc:
        raise UpstreamUnavailable(str(exc)) from exc
    except TransportError as exc:
        if isinstance(exc.status_code, int):
            raise UpstreamUnavailable(f"OpenSearch answered {exc.status_code} storing feedback: {exc.error}") from exc
        raise
    return jsonify({"accepted": accepted})


@bp.get("/v1/feedback/report")
def feedback_report():
    """Return the per-variant report (CTR@k, MRR, NDCG@k with 95% CIs) of one experiment's stored events."""
    from sidecar.experiments.report import build_report

    store = current_app.extensions["rescore"].feedback
    experiment = request.args.get("experiment") or None
    k = _int_arg("k", 10, 1, 1000)
    control = request.args.get("control") or None
    events = []
    try:
        for i, document in enumerate(store.iter_events(experiment=experiment)):
            if i >= REPORT_MAX_EVENTS:
                raise ValidationFailed(f"more than {REPORT_MAX_EVENTS} events; use scripts/experiment_report.py",
                                       field="experiment")
            events.append(parse_event(document, f"stored event {i}"))
    except TransportError as exc:
        if exc.status_code in (401, 403):  # read as the caller: the engine's refusal, as it gave it
            raise UpstreamError(exc.status_code, exc.info) from exc
        if isinstance(exc.status_code, int):
            raise UpstreamUnavailable(f"OpenSearch answered {exc.status_code} reading feedback: {exc.error}") from exc
        raise
    try:
        report = build_report(events, k=k, experiment=experiment, control=control, resamples=REPORT_RESAMPLES)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="control" if control and "control" in str(exc) else "experiment") \
            from None
    return jsonify(report)


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"{name} must be an integer", field=name) from None
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be in {low}..{high}", field=name)
    return value
