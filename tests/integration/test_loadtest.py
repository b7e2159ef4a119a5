"""A short run of scripts/loadtest.py against the real sidecar: every answer matches OpenSearch's."""
import importlib.util
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def load_script():
    spec = importlib.util.spec_from_file_location("loadtest", ROOT / "scripts" / "loadtest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["loadtest"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_short_load_run_has_no_errors_or_mismatches(sidecar_url, opensearch_url, demo_index):
    report = load_script().run_load(sidecar_url, opensearch_url, demo_index, clients=8, seconds=10)
    assert report["errors"] == 0 and report["mismatches"] == 0, report["examples"]
    assert all(row["count"] > 0 for row in report["kinds"].values()), report
    assert sum(report["rerank_status"].values()) == report["kinds"]["rerank"]["count"]


def test_loadtest_refuses_non_loopback_targets():
    with pytest.raises(SystemExit, match="loopback"):
        load_script().run_load("http://10.1.2.3:8080", "http://127.0.0.1:9200", "x", clients=1, seconds=1)
