"""Request deadlines: a rerank's time budget runs from the moment its HTTP request arrived.

The API layer marks the arrival (observability/http.py); everything below (query understanding,
first stage, tokenization, queueing, scoring) spends from the same budget. Outside a request
(CLI, benchmarks) the budget starts when the deadline is asked for.
"""
from __future__ import annotations

import contextvars
import time

_ARRIVAL: contextvars.ContextVar[float | None] = contextvars.ContextVar("rescore_request_arrival", default=None)


class DeadlineExceeded(Exception):
    """The request's time budget ran out (raised between steps that check it)."""


def mark_arrival(at: float | None = None) -> contextvars.Token:
    """Record when the current request arrived (time.monotonic()); return the token to reset it."""
    return _ARRIVAL.set(time.monotonic() if at is None else at)


def arrival() -> float | None:
    """Return when the current request arrived (time.monotonic()); None outside a request."""
    return _ARRIVAL.get()


def reset_arrival(token: contextvars.Token) -> None:
    _ARRIVAL.reset(token)


def deadline_for(timeout_s: float) -> float:
    """Return the time.monotonic() by which a request with this budget must be answered."""
    arrival = _ARRIVAL.get()
    return (time.monotonic() if arrival is None else arrival) + timeout_s


def left_s(deadline: float) -> float:
    """Return the seconds left until deadline (0 when it has passed)."""
    return max(0.0, deadline - time.monotonic())


def check_deadline(deadline: float | None) -> None:
    """Raise DeadlineExceeded when deadline (time.monotonic()) has passed; None never passes."""
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceeded("the request's deadline passed")
