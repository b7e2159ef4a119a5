"""Backend registry: name -> class path, imported only when that backend is built."""

from __future__ import annotations

import importlib

from sidecar.backends.base import MODELS_EXTRA, Backend, MissingExtraError
from sidecar.rerank.options import RerankerOptions

REGISTRY: dict[str, str] = {
    "cross-encoder": "sidecar.backends.cross_encoder:CrossEncoderBackend",
    "torch": "sidecar.backends.torch_lm:TorchLMBackend",
    "onnx": "sidecar.backends.onnx_lm:OnnxLMBackend",
    "quanto": "sidecar.backends.quanto_lm:QuantoLMBackend",
    "remote": "sidecar.backends.remote:RemoteBackend",
}


def backend_class(name: str) -> type[Backend]:
    """Import and return the backend class registered under name."""
    module_name, _, class_name = REGISTRY[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("sidecar"):
            raise
        raise MissingExtraError(f"backend {name!r} needs {exc.name!r}: {MODELS_EXTRA}") from exc
    return getattr(module, class_name)


def create_backend(options: RerankerOptions) -> Backend:
    """Build the backend named by options.backend."""
    return backend_class(options.backend).from_options(options)


__all__ = ["REGISTRY", "backend_class", "create_backend"]
