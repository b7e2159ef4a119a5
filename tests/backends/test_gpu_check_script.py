"""scripts/gpu_check.sh --dry-run: the GPU check's exact steps on the CPU, so the script never rots.

On a GPU loan the same script runs test_gpu.py and the Qwen3-8B random-weight benchmark; here it runs
them on the tiny random Qwen3. The assertions are the ones a GPU run's output must also satisfy.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
ENGINES = {"naive-torch-bf16", "engine-torch-bf16", "engine-torch-bf16-shared-prefix", "engine-quanto-int8"}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("gpu-check-out")
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    done = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    return done, out


def test_dry_run_passes_and_writes_every_artifact(dry_run) -> None:
    done, out = dry_run
    log = (out / "gpu_check.log").read_text() if (out / "gpu_check.log").is_file() else ""
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n{log[-3000:]}"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tests_rc"] == 0 and summary["bench_rc"] == 0
    env = json.loads((out / "env.json").read_text())
    assert env["dry_run"] is True and env["transformers"] and env["torch"]
    junit = (out / "test_gpu.xml").read_text()
    assert 'failures="0"' in junit and 'errors="0"' in junit
    assert 'tests="4"' in junit and 'skipped="1"' in junit  # fp8 alone is skipped on the CPU


def test_dry_run_benchmark_rows_are_complete_and_finite(dry_run) -> None:
    _, out = dry_run
    records = json.loads((out / "bench_gpu.json").read_text())
    assert {(r["engine"], r["workload"]) for r in records} == {
        (engine, workload) for engine in ENGINES for workload in ("top50x256", "top100-mixed")}
    for r in records:
        assert r["model"] == "qwen3-tiny-random"
        assert r["pairs_per_s"] > 0 and r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"]
        assert r["mfu"] is not None and r["mfu"] > 0
        # A NaN here once came from uninitialised rotary buffers of the random model (transformers 5.x).
        assert math.isfinite(r["max_abs_diff"]) and r["max_abs_diff"] < 0.1, r
        if r["engine"] != "naive-torch-bf16":
            assert r["speedup_vs_naive"] > 0 and r["spearman_vs_naive"] >= 0.9, r


def test_random_qwen3_rotary_buffers_match_a_freshly_built_model() -> None:
    """to_empty() leaves non-persistent buffers uninitialised: they must be computed, not garbage."""
    from transformers import Qwen3ForCausalLM

    from sidecar.rerank.random_models import build_random_qwen3, qwen3_config

    model = build_random_qwen3("tiny", dtype="bfloat16")
    reference = Qwen3ForCausalLM(qwen3_config("tiny")).model.rotary_emb
    rotary = model.model.rotary_emb
    assert rotary.inv_freq.dtype == torch.float32
    assert torch.equal(rotary.inv_freq, reference.inv_freq)
    ids = torch.full((2, 16), 1000, dtype=torch.long)  # equal lengths: no padding anywhere
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[:, -1]
    assert torch.isfinite(logits.float()).all()
