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


def rendered_request(mode: str, query_text: str, *, engine: Engine, **kwargs) -> tuple[dict, dict]:
    """Return (search body, query-string params): what template_request's stored template renders to,
    rendered here from the same template file (for an engine without lang-mustache)."""
    body, query = template_request(mode, query_text, engine=engine, **kwargs)
    return engine.search_body(mode, body["params"]), query


def search(client: OpenSearch, index: str, mode: str, query_text: str, *, embedder=None,
           size: int = 10, from_: int = 0, engine: Engine | None = None, templated: bool = True) -> dict:
    """Run one first-stage search and return the engine's response (engine detected if not given):
    through the stored template, or with templated=False the body it renders, rendered here."""
    vector = embedder.embed_query(query_text) if mode in VECTOR_MODES and embedder is not None else None
    engine = engine or engine_for_client(client)
    if not templated:
        body, query = rendered_request(mode, query_text, engine=engine, size=size, from_=from_, query_vector=vector)
        return client.search(index=index, body=body, params=query)
    body, query = template_request(mode, query_text, engine=engine, size=size, from_=from_, query_vector=vector)
    return client.search_template(index=index, body=body, params=query)
