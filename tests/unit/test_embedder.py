import numpy as np
import pytest

from sidecar.embed import EmbedderUnavailable, OnnxEmbedder


def test_vectors_are_unit_length_and_batch_equals_single(embedder):
    texts = ["The cat sat on the mat.", "Stock markets fell on Monday.", "x" * 2000]
    batch = embedder.embed_documents(texts)
    assert batch.shape == (3, embedder.dimension) == (3, 384)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    # The bundled model is dynamic INT8: activation scales depend on the batch, so batched and
    # single vectors agree closely but not bit for bit.
    for i, text in enumerate(texts):
        assert float(embedder.embed_documents([text])[0] @ batch[i]) > 0.98


def test_paraphrase_is_closer_than_unrelated_text(embedder):
    query = np.array(embedder.embed_query("repair flat bicycle tire"))
    docs = embedder.embed_documents([
        "Fixing a punctured bike tyre: patch the inner tube.",
        "Compound interest makes savings grow exponentially.",
    ])
    similarity = docs @ query
    assert similarity[0] > similarity[1] + 0.1


def test_missing_model_names_the_setting(tmp_path):
    with pytest.raises(EmbedderUnavailable, match="RESCORE_EMBED_MODEL_DIR"):
        OnnxEmbedder(tmp_path)


def test_empty_input_gives_empty_matrix(embedder):
    assert embedder.embed_documents([]).shape == (0, 384)
