"""The torch causal-LM backend with optimum-quanto int8 or fp8 weights."""

from __future__ import annotations

import logging

import torch
from optimum.quanto import freeze, qfloat8, qint8, quantize

from sidecar.backends.base import BackendError
from sidecar.backends.torch_lm import TorchLMBackend

logger = logging.getLogger(__name__)

WEIGHT_TYPES = {"int8": qint8, "fp8": qfloat8}
FP8_MIN_CAPABILITY = (8, 9)  # Ada / Hopper


def check_fp8_support(device: str) -> None:
    """Raise BackendError naming RESCORE_QUANTIZATION when a CUDA device lacks fp8."""
    if device == "cuda" and torch.cuda.get_device_capability() < FP8_MIN_CAPABILITY:
        raise BackendError(
            f"quantization=fp8 (RESCORE_QUANTIZATION) needs compute capability >= {FP8_MIN_CAPABILITY}, "
            f"this GPU has {torch.cuda.get_device_capability()}; use int8"
        )


class QuantoLMBackend(TorchLMBackend):
    """Quantize the decoder's linear weights with quanto; activations stay in the compute dtype."""

    @property
    def quantization(self) -> str:
        return self._options.resolved_quantization

    def _prepare(self, decoder: torch.nn.Module, device: str) -> torch.nn.Module:
        weights = self.quantization
        if weights == "fp8":
            check_fp8_support(device)
        decoder = decoder.to(device).eval()
        quantize(decoder, weights=WEIGHT_TYPES[weights])
        freeze(decoder)
        logger.info("quanto_quantized weights=%s device=%s", weights, device)
        return decoder
