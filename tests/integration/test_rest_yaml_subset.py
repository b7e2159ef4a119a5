"""OpenSearch's own REST API YAML tests (a fixed subset) pass through the sidecar as they pass directly.

The full run (every test of org.opensearch:rest-api-spec) is `scripts/rest_yaml_suite.py`; this
CI subset takes the first tests of every API family, runs each directly and through a real sidecar
(pass-through fully open: RESCORE_PROXY_ALLOW=all), wiping the cluster in between, and fails on
any test that passes directly but not through the sidecar.
"""
from __future__ import annotations

import sys

import pytest

from tests.conftest import ROOT, start_sidecar, stop_process

sys.path.insert(0, str(ROOT / "scripts"))
from rest_yaml_suite import compare, spec_dir  # noqa: E402

from tests.rest_yaml.runner import load_tests, subset  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.wipes_cluster]
SUBSET = 60


def test_rest_yaml_subset_passes_through_the_sidecar_as_directly(opensearch_url):
    api_root = spec_dir()  # fetched with Maven on first use; raises (fails loudly) if it cannot be
    tests = subset(load_tests(api_root / "test"), SUBSET)
    assert len(tests) == SUBSET
    proc, url, log_path = start_sidecar(opensearch_url, RESCORE_PROXY_ALLOW="all", RESCORE_PRELOAD_MODEL="false")
    try:
        summary = compare(opensearch_url, url, tests, api_root / "api")
    finally:
        stop_process(proc)
    ran = summary["tests"] - summary["skipped"]
    assert summary["direct_pass"] >= 0.8 * ran, f"the runner itself fails too often directly: {summary['rows']}"
    diffs = "\n".join(f"{d['test']}: {d['sidecar_reason']}" for d in summary["diffs"])
    assert not summary["diffs"], f"pass directly, fail through the sidecar:\n{diffs}"
