"""Elasticsearch: retrievers run natively (the sidecar serves only text_similarity_reranker),
dense_vector fields, stored templates in es_templates/elasticsearch/search, no search pipelines."""
from __future__ import annotations

from sidecar.engine.base import Engine, require_object

# knn_vector space_type (neutral mapping form) -> dense_vector similarity.
_SIMILARITY = {"cosinesimil": "cosine", "l2": "l2_norm", "innerproduct": "max_inner_product"}


class ElasticsearchEngine(Engine):
    name = "elasticsearch"
    has_async_search = True
    modes = {
        "bm25": ("rescore-bm25", None),
        "knn": ("rescore-knn", None),
        "hybrid": ("rescore-hybrid", None),        # linear retriever, minmax-normalized
        "hybrid-rrf": ("rescore-hybrid-rrf", None),  # rrf retriever
    }
    templates_subdir = "elasticsearch/search"
    # The linear and rrf retrievers come with the rank-rrf module (absent from the integ-test-zip).
    mode_modules = {"hybrid": "rank-rrf", "hybrid-rrf": "rank-rrf"}
    speaks_elastic_clients = True

    def first_stage(self, retriever: dict, where: str) -> tuple[dict, dict[str, str]]:
        require_object(retriever, where)
        return {"retriever": retriever}, {}

    def index_settings(self, settings: dict) -> dict:
        index = settings.get("index")
        if isinstance(index, dict):
            settings = {**settings, "index": {k: v for k, v in index.items() if k != "knn"}}
        return settings

    def vector_field(self, spec: dict) -> dict:
        method = spec.get("method") if isinstance(spec.get("method"), dict) else {}
        parameters = method.get("parameters") if isinstance(method.get("parameters"), dict) else {}
        field = {
            "type": "dense_vector",
            "dims": spec["dimension"],
            "index": True,
            "similarity": _SIMILARITY.get(method.get("space_type", "cosinesimil"), "cosine"),
        }
        options = {k: parameters[k] for k in ("m", "ef_construction") if k in parameters}
        if options:
            field["index_options"] = {"type": "hnsw", **options}
        return field
