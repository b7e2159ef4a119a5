"""The backend contract: score already-encoded batches, warm up, report health."""

from __future__ import annotations

import abc
import enum
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

logger = logging.getLogger(__name__)

MODELS_EXTRA = "pip install 'rescore-sidecar[models]'"


class RerankError(Exception):
    """Base of all rerank-engine errors; carries an error_type and an HTTP status."""

    error_type: ClassVar[str] = "rerank_error"
    http_status: ClassVar[int] = 500


class BackendError(RerankError):
    """The backend failed to score a batch (model failure, remote server error)."""

    error_type = "backend_error"
    http_status = 424


class BackendTimeoutError(BackendError):
    """A remote backend did not answer within its timeout."""

    error_type = "backend_timeout"
    http_status = 504


class BackendOverloadedError(RerankError):
    """The model server said it is too busy now (HTTP 429): load, not a fault.

    The request degrades like one the sidecar's own admission control sheds (status overloaded)
    and the circuit breaker does not count it.
    """

    error_type = "overloaded"
    http_status = 429


def is_overload(exc: BaseException) -> bool:
    """Whether exc says "too busy now" (the scheduler's OverloadedError, a model server's
    BackendOverloadedError): load to shed in first-stage order, never a fault for the breaker."""
    return getattr(exc, "error_type", None) == "overloaded"


class ModelNotFoundError(RerankError):
    """The configured model cannot be found locally or on the hub; names RESCORE_MODEL."""

    error_type = "model_not_found"
    http_status = 503


class MissingExtraError(RerankError):
    """A backend needs optional packages that are not installed."""

    error_type = "missing_extra"
    http_status = 503


class InputFormat(enum.Enum):
    """What a backend consumes; the service encodes requests accordingly."""

    CAUSAL_LM_PROMPT = "causal-lm-prompt"  # Qwen3-Reranker yes/no prompt token ids
    PAIR = "pair"  # cross-encoder (query, document) token ids with segment ids
    TEXT = "text"  # raw texts, for remote servers that tokenize themselves


@dataclass(frozen=True, slots=True)
class EncodedPair:
    """One (query, document) pair ready for a model: token ids, never text."""

    input_ids: list[int]
    token_type_ids: list[int] | None = None
    # Leading tokens shared by every document of the same query (prompt+instruction+query).
    shared_prefix_len: int = 0

    @property
    def cost(self) -> int:
        """Return the sequence length, the unit of the scheduler's token budget."""
        return len(self.input_ids)


@dataclass(frozen=True, slots=True)
class TextPair:
    """One (query, document) pair as text, only for backends with InputFormat.TEXT."""

    query: str
    document: str
    instruction: str

    @property
    def cost(self) -> int:
        """Return an approximate token count (4 characters per token) for batching."""
        return max(1, (len(self.query) + len(self.document)) // 4)


BatchItem = EncodedPair | TextPair


@dataclass(frozen=True, slots=True)
class TokenizerSpec:
    """Where the backend's tokenizer lives and the lengths it accepts."""

    tokenizer_file: Path
    max_length: int


class Backend(abc.ABC):
    """Scores batches of encoded pairs; one instance owns one model on one device."""

    input_format: ClassVar[InputFormat] = InputFormat.CAUSAL_LM_PROMPT

    @classmethod
    @abc.abstractmethod
    def from_options(cls, options: Any) -> Backend:
        """Build the backend from RerankerOptions (loading models, opening sessions)."""

    @property
    @abc.abstractmethod
    def model_key(self) -> str:
        """Return model+revision+quantization: the identity of a score, for caching."""

    @property
    @abc.abstractmethod
    def device(self) -> str:
        """Return the device the model runs on (one scheduler worker per device)."""

    @abc.abstractmethod
    def tokenizer_spec(self) -> TokenizerSpec | None:
        """Return the tokenizer to encode requests with, None for text backends."""

    @abc.abstractmethod
    def score(self, batch: list[BatchItem]) -> list[float]:
        """Return one raw relevance score per item, in batch order."""

    def warmup(self) -> None:
        """Run a small batch so the first request does not pay for lazy initialisation."""

    def health(self) -> dict[str, Any]:
        """Return a JSON-able description of the backend and its state."""
        return {"status": "ok", "backend": type(self).__name__, "model": self.model_key, "device": self.device}

    def close(self) -> None:
        """Release resources (sessions, connections)."""


def resolve_device(device: str) -> str:
    """Map "auto" to cuda when torch sees a GPU, else cpu; reject cuda without one."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendError("device=cuda (RESCORE_DEVICE) but torch sees no CUDA device")
    return device


def resolve_model_dir(model: str, revision: str = "", *, allow_patterns: list[str] | None = None) -> Path:
    """Return a local directory for a hub id or path; raise ModelNotFoundError naming RESCORE_MODEL."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or model.startswith((".", "~")):
        raise ModelNotFoundError(
            f"model directory {model!r} does not exist; set RESCORE_MODEL to a model dir or hub id"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise MissingExtraError(f"loading hub models needs huggingface_hub: {MODELS_EXTRA}") from exc
    try:
        # huggingface_hub honours HF_HUB_OFFLINE itself: offline, only the local cache is used.
        local = snapshot_download(repo_id=model, revision=revision or None, allow_patterns=allow_patterns)
    except Exception as exc:  # the hub raises many unrelated types for "not available"
        raise ModelNotFoundError(
            f"model {model!r} (revision {revision or 'main'!r}) is not available locally and could not be "
            f"downloaded ({type(exc).__name__}); set RESCORE_MODEL to a local model directory or a reachable hub id"
        ) from exc
    logger.info("model_resolved model=%s revision=%s dir=%s", model, revision or "main", local)
    return Path(local)


def model_key(model: str, revision: str, quantization: str) -> str:
    """Return the cache identity of a model: id@revision/quantization."""
    return f"{model}@{revision or 'main'}/{quantization}"
