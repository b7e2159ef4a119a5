"""Install the index mapping, stored search templates and search pipelines from es_templates/."""
from __future__ import annotations

import json
import logging
import time
import dataclasses
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass
from pathlib import Path

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from sidecar.api.errors import BadRequest
from sidecar.engine import Engine, engine_for_client
from sidecar.engine.base import TEMPLATE_SUFFIX, TEMPLATES_DIR

from sidecar.rerank.cache import ByteLRU, hashed_key
from sidecar.search.ingest import PASSAGE_VECTORS

log = logging.getLogger(__name__)

# Search modes (first stages) the evaluation, /ui and the stored templates offer; each engine
# maps a mode to its template id and search pipeline (Engine.modes).
MODES: tuple[str, ...] = ("bm25", "knn", "hybrid", "hybrid-rrf")


@dataclass(frozen=True)
class InstallReport:
    """What install() did: index created or kept, templates and pipelines written."""

    index_created: bool
    templates: list[str]
    pipelines: list[str]
    engine: str = ""
    # Template id -> the engine's error, for templates the engine refused (e.g. an Elasticsearch
    # without the lang-mustache module); the rest is installed anyway.
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    # Why the index was created with the engine's standard analysis instead of the mapping's
    # analyzers (a cluster without the analysis-common module); "" when it has them.
    analysis: str = ""


def index_mappings(directory: Path = TEMPLATES_DIR) -> list[str]:
    """Return the names of the index mappings in index/ (documents, products, ...)."""
    return sorted(p.stem for p in (directory / "index").glob("*.json"))


def index_body(directory: Path = TEMPLATES_DIR, *, dimension: int | None = None, mapping: str = "documents",
               engine: Engine | None = None) -> dict:
    """Return an index's settings and mappings (index/<mapping>.json), optionally with another vector
    size, in `engine`'s syntax (the files use the neutral, OpenSearch knn_vector form)."""
    path = directory / "index" / f"{mapping}.json"
    if not path.is_file():
        raise ValueError(f"unknown index mapping {mapping!r}; available: {', '.join(index_mappings(directory))}")
    body = json.loads(path.read_text())
    if dimension is not None:
        properties = body["mappings"]["properties"]
        properties["embedding"]["dimension"] = dimension
        if PASSAGE_VECTORS in properties:  # a long document's passage vectors (search/ingest.py)
            properties[PASSAGE_VECTORS]["properties"]["embedding"]["dimension"] = dimension
    return engine.index_body(body) if engine is not None else body


def install(client: OpenSearch, index: str | None = None, *, recreate: bool = False,
            dimension: int | None = None, directory: Path = TEMPLATES_DIR, mapping: str = "documents",
            engine: Engine | None = None) -> InstallReport:
    """Put the engine's templates and pipelines in place (idempotent); create `index`
    (index/<mapping>.json) if given and absent. The engine is detected when not given."""
    engine = engine or engine_for_client(client)
    created, analysis = False, ""
    if index:
        exists = client.indices.exists(index=index)
        if exists and recreate:
            client.indices.delete(index=index)
            exists = False
        if not exists:
            body = index_body(directory, dimension=dimension, mapping=mapping, engine=engine)
            try:
                client.indices.create(index=index, body=body)
            except TransportError as exc:
                # An engine without the language analyzers (Elasticsearch's integ-test-zip lacks
                # analysis-common) refuses the mapping: create it with standard analysis, and say so.
                if exc.status_code != 400 or not _analyzers(body) or engine.analysis_module in engine.modules(client):
                    raise
                analysis = (f"standard analysis instead of {', '.join(sorted(set(_analyzers(body).values())))}: "
                            f"{engine.name} here lacks the {engine.analysis_module} module ({_reason(exc)})")
                log.warning("index_analysis_fallback engine=%s index=%s reason=%r", engine.name, index, analysis)
                client.indices.create(index=index, body=_without_analyzers(body))
            created = True
    templates = engine.search_templates(directory)
    installed, failed = [], {}
    for template_id, source in templates.items():
        try:
            client.put_script(id=template_id, body={"script": {"lang": "mustache", "source": source}})
            installed.append(template_id)
        except TransportError as exc:
            if not isinstance(exc.status_code, int) or exc.status_code >= 500:
                raise
            failed[template_id] = _reason(exc)
            log.warning("template_refused engine=%s id=%s reason=%s", engine.name, template_id, failed[template_id])
    pipes = engine.search_pipelines(directory)
    for pipeline_id, body in pipes.items():
        engine.install_pipeline(client, pipeline_id, body)
    log.info("installed engine=%s index=%s created=%s templates=%s pipelines=%s", engine.name, index, created,
             ",".join(installed), ",".join(pipes))
    return InstallReport(index_created=created, templates=installed, pipelines=list(pipes), engine=engine.name,
                         failed=failed, analysis=analysis)


