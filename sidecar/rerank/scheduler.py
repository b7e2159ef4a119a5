"""Token-budget batching and one worker thread that merges concurrent requests.

Requests enqueue their pairs; the worker drains everything pending, sorts it by length, cuts
batches whose padded size (longest x count) fits the token budget, scores them and hands each
score back to its request. A request whose deadline passes stops waiting and keeps what was
scored so far (None for the rest); its unscored pairs are dropped from later batches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sidecar.backends.base import RerankError

logger = logging.getLogger(__name__)

T = TypeVar("T")
ScoreFn = Callable[[list[T]], list[float]]


class OverloadedError(RerankError):
    """The scheduler queue is full; the caller should retry later or skip reranking."""

    error_type = "overloaded"
    http_status = 429


class SchedulerClosedError(RerankError):
    """The scheduler was shut down."""

    error_type = "unavailable"
    http_status = 503


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """Limits of one batch: padded tokens (longest x count) and number of pairs."""

    token_budget: int
    max_batch_size: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """Scores of one request in input order (None = not scored before the deadline).

    queue_ms: from enqueue until the first batch holding one of its pairs started (or until the
    request stopped waiting); model_ms: summed run time of the batches that held its pairs.
    """

    scores: list[float | None]
    complete: bool
    queue_ms: float = 0.0
    model_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class BatchStats:
    """One scored batch: pairs, real tokens, padded tokens (longest x count) and run time."""

    size: int
    tokens: int
    padded_tokens: int
    seconds: float


def plan_batches(costs: Sequence[int], policy: BatchPolicy) -> list[list[int]]:
    """Return batches of indices, shortest first, each within the token budget and size cap."""
    order = sorted(range(len(costs)), key=costs.__getitem__)
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted ascending, so the newcomer is the longest: it sets the padded width.
        padded = (len(current) + 1) * costs[index]
        if current and (padded > policy.token_budget or len(current) >= policy.max_batch_size):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


class _Ticket(Generic[T]):
    """One request's pairs and the scores filled in by the worker."""

    def __init__(self, items: list[T], deadline: float | None) -> None:
        self.items = items
        self.deadline = deadline
        self.scores: list[float | None] = [None] * len(items)
        self.remaining = len(items)
        self.error: BaseException | None = None
        self.abandoned = False
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.enqueued = time.perf_counter()
        self.first_batch: float | None = None
        self.model_s = 0.0

    def batch_started(self, now: float, seconds: float) -> None:
        with self.lock:
            if self.first_batch is None:
                self.first_batch = now
            self.model_s += seconds

    def live(self, now: float) -> bool:
        """Return whether the requester still waits for scores."""
        return not self.abandoned and self.error is None and (self.deadline is None or now < self.deadline)

    def fill(self, index: int, score: float) -> None:
        with self.lock:
            if self.scores[index] is None:
                self.scores[index] = score
                self.remaining -= 1
            if self.remaining == 0:
                self.done.set()

    def fail(self, error: BaseException) -> None:
        with self.lock:
            self.error = error
            self.done.set()

    def snapshot(self) -> Outcome:
        with self.lock:
            self.abandoned = True
            queue_end = self.first_batch if self.first_batch is not None else time.perf_counter()
            return Outcome(scores=list(self.scores), complete=self.remaining == 0,
                           queue_ms=(queue_end - self.enqueued) * 1e3, model_ms=self.model_s * 1e3)


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    ticket: _Ticket[T]
    index: int
    cost: int


class Scheduler(Generic[T]):
    """Run score_fn on token-budget batches merged across concurrent requests, in one thread."""

    def __init__(
        self,
        score_fn: ScoreFn,
        *,
        cost_fn: Callable[[T], int],
        policy: BatchPolicy,
        queue_size: int,
        name: str = "rerank",
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        self._score_fn = score_fn
        self._on_batch = on_batch
        self._cost_fn = cost_fn
        self._policy = policy
        self._queue_size = queue_size
        self._pending: list[_Entry[T]] = []
        self._in_flight = 0  # entries taken by the worker and not yet scored or dropped
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-scheduler", daemon=True)
        self._thread.start()

    @property
    def load(self) -> int:
        """Return the number of pairs queued or being scored."""
        with self._cond:
            return len(self._pending) + self._in_flight

    def run(self, items: list[T], *, timeout_s: float | None = None) -> Outcome:
        """Score items (blocking); past timeout_s return what was scored so far."""
        if not items:
            return Outcome(scores=[], complete=True)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        ticket = _Ticket(items, deadline)
        self._enqueue(ticket)
        ticket.done.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        outcome = ticket.snapshot()
        if ticket.error is not None:
            raise ticket.error
        return outcome

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker; queued requests fail with SchedulerClosedError."""
        with self._cond:
            self._closed = True
            pending, self._pending = self._pending, []
            self._cond.notify_all()
        for entry in pending:
            entry.ticket.fail(SchedulerClosedError("reranker is shutting down"))
        self._thread.join(timeout=timeout_s)

    def _enqueue(self, ticket: _Ticket[T]) -> None:
        entries = [_Entry(ticket, i, self._cost_fn(item)) for i, item in enumerate(ticket.items)]
        with self._cond:
            if self._closed:
                raise SchedulerClosedError("reranker is shutting down")
            load = len(self._pending) + self._in_flight
            if load + len(entries) > self._queue_size:
                raise OverloadedError(
                    f"rerank queue full: {load} pairs pending, {len(entries)} more would exceed "
                    f"queue_size={self._queue_size} (RESCORE_QUEUE_SIZE)"
                )
            self._pending.extend(entries)
            self._cond.notify()

    def _take_round(self) -> list[_Entry[T]] | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            taken, self._pending = self._pending, []
            self._in_flight += len(taken)
            return taken

    def _release(self, count: int) -> None:
        with self._cond:
            self._in_flight -= count

    def _run(self) -> None:
        while (entries := self._take_round()) is not None:
            for batch in plan_batches([e.cost for e in entries], self._policy):
                self._score_batch([entries[i] for i in batch])

    def _score_batch(self, entries: list[_Entry[T]]) -> None:
        now = time.monotonic()
        live = [e for e in entries if e.ticket.live(now)]
        try:
            if not live:
                return
            started = time.perf_counter()
            scores = self._score_fn([e.ticket.items[e.index] for e in live])
            seconds = time.perf_counter() - started
            stats = BatchStats(size=len(live), tokens=sum(e.cost for e in live),
                               padded_tokens=len(live) * max(e.cost for e in live), seconds=seconds)
            logger.debug("batch_scored size=%d padded_tokens=%d took_ms=%.1f", stats.size, stats.padded_tokens,
                         seconds * 1e3)
            for ticket in {id(e.ticket): e.ticket for e in live}.values():
                ticket.batch_started(started, seconds)
            for entry, score in zip(live, scores, strict=True):
                entry.ticket.fill(entry.index, score)
            if self._on_batch is not None:
                self._on_batch(stats)
        except Exception as exc:  # handed to every waiting request; the worker keeps running
            logger.exception("batch_failed size=%d", len(live))
            error = exc if isinstance(exc, RerankError) else _wrap_backend_error(exc)
            for ticket in {id(e.ticket): e.ticket for e in live}.values():
                ticket.fail(error)
        finally:
            self._release(len(entries))


def _wrap_backend_error(exc: Exception) -> RerankError:
    from sidecar.backends.base import BackendError

    wrapped = BackendError(f"backend failed: {type(exc).__name__}: {exc}")
    wrapped.__cause__ = exc
    return wrapped
