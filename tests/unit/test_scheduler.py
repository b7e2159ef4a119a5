"""Token-budget batching, request merging, overload and deadlines."""

from __future__ import annotations

import os
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.backends.base import BackendError
from sidecar.rerank.scheduler import BatchPolicy, OverloadedError, Scheduler, SchedulerClosedError, plan_batches


def length_score(batch: list[str]) -> list[float]:
    """A deterministic stand-in model: the score is the item's length."""
    return [float(len(item)) for item in batch]


def make(score_fn=length_score, *, budget: int = 1000, max_batch: int = 64, queue: int = 10_000) -> Scheduler:
    return Scheduler(score_fn, cost_fn=len, policy=BatchPolicy(token_budget=budget, max_batch_size=max_batch),
                     queue_size=queue)


@given(costs=st.lists(st.integers(1, 600), max_size=200), budget=st.integers(1, 4000), cap=st.integers(1, 50))
def test_plan_batches_respects_budget_and_covers_every_item_once(costs, budget, cap) -> None:
    batches = plan_batches(costs, BatchPolicy(token_budget=budget, max_batch_size=cap))
    assert sorted(i for b in batches for i in b) == list(range(len(costs)))
    for batch in batches:
        assert len(batch) <= cap
        assert len(batch) == 1 or len(batch) * max(costs[i] for i in batch) <= budget


def test_plan_batches_sorts_by_length_to_limit_padding() -> None:
    costs = [400, 10, 390, 12, 11, 405]
    batches = plan_batches(costs, BatchPolicy(token_budget=1000, max_batch_size=8))
    assert batches == [[1, 4, 3], [2, 0], [5]]


def test_scores_come_back_in_input_order() -> None:
    scheduler = make(budget=50, max_batch=4)
    items = ["x" * n for n in (9, 1, 5, 3, 7, 2, 8)]
    try:
        outcome = scheduler.run(items)
    finally:
        scheduler.close()
    assert outcome.complete
    assert outcome.scores == [9.0, 1.0, 5.0, 3.0, 7.0, 2.0, 8.0]


