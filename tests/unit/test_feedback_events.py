"""Feedback events: strict validation naming the field, timestamps normalized to UTC ISO 8601."""
from datetime import datetime, timezone

import pytest

from sidecar.api.errors import ValidationFailed
from sidecar.experiments.feedback import parse_event, parse_events

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
GOOD = {"query_id": "q1", "doc_id": "d1", "position": 1}


def test_minimal_event_defaults_click_false_and_timestamp_now():
    [event] = parse_events(GOOD, now=NOW)
    assert event.to_document() == {"query_id": "q1", "doc_id": "d1", "position": 1, "click": False,
                                   "timestamp": "2025-03-01T12:00:00.000Z"}


def test_full_event_keeps_every_field():
    raw = {**GOOD, "click": True, "dwell_ms": 31000.5, "user_id": "u", "session_id": "s", "variant": "wide",
           "experiment": "e", "query_text": "solar power", "timestamp": "2025-01-31T13:00:00+01:00"}
    document = parse_event(raw).to_document()
    assert document == {**raw, "timestamp": "2025-01-31T12:00:00.000Z"}


@pytest.mark.parametrize("timestamp, stored", [
    ("2025-01-31T12:00:00Z", "2025-01-31T12:00:00.000Z"),
    ("2025-01-31T12:00:00", "2025-01-31T12:00:00.000Z"),  # naive = UTC
    ("2025-01-31", "2025-01-31T00:00:00.000Z"),
    (1738324800000, "2025-01-31T12:00:00.000Z"),  # epoch milliseconds
])
def test_timestamps(timestamp, stored):
    assert parse_event({**GOOD, "timestamp": timestamp}).timestamp == stored


@pytest.mark.parametrize("body, field", [
    ({"doc_id": "d", "position": 1}, "query_id"),
    ({**GOOD, "query_id": ""}, "query_id"),
    ({**GOOD, "query_id": None}, "query_id"),
    ({**GOOD, "doc_id": 7}, "doc_id"),
    ({"query_id": "q", "doc_id": "d"}, "position"),
    ({**GOOD, "position": 0}, "position"),
    ({**GOOD, "position": 1.5}, "position"),
    ({**GOOD, "position": True}, "position"),
    ({**GOOD, "position": "1"}, "position"),
    ({**GOOD, "click": "yes"}, "click"),
    ({**GOOD, "dwell_ms": -1}, "dwell_ms"),
    ({**GOOD, "dwell_ms": "10"}, "dwell_ms"),
    ({**GOOD, "dwell_ms": 10 ** 400}, "dwell_ms"),
    ({**GOOD, "user_id": ""}, "user_id"),
    ({**GOOD, "variant": ["a"]}, "variant"),
    ({**GOOD, "query_text": 5}, "query_text"),
    ({**GOOD, "timestamp": "yesterday"}, "timestamp"),
    ({**GOOD, "timestamp": 10 ** 400}, "timestamp"),
    ({**GOOD, "timestamp": "1900-01-01T00:00:00Z"}, "timestamp"),
    ({**GOOD, "clicked": True}, "clicked"),
    ([GOOD], "body"),
    ({"events": []}, "events"),
    ({"events": GOOD}, "events"),
    ({"events": [GOOD], "extra": 1}, "extra"),
    ({"events": [GOOD, GOOD, GOOD, {**GOOD, "position": -2}]}, "events[3].position"),
    ({"events": [GOOD, "not an event"]}, "events[1]"),
    ({"events": [GOOD, {**GOOD, "dwell_ms": None, "click": 1}]}, "events[1].click"),
])
def test_bad_events_name_the_field(body, field):
    with pytest.raises(ValidationFailed) as info:
        parse_events(body)
    assert info.value.field == field
    assert info.value.status == 422


def test_batch_limit():
    with pytest.raises(ValidationFailed, match="maximum is 10000"):
        parse_events({"events": [GOOD] * 10001})
    assert len(parse_events({"events": [GOOD] * 3})) == 3


@pytest.mark.parametrize("name", ["Feedback", "feed back", "_feedback", "a:b", "a,b", ""])
def test_feedback_index_setting_must_be_a_valid_index_name(name):
    from sidecar.config import Settings, SettingsError

    with pytest.raises(SettingsError, match="RESCORE_FEEDBACK_INDEX"):
        Settings.from_env({"RESCORE_FEEDBACK_INDEX": name})
    assert Settings.from_env({"RESCORE_FEEDBACK_INDEX": "clicks-2025.06"}).feedback_index == "clicks-2025.06"
