"""Fuzz the sidecar's own endpoints from its /openapi.json with schemathesis (real gunicorn process).

Bounded: MAX_EXAMPLES schema-valid (positive) and, for operations with a body, MAX_EXAMPLES
schema-violating (negative) cases per operation; no shrinking. Checks: no 5xx, and responses match
the documented schemas (status code, body). All failures are collected and reported together.
"""
from __future__ import annotations

import os

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.conftest import start_sidecar, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# RESCORE_FUZZ_EXAMPLES raises the bound for a longer exploratory run.
MAX_EXAMPLES = int(os.environ.get("RESCORE_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_sidecar(opensearch_url):
    proc, url, log_path = start_sidecar(opensearch_url)  # the default cross-encoder
    try:
        yield url, log_path
    finally:
        stop_process(proc)


def _run_operation(operation, mode, url: str, failures: list[str]) -> int:
    count = 0

    @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        nonlocal count
        count += 1
        try:
            case.call_and_validate(base_url=url, checks=CHECKS, timeout=120)
        except (Exception, BaseExceptionGroup) as exc:  # FailureGroup or a transport error: collect, keep fuzzing
            failures.append(f"{operation.label} [{mode.value}] body={case.body!r:.300}: "
                            f"{type(exc).__name__}: {str(exc)[:600]}")

    run()
    return count


def test_fuzz_own_endpoints(fuzzed_sidecar):
    url, log_path = fuzzed_sidecar
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    counts: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = [schemathesis.GenerationMode.POSITIVE]
        if operation.body:
            modes.append(schemathesis.GenerationMode.NEGATIVE)
        for mode in modes:
            counts[f"{operation.label} [{mode.value}]"] = _run_operation(operation, mode, url, failures)
    total = sum(counts.values())
    print(f"\nschemathesis cases run: {total}")
    for label, n in counts.items():
        print(f"  {label}: {n}")
    assert len(counts) >= 14 and total >= 100
    assert not failures, f"{len(failures)} failing cases:\n" + "\n".join(failures[:30])