def test_concurrent_requests_are_merged_and_each_gets_its_own_order() -> None:
    batch_sizes: list[int] = []
    gate = threading.Event()

    def slow_score(batch: list[str]) -> list[float]:
        gate.wait(5)
        batch_sizes.append(len(batch))
        return length_score(batch)

    scheduler = make(slow_score, budget=10_000, max_batch=256)
    results: dict[int, list[float | None]] = {}

    def request(n: int) -> None:
        items = ["y" * ((n * 7 + i) % 13 + 1) for i in range(10)]
        results[n] = scheduler.run(items).scores
        assert results[n] == [float(len(item)) for item in items]

    threads = [threading.Thread(target=request, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join(10)
    scheduler.close()
    assert len(results) == 16
    assert len(batch_sizes) < 16  # requests shared batches
    assert sum(batch_sizes) == 160


def test_full_queue_raises_overloaded() -> None:
    release = threading.Event()

    def blocked(batch: list[str]) -> list[float]:
        release.wait(5)
        return length_score(batch)

    scheduler = make(blocked, queue=5)
    first = threading.Thread(target=scheduler.run, args=(["a"] * 4,))
    first.start()
    time.sleep(0.1)
    with pytest.raises(OverloadedError) as err:
        scheduler.run(["b"] * 2)
    assert err.value.http_status == 429
    release.set()
    first.join(5)
    assert scheduler.run(["c"] * 5).complete
    scheduler.close()


def test_deadline_returns_what_was_scored_so_far() -> None:
    def slow(batch: list[str]) -> list[float]:
        time.sleep(0.15)
        return length_score(batch)

    scheduler = make(slow, max_batch=1)
    outcome = scheduler.run(["a", "bb", "ccc", "dddd", "eeeee", "ffffff"], timeout_s=0.4)
    assert not outcome.complete
    scored = [s for s in outcome.scores if s is not None]
    assert 1 <= len(scored) < 6
    assert outcome.scores[0] == 1.0  # shortest first
    time.sleep(0.3)
    assert scheduler.load == 0  # abandoned pairs were dropped, not scored
    scheduler.close()


def test_zero_deadline_scores_nothing() -> None:
    def slow(batch: list[str]) -> list[float]:
        time.sleep(0.1)
        return length_score(batch)

    scheduler = make(slow)
    outcome = scheduler.run(["a", "b"], timeout_s=0.0)
    scheduler.close()
    assert not outcome.complete
    assert outcome.scores == [None, None]


def test_backend_failure_reaches_the_caller_as_backend_error() -> None:
    def broken(batch: list[str]) -> list[float]:
        raise RuntimeError("CUDA out of memory")

    scheduler = make(broken)
    with pytest.raises(BackendError, match="CUDA out of memory"):
        scheduler.run(["a"])
    with pytest.raises(BackendError):  # the worker survived the failure
        scheduler.run(["b"])
    scheduler.close()


def test_closed_scheduler_refuses_work() -> None:
    scheduler = make()
    scheduler.close()
    with pytest.raises(SchedulerClosedError):
        scheduler.run(["a"])


def test_one_big_owner_does_not_starve_a_small_one() -> None:
    """Round-robin across owners: a late small request is scored long before a big one ends."""
    order: list[str] = []

    def tracked(batch: list[str]) -> list[float]:
        time.sleep(0.02)
        order.extend(item[0] for item in batch)
        return length_score(batch)

    scheduler = make(tracked, budget=1000, max_batch=4)
    done: dict[str, float] = {}

    def request(name: str, count: int) -> None:
        scheduler.run([name * 3] * count, owner=name)
        done[name] = time.monotonic()

    big = threading.Thread(target=request, args=("b", 200))
    big.start()
    time.sleep(0.1)
    small = threading.Thread(target=request, args=("s", 4))
    small.start()
    small.join(10)
    big.join(20)
    scheduler.close()
    assert done["s"] < done["b"]
    assert order.index("s") < 60, "the small request waited for most of the big one"


def test_admission_refuses_a_request_that_cannot_meet_its_deadline() -> None:
    def slow(batch: list[str]) -> list[float]:
        time.sleep(0.01 * sum(len(i) for i in batch))  # 10 ms per token
        return length_score(batch)

    scheduler = make(slow, budget=100, max_batch=8)
    assert scheduler.run(["x"] * 4).complete  # the scheduler learns the model's speed
    busy = threading.Thread(target=scheduler.run, args=(["w" * 20] * 5,))  # ~1 s of work ahead of us
    busy.start()
    time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(OverloadedError, match="cannot finish within the deadline"):
        scheduler.run(["y" * 50] * 10, timeout_s=0.5)  # ~5 s of work for a 0.5 s budget
    with pytest.raises(OverloadedError, match="cannot finish within the deadline"):
        scheduler.admit(10, 500, time.monotonic() + 0.5)  # the same check before any encoding
    assert time.monotonic() - started < 0.2, "refused at once, not at the deadline"
    assert scheduler.run(["z"] * 2, timeout_s=5).complete, "what fits is still admitted"
    busy.join(10)
    scheduler.close()


def test_rerank_slots_bound_concurrent_requests() -> None:
    release = threading.Event()

    def blocked(batch: list[str]) -> list[float]:
        release.wait(5)
        return length_score(batch)

    scheduler = Scheduler(blocked, cost_fn=len, policy=BatchPolicy(token_budget=1000, max_batch_size=64),
                          queue_size=1000, max_requests=2)
    threads = [threading.Thread(target=scheduler.run, args=(["a"],)) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    assert scheduler.active_requests == 2
    with pytest.raises(OverloadedError, match="RESCORE_RERANK_SLOTS"):
        scheduler.run(["b"])
    release.set()
    for thread in threads:
        thread.join(5)
    assert scheduler.active_requests == 0 and scheduler.run(["c"]).complete
    scheduler.close()


def test_verdicts_report_model_faults_only() -> None:
    verdicts: list[BaseException | None] = []
    mode = {"fail": False}

    def flaky(batch: list[str]) -> list[float]:
        if mode["fail"]:
            raise RuntimeError("model crashed")
        time.sleep(0.05)
        return length_score(batch)

    scheduler = make(flaky)
    scheduler.set_verdict_listener(verdicts.append)
    assert scheduler.run(["a", "b"]).complete
    assert not scheduler.run(["c" * 5] * 3, timeout_s=0.0).complete  # a client deadline: no batch, no verdict
    mode["fail"] = True
    with pytest.raises(BackendError):
        scheduler.run(["d"])
    scheduler.close()
    assert [v is None for v in verdicts] == [True, False]


@pytest.mark.skipif(not hasattr(os, "setpriority") or not os.path.isdir("/proc/self/task"), reason="Linux only")
def test_model_thread_runs_below_request_threads() -> None:
    seen: list[int] = []

    def record(batch: list[str]) -> list[float]:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return length_score(batch)

    scheduler = Scheduler(record, cost_fn=len, policy=BatchPolicy(token_budget=100, max_batch_size=8),
                          queue_size=100, nice=7)
    assert scheduler.run(["a"]).complete
    scheduler.close()
    assert seen == [max(7, os.getpriority(os.PRIO_PROCESS, 0))]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 7 or os.getpriority(os.PRIO_PROCESS, 0) >= 7


def test_an_idle_model_always_admits_so_the_speed_estimate_can_recover() -> None:
    def slow(batch: list[str]) -> list[float]:
        time.sleep(0.05)
        return length_score(batch)

    scheduler = make(slow)
    scheduler.run(["x"])  # learns ~50 ms per token from one tiny batch (pessimistic)
    scheduler.admit(1, 100, time.monotonic() + 0.5)  # idle: admitted although the estimate says 5 s
    assert scheduler.run(["y" * 100], timeout_s=0.5).complete
    scheduler.close()
