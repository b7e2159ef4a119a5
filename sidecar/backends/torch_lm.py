"""Qwen3-Reranker style causal LM on PyTorch: last position only, two rows of the LM head.

score = logit("yes") - logit("no") at the last prompt position (raw; sigmoid gives P(yes)).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, DynamicCache

from sidecar.backends.base import (
    Backend,
    EncodedPair,
    InputFormat,
    ModelNotFoundError,
    TokenizerSpec,
    model_key,
    resolve_device,
    resolve_model_dir,
)
from sidecar.rerank.options import RerankerOptions
from sidecar.rerank.prompt import answer_tokens, load_tokenizer

logger = logging.getLogger(__name__)

PREFIX_CACHE_ENTRIES = 16
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """Map "auto" to fp32 on CPU and bf16 on GPU."""
    if dtype == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return TORCH_DTYPES[dtype]


def tokenizer_file(model_dir: Path) -> Path:
    """Return model_dir/tokenizer.json or raise ModelNotFoundError naming RESCORE_MODEL."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise ModelNotFoundError(f"{model_dir} has no tokenizer.json; set RESCORE_MODEL to a full model directory")
    return path


def left_pad(batch: list[EncodedPair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return input_ids, attention_mask and position_ids, left padded to the longest item."""
    width = max(item.cost for item in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        ids[row, width - item.cost :] = torch.tensor(item.input_ids, dtype=torch.long)
        mask[row, width - item.cost :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def cache_tensors(cache: Any) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """Return a DynamicCache's (key, value) per layer; transformers 4.56+ and 5.x keep them in `layers`."""
    return tuple((layer.keys, layer.values) for layer in cache.layers)


class TorchLMBackend(Backend):
    """Score Qwen3-Reranker prompts with a transformers causal LM."""

    input_format = InputFormat.CAUSAL_LM_PROMPT

    def __init__(self, model: Any, *, tokenizer_path: Path, options: RerankerOptions, device: str) -> None:
        self._device = device
        self._options = options
        self._tokenizer_path = tokenizer_path
        answers = answer_tokens(load_tokenizer(tokenizer_path))
        head = model.get_output_embeddings().weight
        # Only the "yes" and "no" rows are ever needed; keep them in fp32, drop the 151k-row head.
        self._answer_rows = head[[answers.yes, answers.no]].detach().to(device=device, dtype=torch.float32).clone()
        self._decoder = self._prepare(model.get_decoder(), device)
        self._pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else answers.no
        self._prefix_kv: OrderedDict[tuple[int, ...], tuple[tuple[torch.Tensor, torch.Tensor], ...]] = OrderedDict()
        self._key = model_key(options.resolved_model, options.revision, self.quantization)

    @classmethod
    def from_options(cls, options: RerankerOptions) -> TorchLMBackend:
        """Load the model named by options.model (hub id or local path) onto the resolved device."""
        device = resolve_device(options.device)
        if options.num_threads and device == "cpu":
            torch.set_num_threads(options.num_threads)
        model_dir = resolve_model_dir(options.resolved_model, options.revision)
        started = time.perf_counter()
        try:
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=resolve_dtype(options.dtype, device))
        except OSError as exc:
            raise ModelNotFoundError(
                f"cannot load model weights from {model_dir}: {exc}; set RESCORE_MODEL to a model dir or hub id"
            ) from exc
        model.eval()
        logger.info("model_loaded backend=%s dir=%s device=%s took_s=%.1f", cls.__name__, model_dir, device,
                    time.perf_counter() - started)
        return cls(model, tokenizer_path=tokenizer_file(model_dir), options=options, device=device)

    def _prepare(self, decoder: torch.nn.Module, device: str) -> torch.nn.Module:
        """Move the decoder to its device; subclasses quantize here."""
        return decoder.to(device).eval()

    @property
    def quantization(self) -> str:
        """Return the weight quantization of this backend."""
        return "none"

    @property
    def model_key(self) -> str:
        return self._key

    @property
    def device(self) -> str:
        return self._device

    def tokenizer_spec(self) -> TokenizerSpec:
        return TokenizerSpec(tokenizer_file=self._tokenizer_path, max_length=self._options.max_length)

    def score(self, batch: list[EncodedPair]) -> list[float]:
        """Return logit(yes) - logit(no) at each prompt's last token."""
        with torch.inference_mode():
            if self._options.shared_prefix:
                return self._score_shared_prefix(batch)
            return self._score_padded(batch).tolist()

    def warmup(self) -> None:
        """Score one short prompt to initialise kernels and allocators."""
        self.score([EncodedPair(input_ids=[self._pad_id] * 8)])

    def health(self) -> dict[str, Any]:
        return {**super().health(), "quantization": self.quantization, "shared_prefix": self._options.shared_prefix}

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = hidden.float() @ self._answer_rows.T
        return (logits[:, 0] - logits[:, 1]).cpu()

    def _score_padded(self, batch: list[EncodedPair]) -> torch.Tensor:
        ids, mask, positions = (t.to(self._device) for t in left_pad(batch, self._pad_id))
        hidden = self._decoder(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
        return self._head(hidden.last_hidden_state[:, -1])

    def _score_shared_prefix(self, batch: list[EncodedPair]) -> list[float]:
        scores: list[float] = [0.0] * len(batch)
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, item in enumerate(batch):
            groups.setdefault(tuple(item.input_ids[: item.shared_prefix_len]), []).append(index)
        for prefix, indices in groups.items():
            items = [batch[i] for i in indices]
            result = self._score_with_prefix(prefix, items) if prefix else self._score_padded(items)
            for index, score in zip(indices, result.tolist(), strict=True):
                scores[index] = score
        return scores

    def _score_with_prefix(self, prefix: tuple[int, ...], items: list[EncodedPair]) -> torch.Tensor:
        """Run the documents' tails right-padded on top of the prefix KV cache, read each last token."""
        offset = len(prefix)
        tails = [item.input_ids[offset:] for item in items]
        width = max(len(tail) for tail in tails)
        ids = torch.full((len(items), width), self._pad_id, dtype=torch.long)
        for row, tail in enumerate(tails):
            ids[row, : len(tail)] = torch.tensor(tail, dtype=torch.long)
        kv = self._prefix_cache(prefix)
        # Right padding after a shared prefix: causal attention keeps pads out of real tokens.
        cache = DynamicCache(ddp_cache_data=[(k.expand(len(items), -1, -1, -1), v.expand(len(items), -1, -1, -1))
                                             for k, v in kv])
        cache_position = torch.arange(offset, offset + width, device=self._device)
        hidden = self._decoder(
            input_ids=ids.to(self._device),
            past_key_values=cache,
            cache_position=cache_position,
            position_ids=cache_position.unsqueeze(0).expand(len(items), -1),
            use_cache=True,
        ).last_hidden_state
        last = torch.tensor([len(tail) - 1 for tail in tails], device=self._device)
        return self._head(hidden[torch.arange(len(items), device=self._device), last])

    def _prefix_cache(self, prefix: tuple[int, ...]) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        cached = self._prefix_kv.get(prefix)
        if cached is not None:
            self._prefix_kv.move_to_end(prefix)
            return cached
        ids = torch.tensor([prefix], dtype=torch.long, device=self._device)
        out = self._decoder(input_ids=ids, use_cache=True)
        kv = cache_tensors(out.past_key_values)
        self._prefix_kv[prefix] = kv
        while len(self._prefix_kv) > PREFIX_CACHE_ENTRIES:
            self._prefix_kv.popitem(last=False)
        return kv
