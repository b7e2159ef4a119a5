"""Token-budget batching and one worker thread that merges concurrent requests.

Requests enqueue their pairs (per owner, shortest first); the worker takes one batch at a time
round-robin across owners, as many pairs as fit the token budget (padded size = longest x count),
scores it and hands each score back to its request. A request whose deadline passes stops waiting and keeps what was
scored so far (None for the rest); its unscored pairs are dropped from later batches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sidecar.backends.base import RerankError, is_overload
from sidecar.rerank.priority import lower_current_thread

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

    def __init__(self, items: list[T], deadline: float | None, owner: Hashable) -> None:
        self.items = items
        self.deadline = deadline
        self.owner = owner
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
    """Run score_fn on token-budget batches merged across concurrent requests, in one thread.

    Fair queueing: pending pairs are kept per owner (one HTTP request, so the entries of one
    `_msearch` share a turn) and every batch takes them round-robin across owners, so one big
    request never makes a small one wait for all of its pairs. Admission control: a request is
    refused at once (OverloadedError) when `max_requests` requests are already being scored or
    when the measured model speed says its pairs cannot be scored before its deadline.
    """

    def __init__(
        self,
        score_fn: ScoreFn,
        *,
        cost_fn: Callable[[T], int],
        policy: BatchPolicy,
        queue_size: int,
        max_requests: int = 0,
        nice: int = 0,
        name: str = "rerank",
        on_batch: Callable[[BatchStats], None] | None = None,
        on_verdict: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self._score_fn = score_fn
        self._on_batch = on_batch
        self._on_verdict = on_verdict
        self._cost_fn = cost_fn
        self._policy = policy
        self._queue_size = queue_size
        self._max_requests = max_requests
        self._nice = nice
        self._owners: OrderedDict[Hashable, deque[_Entry[T]]] = OrderedDict()
        self._pending = 0  # entries queued in self._owners
        self._in_flight = 0  # entries taken by the worker and not yet scored or dropped
        self._in_flight_cost = 0
        self._tickets = 0  # requests admitted and still waiting
        # Measured model speed: seconds per (real) token, smoothed; None until the first batch.
        self._s_per_token: float | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-scheduler", daemon=True)
        self._thread.start()

    @property
    def load(self) -> int:
        """Return the number of pairs queued or being scored."""
        with self._cond:
            return self._pending + self._in_flight

    @property
    def active_requests(self) -> int:
        """Return the number of requests admitted and not yet answered."""
        with self._cond:
            return self._tickets

    def run(self, items: list[T], *, timeout_s: float | None = None, deadline: float | None = None,
            owner: Hashable | None = None) -> Outcome:
        """Score items (blocking); past the deadline return what was scored so far.

        deadline is a time.monotonic() value; timeout_s (from now) is used when it is None.
        """
        if not items:
            return Outcome(scores=[], complete=True)
        if deadline is None and timeout_s is not None:
            deadline = time.monotonic() + timeout_s
        ticket = _Ticket(items, deadline, owner if owner is not None else object())
        if deadline is not None and time.monotonic() >= deadline:
            return ticket.snapshot()  # no time left: nothing is queued
        self._enqueue(ticket)
        try:
            ticket.done.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            outcome = ticket.snapshot()
        finally:
            self._forget(ticket)
        if ticket.error is not None:
            raise ticket.error
        return outcome

    def estimate_s(self, cost: int, owner: Hashable | None = None) -> float | None:
        """Return the seconds a new request of `cost` tokens would take now (None: speed unknown)."""
        with self._cond:
            return self._estimate_locked(cost, owner)

    def set_verdict_listener(self, listener: Callable[[BaseException | None], None] | None) -> None:
        """Report each batch's verdict (None = scored, else the model's error) to listener."""
        self._on_verdict = listener

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker; queued requests fail with SchedulerClosedError."""
        with self._cond:
            self._closed = True
            pending = [entry for queue in self._owners.values() for entry in queue]
            self._owners.clear()
            self._pending = 0
            self._cond.notify_all()
        for entry in pending:
            entry.ticket.fail(SchedulerClosedError("reranker is shutting down"))
        self._thread.join(timeout=timeout_s)

    def _estimate_locked(self, cost: int, owner: Hashable | None) -> float | None:  # noqa: ARG002
        if self._s_per_token is None:
            return None
        # Conservative: everything queued now, then ours. Round-robin would finish us sooner, but
        # requests admitted later take turns too; under overload a quick "overloaded" beats
        # admitting work that ends in a timeout at the deadline.
        pending = sum(e.cost for queue in self._owners.values() for e in queue)
        return (self._in_flight_cost + pending + cost) * self._s_per_token

    def admit(self, pairs: int, cost: int, deadline: float | None) -> None:
        """Raise OverloadedError now if a request of about `cost` tokens would be refused.

        Callers check before the work of encoding a request that would only be turned away.
        """
        with self._cond:
            if self._max_requests and self._tickets >= self._max_requests:
                raise OverloadedError(f"all {self._max_requests} rerank slots are busy (RESCORE_RERANK_SLOTS)")
            self._check_deadline_locked(pairs, cost, deadline)

    def _check_deadline_locked(self, pairs: int, cost: int, deadline: float | None) -> None:
        if deadline is None or not (self._pending or self._in_flight):
            return  # nothing to wait behind: it runs at once (and measures the model's speed again)
        estimate = self._estimate_locked(cost, None)
        left = deadline - time.monotonic()
        if estimate is not None and estimate > left:
            raise OverloadedError(
                f"cannot finish within the deadline: {pairs} pairs need about {estimate * 1e3:.0f} ms "
                f"at the current load, {max(left, 0.0) * 1e3:.0f} ms are left"
            )

    def _enqueue(self, ticket: _Ticket[T]) -> None:
        entries = sorted((_Entry(ticket, i, self._cost_fn(item)) for i, item in enumerate(ticket.items)),
                         key=lambda e: e.cost)
        cost = sum(e.cost for e in entries)
        with self._cond:
            if self._closed:
                raise SchedulerClosedError("reranker is shutting down")
            load = self._pending + self._in_flight
            if load + len(entries) > self._queue_size:
                raise OverloadedError(
                    f"rerank queue full: {load} pairs pending, {len(entries)} more would exceed "
                    f"queue_size={self._queue_size} (RESCORE_QUEUE_SIZE)"
                )
            if self._max_requests and self._tickets >= self._max_requests:
                raise OverloadedError(f"all {self._max_requests} rerank slots are busy (RESCORE_RERANK_SLOTS)")
            self._check_deadline_locked(len(entries), cost, ticket.deadline)
            self._owners.setdefault(ticket.owner, deque()).extend(entries)
            self._pending += len(entries)
            self._tickets += 1
            self._cond.notify()

    def _forget(self, ticket: _Ticket[T]) -> None:
        """Drop a finished or abandoned request's unscored pairs from the queue."""
        with self._cond:
            self._tickets -= 1
            queue = self._owners.get(ticket.owner)
            if queue is None:
                return
            kept = deque(e for e in queue if e.ticket is not ticket)
            self._pending -= len(queue) - len(kept)
            if kept:
                self._owners[ticket.owner] = kept
            else:
                del self._owners[ticket.owner]

    def _take_batch(self) -> list[_Entry[T]] | None:
        """Wait for work; take one batch's worth of live pairs round-robin across owners."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            now = time.monotonic()
            taken: list[_Entry[T]] = []
            widest = 0
            while self._owners and len(taken) < self._policy.max_batch_size:
                owner, queue = next(iter(self._owners.items()))
                entry = queue[0]
                if entry.ticket.live(now):
                    width = max(widest, entry.cost)
                    if taken and (len(taken) + 1) * width > self._policy.token_budget:
                        break
                    taken.append(entry)
                    widest = width
                queue.popleft()
                self._pending -= 1
                self._owners.move_to_end(owner)  # the next pair comes from the next owner
                if not queue:
                    del self._owners[owner]
            self._in_flight += len(taken)
            self._in_flight_cost += sum(e.cost for e in taken)
            return taken

    def _release(self, entries: list[_Entry[T]]) -> None:
        with self._cond:
            self._in_flight -= len(entries)
            self._in_flight_cost -= sum(e.cost for e in entries)

    def _learn(self, stats: BatchStats) -> None:
        if stats.tokens <= 0:
            return
        sample = stats.seconds / stats.tokens
        with self._cond:
            self._s_per_token = sample if self._s_per_token is None else 0.7 * self._s_per_token + 0.3 * sample

    def _run(self) -> None:
        lower_current_thread(self._nice)  # the model runs here (and in its library's pool threads)
        while (entries := self._take_batch()) is not None:
            if entries:
                self._score_batch(entries)

    def _score_batch(self, entries: list[_Entry[T]]) -> None:
        now = time.monotonic()
        live = [e for e in entries if e.ticket.live(now)]
        try:
            if not live:
                return
            live = [live[i] for batch in plan_batches([e.cost for e in live], self._policy) for i in batch]
            started = time.perf_counter()
            try:
                scores = self._score_fn([e.ticket.items[e.index] for e in live])
            except Exception as exc:
                self._verdict(exc)
                raise
            self._verdict(None)
            seconds = time.perf_counter() - started
            stats = BatchStats(size=len(live), tokens=sum(e.cost for e in live),
                               padded_tokens=len(live) * max(e.cost for e in live), seconds=seconds)
            self._learn(stats)
            logger.debug("batch_scored size=%d padded_tokens=%d took_ms=%.1f", stats.size, stats.padded_tokens,
                         seconds * 1e3)
            for ticket in {id(e.ticket): e.ticket for e in live}.values():
                ticket.batch_started(started, seconds)
            for entry, score in zip(live, scores, strict=True):
                entry.ticket.fill(entry.index, score)
            if self._on_batch is not None:
                self._on_batch(stats)
        except Exception as exc:  # handed to every waiting request; the worker keeps running
            if is_overload(exc):  # a busy model server: load, logged per request
                logger.debug("batch_shed size=%d error=%s", len(live), exc)
            else:
                logger.exception("batch_failed size=%d", len(live))
            error = exc if isinstance(exc, RerankError) else _wrap_backend_error(exc)
            for ticket in {id(e.ticket): e.ticket for e in live}.values():
                ticket.fail(error)
        finally:
            self._release(entries)

    def _verdict(self, error: BaseException | None) -> None:
        """Tell the listener (the circuit breaker) whether the model scored a batch."""
        if self._on_verdict is not None:
            try:
                self._on_verdict(error)
            except Exception:  # a listener bug must not kill the worker
                logger.exception("verdict_listener_failed")


def _wrap_backend_error(exc: Exception) -> RerankError:
    from sidecar.backends.base import BackendError

    wrapped = BackendError(f"backend failed: {type(exc).__name__}: {exc}")
    wrapped.__cause__ = exc
    return wrapped
