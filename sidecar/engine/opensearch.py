"""OpenSearch: no retrievers (they are translated into queries and search pipelines), knn_vector
fields, stored templates in es_templates/search and search pipelines in es_templates/pipelines."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sidecar.api import errors  # (module import: api.errors itself imports engine.client)
from sidecar.engine.base import TEMPLATES_DIR, Engine, as_list, require_object


class OpenSearchEngine(Engine):
    name = "opensearch"
    modes = {
        "bm25": ("rescore-bm25", None),
        "knn": ("rescore-knn", None),
        "hybrid": ("rescore-hybrid", "rescore-hybrid-minmax"),
        "hybrid-rrf": ("rescore-hybrid", "rescore-hybrid-rrf"),
    }
    templates_subdir = "search"

    def first_stage(self, retriever: dict, where: str) -> tuple[dict, dict[str, str]]:
        return _translate_retriever(retriever, where)

    def vector_field(self, spec: dict) -> dict:
        return spec

    def search_pipelines(self, directory: Path = TEMPLATES_DIR) -> dict[str, dict]:
        return {p.stem: json.loads(p.read_text()) for p in sorted((directory / "pipelines").glob("*.json"))}

    def install_pipeline(self, client, pipeline_id: str, body: dict) -> None:
        client.transport.perform_request("PUT", f"/_search/pipeline/{pipeline_id}", body=body)


def _translate_retriever(retriever: Any, where: str) -> tuple[dict, dict[str, str]]:
    """Translate an ES retriever into OpenSearch body keys (and query params)."""
    require_object(retriever, where)
    if len(retriever) != 1:
        raise errors.ValidationFailed("a retriever object must have exactly one type", field=where)
    kind, spec = next(iter(retriever.items()))
    require_object(spec, f"{where}.{kind}")
    if kind == "standard":
        out = {k: spec[k] for k in ("query", "sort", "min_score", "collapse", "post_filter") if k in spec}
        if "filter" in spec:
            query = out.get("query", {"match_all": {}})
            out["query"] = {"bool": {"must": [query], "filter": as_list(spec["filter"])}}
        return out, {}
    if kind == "knn":
        for key in ("field", "query_vector", "k"):
            if key not in spec:
                raise errors.ValidationFailed(f"knn retriever needs {key}", field=f"{where}.knn.{key}")
        knn: dict[str, Any] = {"vector": spec["query_vector"], "k": spec["k"]}
        if "filter" in spec:
            knn["filter"] = {"bool": {"filter": as_list(spec["filter"])}}
        return {"query": {"knn": {spec["field"]: knn}}}, {}
    if kind == "rrf":
        subs = spec.get("retrievers")
        if not isinstance(subs, list) or len(subs) < 2:
            raise errors.ValidationFailed("rrf retriever needs a list of at least two retrievers", field=f"{where}.rrf.retrievers")
        queries = []
        for i, sub in enumerate(subs):
            translated, _ = _translate_retriever(sub, f"{where}.rrf.retrievers[{i}]")
            queries.append(translated.get("query", {"match_all": {}}))
        return {"query": {"hybrid": {"queries": queries}}}, {"search_pipeline": "rescore-hybrid-rrf"}
    raise errors.ValidationFailed(f"unsupported retriever type {kind!r} on OpenSearch (standard, knn, rrf, "
                           "text_similarity_reranker)", field=f"{where}.{kind}")
