"""One contract for every backend: batched == single, parity with fp32 torch, cache, health."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest

from sidecar.rerank.options import RerankerOptions
from sidecar.rerank.service import RerankService, build_reranker

pytestmark = pytest.mark.slow

# name -> (changes to the tiny-model torch options, batched-vs-single tolerance)
VARIANTS = {
    "torch-fp32": ({"shared_prefix": False}, 1e-4),
    "torch-fp32-shared-prefix": ({"shared_prefix": True}, 1e-4),
    "onnx-fp32": ({"backend": "onnx", "quantization": "none"}, 1e-4),
    # Dynamic INT8 quantizes activations per tensor: padding in a batch moves the scale a little.
    "onnx-int8": ({"backend": "onnx", "quantization": "int8"}, 5e-2),
    "quanto-int8": ({"backend": "quanto", "quantization": "int8"}, 1e-4),
}
# The bundled MiniLM is a dynamic-INT8 export (scores span about +-10): same effect, larger scale.
CROSS_ENCODER_TOLERANCE = 1.0


def spearman(a: list[float], b: list[float]) -> float:
    ranks_a = np.argsort(np.argsort(a)).astype(float)
    ranks_b = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


@pytest.fixture(scope="module", params=[*VARIANTS, "cross-encoder"])
def service(request, lm_options: RerankerOptions):
    if request.param == "cross-encoder":
        options = RerankerOptions(backend="cross-encoder", cache_size=1000)
    else:
        options = replace(lm_options, **VARIANTS[request.param][0])
    svc = build_reranker(options)
    yield Case(request.param, svc)
    svc.close()


@pytest.fixture(scope="module")
def reference(lm_options: RerankerOptions, pairs_100) -> list[float]:
    """fp32 torch scores of the 100 pairs, cache off."""
    svc = build_reranker(replace(lm_options, cache_size=0, shared_prefix=False))
    try:
        return svc.score(*pairs_100).scores
    finally:
        svc.close()


@dataclass(frozen=True)
class Case:
    name: str
    svc: RerankService

    @property
    def tolerance(self) -> float:
        return VARIANTS[self.name][1] if self.name in VARIANTS else CROSS_ENCODER_TOLERANCE


def test_batched_equals_single(service: Case, pairs_100) -> None:
    query, docs = pairs_100
    docs = docs[:12]
    service.svc.clear_cache()
    batched = service.svc.score(query, docs).scores
    service.svc.clear_cache()
    single = [service.svc.score(query, [doc]).scores[0] for doc in docs]
    np.testing.assert_allclose(batched, single, atol=service.tolerance, rtol=0)
    assert spearman(batched, single) >= 0.9


def test_matches_fp32_torch_reference(service: Case, pairs_100, reference) -> None:
    if service.name == "cross-encoder":
        pytest.skip("a different model: no fp32 torch reference")
    service.svc.clear_cache()
    scores = service.svc.score(*pairs_100).scores
    if service.name in ("torch-fp32-shared-prefix", "onnx-fp32"):
        np.testing.assert_allclose(scores, reference, atol=1e-4, rtol=0)
    else:
        assert spearman(scores, reference) >= 0.9


def test_cache_hits_return_identical_scores(service: Case, pairs_100) -> None:
    query, docs = pairs_100
    service.svc.clear_cache()
    first = service.svc.score(query, docs[:10])
    second = service.svc.score(query, docs[:10])
    assert (first.cache_hits, first.scored) == (0, 10)
    assert (second.cache_hits, second.scored, second.status) == (10, 0, "ok")
    assert second.scores == first.scores
    other = service.svc.score(query, docs[:10], instruction="A different task")
    assert other.cache_hits == 0 or service.name == "cross-encoder"


def test_warmup_and_health(service: Case) -> None:
    service.svc.warmup()
    health = service.svc.health()
    assert health["status"] == "ok"
    assert health["model"] == service.svc.model
    assert health["queue_load"] == 0


def test_empty_document_list(service: Case) -> None:
    result = service.svc.score("q", [])
    assert (result.scores, result.status) == ([], "ok")


def test_missing_model_names_the_setting(tmp_path) -> None:
    from sidecar.backends.base import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="RESCORE_MODEL"):
        build_reranker(RerankerOptions(backend="torch", model=str(tmp_path / "absent")))
    with pytest.raises(ModelNotFoundError, match="RESCORE_MODEL"):
        build_reranker(RerankerOptions(backend="torch", model="Qwen/Qwen3-Reranker-8B"))


def test_invalid_option_names_the_field() -> None:
    from sidecar.rerank.options import OptionsError

    with pytest.raises(OptionsError, match="RESCORE_BACKEND"):
        RerankerOptions(backend="tpu")
    with pytest.raises(OptionsError, match="RESCORE_QUANTIZATION"):
        RerankerOptions(backend="torch", quantization="int8")


def test_deadline_returns_unscored_documents_as_none(lm_options: RerankerOptions, pairs_100) -> None:
    svc = build_reranker(replace(lm_options, cache_size=0, max_batch_size=4))
    try:
        late = svc.score(*pairs_100, timeout_s=0.001)
        full = svc.score(*pairs_100)
    finally:
        svc.close()
    assert late.status in ("timeout", "partial")
    assert None in late.scores and late.scored == sum(s is not None for s in late.scores)
    assert (full.status, full.scored) == ("ok", 100)
