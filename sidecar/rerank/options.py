"""Reranker engine options: one frozen value object, filled from RESCORE_<FIELD> by config.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("cross-encoder", "torch", "onnx", "quanto", "remote")
LM_BACKENDS = ("torch", "onnx", "quanto")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZATIONS = {
    "cross-encoder": ("auto", "none"),
    "torch": ("auto", "none"),
    "onnx": ("auto", "int8", "none"),
    "quanto": ("auto", "int8", "fp8"),
    "remote": ("auto", "none"),
}
REMOTE_APIS = ("vllm", "tei", "cohere", "sglang")
REMOTE_PROMPTS = ("none", "qwen3")
REMOTE_SCORES = ("auto", "raw", "probability")
DEFAULT_LM_MODEL = "Qwen/Qwen3-Reranker-8B"
# Measured on 2 CPU cores: batches of ~2k padded tokens ran 1.4-2x faster than 16k (cache locality).
CPU_TOKEN_BUDGET = 2048
GPU_TOKEN_BUDGET = 32768
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


class OptionsError(ValueError):
    """An invalid reranker option; the message names the field and its RESCORE_ variable."""


@dataclass(frozen=True, kw_only=True)
class RerankerOptions:
    """Validated settings of the rerank engine (backend, model, batching, cache, remote)."""

    # Scoring backend: cross-encoder (CPU default) | torch | onnx | quanto | remote.
    backend: str = "cross-encoder"
    # Hub id or local directory; "" = backend default (bundled MiniLM or Qwen/Qwen3-Reranker-8B).
    model: str = ""
    # Hub revision (branch, tag or commit) of the model; "" = main.
    revision: str = ""
    # Device: auto (cuda when available) | cpu | cuda.
    device: str = "auto"
    # Weights dtype: auto (fp32 on CPU, bf16 on GPU) | float32 | bfloat16 | float16.
    dtype: str = "auto"
    # Quantization: onnx int8|none, quanto int8|fp8; auto = int8 for both, none otherwise.
    quantization: str = "auto"
    # Maximum prompt length in tokens for causal-LM rerankers (cross-encoders use their own, 512).
    max_length: int = 8192
    # Padded tokens per batch (longest x count); 0 = auto: 2048 on CPU (cache-friendly), 32768 on GPU.
    token_budget: int = 0
    # Maximum number of pairs in one batch.
    max_batch_size: int = 64
    # LRU score cache entries; 0 disables the cache.
    cache_size: int = 20000
    # Bytes the score cache may hold per worker (keys are 16-byte digests, ~256 bytes an entry); 0 disables it.
    cache_bytes: int = 64 * 1024 * 1024
    # Redis shared by sidecar replicas for scores (e.g. redis://redis:6379/0); "" = this process only.
    redis_url: str = ""
    # Seconds a score stays in Redis.
    redis_ttl_s: int = 3600
    # Socket timeout of one Redis call; past it the search goes on with the local cache.
    redis_timeout_s: float = 0.1
    # Maximum pending pairs in the scheduler queue before requests are refused as overloaded.
    queue_size: int = 4096
    # Rerank requests scored at once per worker (admission control, separate from the I/O threads);
    # one more is answered at once with first-stage order (status overloaded). 0 = no limit.
    rerank_slots: int = 16
    # Niceness (Linux, 0..19) of the threads that run the model (the scheduler and ONNX Runtime's
    # pool): on a busy CPU they yield to the request threads, so plain traffic keeps engine speed
    # while reranks run; ONNX Runtime also stops spin-waiting. 0 = same priority as requests.
    model_nice: int = 10
    # Run a local model (every backend but remote) in a child process with its own session and the
    # niceness above, so its CPU time is charged to it and not to the worker that carries plain
    # traffic (sidecar/backends/model_process.py). false = in the worker's own process.
    model_process: bool = True
    # Default task instruction of the Qwen3-Reranker prompt (requests may override it).
    instruction: str = DEFAULT_INSTRUCTION
    # Where exported/quantized ONNX models are cached, keyed by model, revision and quantization.
    onnx_cache_dir: str = "~/.cache/rescore-sidecar/onnx"
    # Base URL(s) of the remote rerank servers (remote backend only), comma-separated, e.g.
    # http://gpu-1:8000,http://gpu-2:8000: calls go round-robin; a failed server is skipped.
    remote_url: str = ""
    # Remote request shape: vllm (/score) | tei (/rerank) | cohere (/v1/rerank) | sglang (/v1/rerank + instruct).
    remote_api: str = "vllm"
    # Prompt the sidecar applies for the remote model: none (raw query/document) | qwen3 (the official
    # Qwen3-Reranker prompt, split into query and document text as vLLM/TEI expect; SGLang formats it
    # itself from the instruction).
    remote_prompt: str = "none"
    # What the server's scores are: raw logits | probability (mapped back to logits) | auto (by API:
    # tei raw, vllm/cohere/sglang probability).
    remote_scores: str = "auto"
    # Timeout of one remote HTTP call in seconds.
    remote_timeout_s: float = 10.0
    # Seconds a failed remote server is skipped before it is tried again.
    remote_retry_after_s: float = 10.0
    # ONNX Runtime's CPU memory arena (faster allocation, but worker RSS grows with every new batch
    # shape; README "Memory"). Off by default.
    cpu_mem_arena: bool = False
    # CPU threads for torch/onnxruntime; 0 = library default.
    num_threads: int = 0
    # Reuse the prompt+instruction+query KV cache across a query's documents (torch, quanto).
    shared_prefix: bool = True
    # tokenizer.json that splits long documents into passages; "" = the backend's own tokenizer
    # (remote backends have none: whitespace-separated words are the tokens then).
    passage_tokenizer: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise OptionsError naming the first invalid field."""
        _check_choice("backend", self.backend, BACKENDS)
        _check_choice("device", self.device, DEVICES)
        _check_choice("dtype", self.dtype, DTYPES)
        _check_choice("quantization", self.quantization, QUANTIZATIONS[self.backend])
        _check_choice("remote_api", self.remote_api, REMOTE_APIS)
        _check_choice("remote_prompt", self.remote_prompt, REMOTE_PROMPTS)
        _check_choice("remote_scores", self.remote_scores, REMOTE_SCORES)
        for name in ("max_length", "max_batch_size"):
            _check_min(name, getattr(self, name), 1)
        for name in ("token_budget", "cache_size", "cache_bytes", "num_threads"):
            _check_min(name, getattr(self, name), 0)
        _check_min("queue_size", self.queue_size, 1)
        _check_min("rerank_slots", self.rerank_slots, 0)
        if not 0 <= self.model_nice <= 19:
            raise OptionsError(f"model_nice (RESCORE_MODEL_NICE) must be in 0..19, got {self.model_nice}")
        if self.max_length < 64:
            raise OptionsError(f"max_length (RESCORE_MAX_LENGTH) must be >= 64, got {self.max_length}")
        if self.remote_timeout_s <= 0:
            raise OptionsError(f"remote_timeout_s (RESCORE_REMOTE_TIMEOUT_S) must be > 0, got {self.remote_timeout_s}")
        if self.remote_retry_after_s < 0:
            raise OptionsError(f"remote_retry_after_s (RESCORE_REMOTE_RETRY_AFTER_S) must be >= 0, "
                               f"got {self.remote_retry_after_s}")
        if self.backend == "remote" and not self.remote_urls:
            raise OptionsError("remote_url (RESCORE_REMOTE_URL) is required with backend=remote")
        for url in self.remote_urls:
            if not url.startswith(("http://", "https://")):
                raise OptionsError(f"remote_url (RESCORE_REMOTE_URL) entries must be http(s) URLs, got {url!r}")
        if not self.instruction.strip():
            raise OptionsError("instruction (RESCORE_INSTRUCTION) must not be empty")
        if self.passage_tokenizer and not Path(self.passage_tokenizer).expanduser().is_file():
            raise OptionsError(f"passage_tokenizer (RESCORE_PASSAGE_TOKENIZER) is not a file: {self.passage_tokenizer}")

    @property
    def remote_urls(self) -> tuple[str, ...]:
        """Return the remote servers' base URLs (remote_url split on commas, trailing / removed)."""
        return tuple(url.strip().rstrip("/") for url in self.remote_url.split(",") if url.strip())

    @property
    def is_causal_lm(self) -> bool:
        """Whether the backend runs a Qwen3-style yes/no causal-LM reranker."""
        return self.backend in LM_BACKENDS

    @property
    def resolved_model(self) -> str:
        """Return the model id or path, applying the backend default for "" (cross-encoder: "")."""
        if self.model:
            return self.model
        return DEFAULT_LM_MODEL if self.is_causal_lm else ""

    @property
    def resolved_quantization(self) -> str:
        """Return the effective quantization: int8 for onnx/quanto on auto, none otherwise."""
        if self.quantization != "auto":
            return self.quantization
        return "int8" if self.backend in ("onnx", "quanto") else "none"

    def resolved_token_budget(self, device: str) -> int:
        """Return token_budget, or for 0 the measured-good default of the device."""
        if self.token_budget:
            return self.token_budget
        return CPU_TOKEN_BUDGET if device == "cpu" else GPU_TOKEN_BUDGET

    @property
    def onnx_cache_path(self) -> Path:
        """Return onnx_cache_dir with ~ expanded."""
        return Path(self.onnx_cache_dir).expanduser()


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise OptionsError(f"{name} (RESCORE_{name.upper()}) must be one of {list(choices)}, got {value!r}")


def _check_min(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise OptionsError(f"{name} (RESCORE_{name.upper()}) must be >= {minimum}, got {value}")
