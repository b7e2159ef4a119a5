"""A circuit breaker for the reranker: stop calling a failing model, probe it again later.

closed -> (N consecutive failures) -> open -> (cooldown elapsed) -> half_open: exactly one
request probes the reranker; success closes the circuit, failure opens it for another cooldown.
While open (or while the probe runs) callers skip the reranker and keep first-stage order.
Only backend faults count: the scheduler reports each model batch's verdict (record_verdict) and
a model that cannot be loaded counts as one failure; queue waits, client deadlines, overload and
invalid input are not the model's fault and never trip the circuit.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sidecar.backends.base import is_overload

logger = logging.getLogger(__name__)

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerState:
    """A snapshot for /ready and ext.rerank."""

    state: str
    consecutive_failures: int
    opened_total: int
    retry_in_s: float

    def as_dict(self) -> dict:
        return {"state": self.state, "consecutive_failures": self.consecutive_failures,
                "opened_total": self.opened_total, "retry_in_s": round(self.retry_in_s, 3)}


class CircuitBreaker:
    """Count consecutive failures; open after `failures` of them for `cooldown_s` (failures=0: never)."""

    def __init__(self, *, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._opened_total = 0
        self._probing = False

    def allow(self) -> bool:
        """Return whether the caller may call the reranker now (claims the probe when half-open)."""
        with self._lock:
            if self._state == CLOSED:
                return True
            if self._state == OPEN and self._clock() - self._opened_at >= self._cooldown_s:
                self._state = HALF_OPEN
                self._probing = False
            if self._state == HALF_OPEN and not self._probing:
                self._probing = True
                logger.info("circuit_half_open probing reranker")
                return True
            return False

    def record_success(self) -> None:
        """Close the circuit and reset the failure count."""
        with self._lock:
            if self._state != CLOSED:
                logger.info("circuit_closed after probe succeeded")
            self._state = CLOSED
            self._failures = 0
            self._probing = False

    def record_failure(self) -> None:
        """Count one failure; open the circuit at the threshold or when the probe failed."""
        with self._lock:
            self._failures += 1
            probe_failed = self._state == HALF_OPEN
            if self._threshold and (probe_failed or (self._state == CLOSED and self._failures >= self._threshold)):
                self._state = OPEN
                self._opened_at = self._clock()
                self._opened_total += 1
                self._probing = False
                logger.warning("circuit_open consecutive_failures=%d cooldown_s=%.1f", self._failures,
                               self._cooldown_s)

    def record_verdict(self, error: BaseException | None) -> None:
        """Record one model call's outcome: None = it scored, else the model's error.

        A model server's "too busy" (is_overload) is load, not a fault: no verdict.
        """
        if error is None:
            self.record_success()
        elif is_overload(error):
            self.release()
        else:
            self.record_failure()

    def release(self) -> None:
        """Give the probe back without a verdict (the call was skipped, e.g. overloaded or invalid)."""
        with self._lock:
            self._probing = False

    def snapshot(self) -> BreakerState:
        """Return the current state (an open circuit whose cooldown elapsed reports half_open)."""
        with self._lock:
            state, retry = self._state, 0.0
            if state == OPEN:
                retry = max(0.0, self._cooldown_s - (self._clock() - self._opened_at))
                if retry == 0.0:
                    state = HALF_OPEN
            return BreakerState(state, self._failures, self._opened_total, retry)
