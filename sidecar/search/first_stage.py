"""First-stage recall through the stored search templates (bm25, knn, hybrid, hybrid-rrf)."""
from __future__ import annotations

from typing import Any

from opensearchpy import OpenSearch

from sidecar.engine import Engine, engine_for_client
from sidecar.search.templates import MODES

VECTOR_MODES = frozenset({"knn", "hybrid", "hybrid-rrf"})


class UnknownMode(ValueError):
    """The requested search mode has no stored template."""


def template_request(mode: str, query_text: str, *, engine: Engine, size: int = 10, from_: int = 0,
                     query_vector: list[float] | None = None, k: int | None = None) -> tuple[dict, dict]:
    """Return (search/template body, query-string params) for one mode on `engine`."""
    if mode not in MODES:
        raise UnknownMode(f"unknown search mode {mode!r}; expected one of {', '.join(MODES)}")
    template_id, pipeline = engine.modes[mode]
    params: dict[str, Any] = {"query_text": query_text, "size": size, "from": from_}
    if mode in VECTOR_MODES:
        if query_vector is None:
            raise ValueError(f"mode {mode!r} needs a query vector")
        params["query_vector"] = query_vector
        params["k"] = k or max(size + from_, 10)
    query = {"search_pipeline": pipeline} if pipeline else {}
    return {"id": template_id, "params": params}, query


def search(client: OpenSearch, index: str, mode: str, query_text: str, *, embedder=None,
           size: int = 10, from_: int = 0, engine: Engine | None = None) -> dict:
    """Run one templated first-stage search and return the engine's response (engine detected if not given)."""
    vector = embedder.embed_query(query_text) if mode in VECTOR_MODES and embedder is not None else None
    body, query = template_request(mode, query_text, engine=engine or engine_for_client(client), size=size,
                                   from_=from_, query_vector=vector)
    return client.search_template(index=index, body=body, params=query)
