"""Click feedback events: strict validation of what POST /v1/feedback and the report read (pure).

One event is one shown result: an impression (click false) or a click (click true, optionally
with dwell_ms). query_id joins events to the search response that showed the results
(ext.rerank.query_id); variant and experiment come from that response's ext.rerank.experiment.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sidecar.api.errors import ValidationFailed

MAX_EVENTS = 10000
MAX_ID_CHARS = 512
MAX_QUERY_CHARS = 10000
# Bounds that keep every accepted value storable in the mapping (integer position, double dwell).
MAX_POSITION = 100000
MAX_DWELL_MS = 1e12
_REQUIRED = ("query_id", "doc_id", "position")
_OPTIONAL_IDS = ("user_id", "session_id", "variant", "experiment")
FIELDS = (*_REQUIRED, "click", "dwell_ms", *_OPTIONAL_IDS, "query_text", "timestamp")


@dataclass(frozen=True, kw_only=True)
class FeedbackEvent:
    """One impression or click on the result at `position` (1-based) of query `query_id`."""

    query_id: str
    doc_id: str
    position: int
    click: bool = False
    timestamp: str
    dwell_ms: float | None = None
    user_id: str | None = None
    session_id: str | None = None
    variant: str | None = None
    experiment: str | None = None
    query_text: str | None = None

    def to_document(self) -> dict[str, Any]:
        """Return the stored form: every set field, unset optional fields left out."""
        return {name: value for name in FIELDS if (value := getattr(self, name)) is not None}


def parse_events(body: Any, *, now: datetime | None = None) -> list[FeedbackEvent]:
    """Validate one event or {"events": [...]}; a 422 names the first bad field, e.g. events[3].position."""
    if not isinstance(body, dict):
        raise ValidationFailed("body must be an event object or {\"events\": [...]}", field="body")
    if "events" not in body:
        return [parse_event(body, "", now=now)]
    unknown = sorted(set(body) - {"events"})
    if unknown:
        raise ValidationFailed(f"unknown key {unknown[0]!r} next to events", field=unknown[0])
    events = body["events"]
    if not isinstance(events, list) or not events:
        raise ValidationFailed("events must be a non-empty list", field="events")
    if len(events) > MAX_EVENTS:
        raise ValidationFailed(f"events has {len(events)} items; the maximum is {MAX_EVENTS}", field="events")
    return [parse_event(raw, f"events[{i}]", now=now) for i, raw in enumerate(events)]


def parse_event(raw: Any, where: str = "", *, now: datetime | None = None) -> FeedbackEvent:
    """Validate one event object; `where` prefixes the field names in errors."""
    def name(key: str) -> str:
        return f"{where}.{key}" if where else key

    if not isinstance(raw, dict):
        raise ValidationFailed("an event must be a JSON object", field=where or "body")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise ValidationFailed(f"unknown key {unknown[0]!r} (allowed: {', '.join(FIELDS)})", field=name(unknown[0]))
    for key in _REQUIRED:
        if key not in raw or raw[key] is None:
            raise ValidationFailed(f"{key} is required", field=name(key))
    query_id = _id(raw, "query_id", name)
    doc_id = _id(raw, "doc_id", name)
    position = raw["position"]
    if not isinstance(position, int) or isinstance(position, bool) or not 1 <= position <= MAX_POSITION:
        raise ValidationFailed(f"position must be an integer in 1..{MAX_POSITION} (1 = top result)",
                               field=name("position"))
    click = raw.get("click", False)
    if not isinstance(click, bool):
        raise ValidationFailed("click must be true or false", field=name("click"))
    dwell = raw.get("dwell_ms")
    if dwell is not None and (not isinstance(dwell, (int, float)) or isinstance(dwell, bool)
                              or not 0 <= dwell <= MAX_DWELL_MS):
        raise ValidationFailed(f"dwell_ms must be a number in 0..{MAX_DWELL_MS:.0e}", field=name("dwell_ms"))
    optional = {key: _id(raw, key, name) if raw.get(key) is not None else None for key in _OPTIONAL_IDS}
    query_text = raw.get("query_text")
    if query_text is not None and (not isinstance(query_text, str) or len(query_text) > MAX_QUERY_CHARS):
        raise ValidationFailed(f"query_text must be a string of at most {MAX_QUERY_CHARS} characters",
                               field=name("query_text"))
    return FeedbackEvent(
        query_id=query_id, doc_id=doc_id, position=position, click=click,
        dwell_ms=None if dwell is None else float(dwell), query_text=query_text,
        timestamp=_timestamp(raw.get("timestamp"), name("timestamp"), now), **optional,
    )


def _id(raw: dict, key: str, name) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        raise ValidationFailed(f"{key} must be a non-empty string of at most {MAX_ID_CHARS} characters",
                               field=name(key))
    return value


def _timestamp(value: Any, field: str, now: datetime | None) -> str:
    """Return an ISO 8601 UTC timestamp from an ISO string, epoch milliseconds, or now."""
    if value is None:
        moment = now or datetime.now(timezone.utc)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value / 1000, timezone.utc)
        except (OverflowError, OSError, ValueError):  # also NaN and infinities
            raise ValidationFailed("timestamp is out of range", field=field) from None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        except ValueError:
            raise ValidationFailed("timestamp must be ISO 8601 (e.g. 2025-01-31T12:00:00Z) or epoch milliseconds",
                                   field=field) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)  # naive times are taken as UTC
    else:
        raise ValidationFailed("timestamp must be ISO 8601 or epoch milliseconds", field=field)
    try:
        moment = moment.astimezone(timezone.utc)
    except OverflowError:
        moment = datetime.min.replace(tzinfo=timezone.utc)  # rejected just below
    if not 1970 <= moment.year <= 9998:
        raise ValidationFailed("timestamp must be between 1970 and 9998", field=field)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
