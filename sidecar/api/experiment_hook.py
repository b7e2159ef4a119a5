"""Per-request experiment hook: unit ids from headers, the variant applied to a rerank spec."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import request

from sidecar.api.errors import ValidationFailed
from sidecar.experiments.ab import UNIT_HEADERS, apply_to_spec, assign, reranker_options
from sidecar.observability.logs import choose_request_id, current_request_id

_ID_OK = re.compile(r"^[\x21-\x7e]{1,256}$")


@dataclass(frozen=True)
class RequestIdentity:
    """Who asks (unit ids for bucketing) and the id that joins the response to its feedback."""

    unit_ids: dict[str, str | None]
    query_id: str

    def for_entry(self, number: int) -> "RequestIdentity":
        """Return the identity of entry `number` of an msearch: its own query id."""
        return RequestIdentity(self.unit_ids, f"{self.query_id}-{number}")


@dataclass(frozen=True)
class ExperimentPlan:
    """The spec after the variant, its reranker and circuit breaker, and ext.rerank.experiment (None: none)."""

    spec: Any
    reranker_factory: Callable[[], Any]
    breaker: Any
    ext: dict[str, Any] | None


def request_identity() -> RequestIdentity:
    """Read X-User-Id / X-Session-Id and the query id (X-Request-Id / X-Opaque-Id, else a new uuid4 hex)."""
    unit_ids: dict[str, str | None] = {}
    for unit, header in UNIT_HEADERS.items():
        value = request.headers.get(header)
        if value is not None and value != "" and not _ID_OK.match(value):
            raise ValidationFailed(f"{header} must be 1-256 printable ASCII characters", field=header)
        unit_ids[unit] = value or None
    # The request id (bound by the observability hook for every request) so logs and feedback join.
    return RequestIdentity(unit_ids, current_request_id() or choose_request_id(
        request.headers.get("X-Request-Id"), request.headers.get("X-Opaque-Id")))


def plan_experiment(services: Any, spec: Any, index: str | None, identity: RequestIdentity) -> ExperimentPlan:
    """Apply the request's experiment variant (if an experiment covers `index`) to spec and reranker."""
    experiment = services.experiments.for_index(index) if services.experiments else None
    if experiment is None:
        return ExperimentPlan(spec, lambda: services.reranker, services.breaker, None)
    assignment = assign(experiment, identity.unit_ids)
    options = reranker_options(services.settings.reranker, assignment.variant)
    return ExperimentPlan(apply_to_spec(spec, assignment.variant), lambda: services.reranker_for(options),
                          services.breaker_for(options), assignment.to_ext())
