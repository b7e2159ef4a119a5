"""The reranker circuit breaker, driven by an injected clock."""
from sidecar.rerank.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_n_consecutive_failures_and_probes_once_after_cooldown():
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooldown_s=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.snapshot().state == "closed"
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.snapshot().state == "open" and breaker.snapshot().retry_in_s == 10
    assert not breaker.allow()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.snapshot().state == "half_open"
    assert breaker.allow(), "one probe goes through"
    assert not breaker.allow(), "a second caller waits for the probe's verdict"
    breaker.record_success()
    assert breaker.snapshot().state == "closed" and breaker.snapshot().consecutive_failures == 0
    assert breaker.allow() and breaker.allow()


def test_failed_probe_reopens_for_a_full_cooldown():
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown_s=5, clock=clock)
    breaker.allow()
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    state = breaker.snapshot()
    assert state.state == "open" and state.opened_total == 2 and state.retry_in_s == 5
    assert not breaker.allow()


def test_success_resets_the_count_so_only_consecutive_failures_open_it():
    breaker = CircuitBreaker(failures=2, cooldown_s=5, clock=Clock())
    for _ in range(5):
        breaker.record_failure()
        breaker.record_success()
    assert breaker.snapshot().state == "closed"


def test_released_probe_lets_the_next_caller_probe():
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown_s=1, clock=clock)
    breaker.record_failure()
    clock.now += 1
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


def test_zero_threshold_never_opens():
    breaker = CircuitBreaker(failures=0, cooldown_s=1, clock=Clock())
    for _ in range(100):
        breaker.record_failure()
    assert breaker.allow() and breaker.snapshot().state == "closed"


def test_verdicts_drive_the_breaker_and_release_frees_an_unjudged_probe():
    now = [0.0]
    breaker = CircuitBreaker(failures=2, cooldown_s=5, clock=lambda: now[0])
    breaker.record_verdict(RuntimeError("model crashed"))
    breaker.record_verdict(None)
    assert breaker.snapshot().consecutive_failures == 0, "a scored batch resets the count"
    breaker.record_verdict(RuntimeError("1"))
    breaker.record_verdict(RuntimeError("2"))
    assert breaker.snapshot().state == "open"
    now[0] = 6
    assert breaker.allow()  # the probe
    breaker.release()  # its request got no verdict (cache hits, overload, its own deadline)
    assert breaker.snapshot().state == "half_open" and breaker.allow(), "the next request probes"
