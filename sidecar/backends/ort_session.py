"""ONNX Runtime session creation shared by the ONNX backends (cross-encoder, exported causal LM)."""
from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from sidecar.backends.base import BackendError
from sidecar.rerank.options import RerankerOptions
from sidecar.rerank.priority import lowered_new_threads


def create_session(model_file: str | Path, options: RerankerOptions) -> ort.InferenceSession:
    """Open a session with full graph optimization on the device the options ask for."""
    session_options = ort.SessionOptions()
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ORT's CPU arena keeps every block it grew to for each new batch shape (varying batch sizes and
    # lengths): +400 MB per worker within minutes and still growing in the soak. Off by default.
    session_options.enable_cpu_mem_arena = options.cpu_mem_arena
    if options.num_threads:
        session_options.intra_op_num_threads = options.num_threads
    if options.model_nice:
        # Idle pool threads sleep instead of spinning: on a shared CPU spinning takes cycles from requests.
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with lowered_new_threads(options.model_nice):  # the session's thread pool starts here
        return ort.InferenceSession(str(model_file), session_options, providers=_providers(options.device))


def session_device(session: ort.InferenceSession) -> str:
    """Return "cuda" when the session runs on the CUDA provider, else "cpu"."""
    return "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"


def _providers(device: str) -> list[str]:
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise BackendError("device=cuda (RESCORE_DEVICE) but onnxruntime has no CUDAExecutionProvider")
    return ["CPUExecutionProvider"]
