"""Real tiny models for backend tests: a random Qwen3 saved with the real tokenizer, and MiniLM."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sidecar.rerank.options import RerankerOptions  # noqa: E402

WORDS = "river city music history energy market island film school war north house season species".split()


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Save the tiny random Qwen3 once per session and load it like a user's local model."""
    pytest.importorskip("torch")
    from sidecar.rerank.random_models import save_random_qwen3

    return save_random_qwen3("tiny", tmp_path_factory.mktemp("qwen3-tiny"))


@pytest.fixture(scope="session")
def lm_options(tiny_qwen_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RerankerOptions:
    """Options for the torch backend on the tiny model; other LM backends derive from them."""
    return RerankerOptions(backend="torch", model=str(tiny_qwen_dir), cache_size=1000, max_batch_size=32,
                           onnx_cache_dir=str(tmp_path_factory.mktemp("onnx-cache")))


@pytest.fixture(scope="session")
def pairs_100() -> tuple[str, list[str]]:
    """One query and 100 deterministic passages of 5-120 words."""
    rng = random.Random(7)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 120))) for _ in range(100)]
    return "history of the river city", docs