def _analyzers(body: dict) -> dict[str, str]:
    """{field: analyzer} of the mapping's top-level text fields that name one."""
    properties = body.get("mappings", {}).get("properties", {})
    return {name: spec["analyzer"] for name, spec in properties.items() if isinstance(spec, dict) and "analyzer" in spec}


def _without_analyzers(body: dict) -> dict:
    properties = {name: ({k: v for k, v in spec.items() if k != "analyzer"} if isinstance(spec, dict) else spec)
                  for name, spec in body["mappings"]["properties"].items()}
    return {**body, "mappings": {**body["mappings"], "properties": properties}}


def _reason(exc: TransportError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    if isinstance(error, dict):
        cause = (error.get("root_cause") or [error])[0]
        return f"{cause.get('type')}: {cause.get('reason')}"
    return str(exc.error)


def fill_query_vector(template_request: Any, vector_templates: frozenset[str],
                      embed: Callable[[str], list[float]], field: str = "params") -> dict | None:
    """Return the request with params.query_vector embedded from params.query_text when it runs a
    stored kNN/hybrid template without a vector (the embedder is the one ingest uses); None when
    there is nothing to fill. Neither given: a 400 naming params.query_vector."""
    if not isinstance(template_request, dict) or template_request.get("id") not in vector_templates:
        return None
    params = template_request.get("params")
    params = params if isinstance(params, dict) else {}
    if "query_vector" in params:
        return None
    text = params.get("query_text")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(f"stored template {template_request['id']!r} needs params.query_vector, or "
                         "params.query_text for the sidecar to embed", field=f"{field}.query_vector")
    return {**template_request, "params": {**params, "query_vector": embed(text)}}


class TemplateInspector:
    """Decide cheaply whether a search-template request may render a rerank block.

    Rendering costs an extra round trip, so the proxy renders only when the params mention
    rerank or the template source does. Whether a stored template mentions rerank is cached for
    `ttl_s` seconds under a digest of its id, within cache_bytes (RESCORE_TEMPLATE_CACHE_BYTES):
    ids come from requests and may be long or made up. The client is the caller client: a lookup
    the engine refuses the caller means "render to know".
    """

    def __init__(self, client: OpenSearch, ttl_s: float = 30.0, cache_bytes: int = 1024 * 1024) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._sources: ByteLRU[tuple[float, bool]] = ByteLRU(cache_bytes)

    def may_rerank(self, template_request: dict) -> bool:
        params = template_request.get("params")
        if isinstance(params, dict) and "rerank" in params:
            return True
        source = template_request.get("source")
        if source is not None:
            return "rerank" in (source if isinstance(source, str) else json.dumps(source))
        template_id = template_request.get("id")
        return isinstance(template_id, str) and self._stored_mentions_rerank(template_id)

    def _stored_mentions_rerank(self, template_id: str) -> bool:
        now = time.monotonic()
        key = hashed_key(template_id)
        cached = self._sources.get(key)
        if cached and now - cached[0] < self._ttl_s:
            return cached[1]
        try:
            script = self._client.get_script(id=template_id)
            mentions = "rerank" in json.dumps(script.get("script", {}).get("source", ""))
        except Exception as exc:  # unknown id or OpenSearch down: pass through and let OpenSearch answer
            if getattr(exc, "status_code", None) in (401, 403):
                # The client reads as the caller, who may search with a template without being allowed
                # to read scripts: render it (as the caller too), and let the rendered body decide.
                return True
            mentions = False
        self._sources.put(key, (now, mentions))
        return mentions
