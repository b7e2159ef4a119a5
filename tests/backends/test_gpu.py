"""CUDA paths: bf16 torch and quanto int8/fp8 against CPU fp32 (skipped without a GPU).

scripts/gpu_check.sh --dry-run sets RESCORE_GPU_CHECK_DEVICE=cpu: the same tests then run the
bf16 / quanto paths on the CPU (fp8 skipped), so the GPU check cannot rot between GPU loans.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

DEVICE = os.environ.get("RESCORE_GPU_CHECK_DEVICE", "cuda")

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                                   reason="needs CUDA")]


def spearman(a, b) -> float:
    return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


@pytest.fixture(scope="module")
def cpu_reference(lm_options, pairs_100):
    from sidecar.rerank.service import build_reranker

    svc = build_reranker(replace(lm_options, device="cpu", cache_size=0, shared_prefix=False))
    try:
        return svc.score(*pairs_100).scores
    finally:
        svc.close()


@pytest.mark.parametrize(
    "changes",
    [
        {"dtype": "bfloat16", "shared_prefix": False},
        {"dtype": "bfloat16", "shared_prefix": True},
        {"backend": "quanto", "quantization": "int8", "dtype": "bfloat16"},
        {"backend": "quanto", "quantization": "fp8", "dtype": "bfloat16"},
    ],
)
def test_cuda_backend_keeps_the_ranking(lm_options, pairs_100, cpu_reference, changes) -> None:
    from sidecar.rerank.service import build_reranker

    if changes.get("quantization") == "fp8" and (DEVICE != "cuda" or torch.cuda.get_device_capability() < (8, 9)):
        pytest.skip("fp8 needs a CUDA device of compute capability >= 8.9")
    svc = build_reranker(replace(lm_options, device=DEVICE, cache_size=0, **changes))
    try:
        svc.warmup()
        scores = svc.score(*pairs_100).scores
    finally:
        svc.close()
    assert svc.backend.device == DEVICE
    assert spearman(scores, cpu_reference) >= 0.9
