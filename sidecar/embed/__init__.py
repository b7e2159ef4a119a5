"""Query/document embedder for the kNN side of first-stage recall."""
from sidecar.embed.onnx_embedder import EmbedderUnavailable, OnnxEmbedder, default_model_dir

__all__ = ["EmbedderUnavailable", "OnnxEmbedder", "default_model_dir"]
