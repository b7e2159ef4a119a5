"""Install the index mapping, stored search templates and search pipelines from es_templates/."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from opensearchpy import OpenSearch

from sidecar.rerank.cache import ByteLRU, hashed_key

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "es_templates"
TEMPLATE_SUFFIX = ".mustache.json"

# Search mode -> (stored template id, search pipeline or None). The evaluation and the
# search flow use these names; the files in es_templates/ define them.
MODES: dict[str, tuple[str, str | None]] = {
    "bm25": ("rescore-bm25", None),
    "knn": ("rescore-knn", None),
    "hybrid": ("rescore-hybrid", "rescore-hybrid-minmax"),
    "hybrid-rrf": ("rescore-hybrid", "rescore-hybrid-rrf"),
}


@dataclass(frozen=True)
class InstallReport:
    """What install() did: index created or kept, templates and pipelines written."""

    index_created: bool
    templates: list[str]
    pipelines: list[str]


def stored_templates(directory: Path = TEMPLATES_DIR) -> dict[str, str]:
    """Return {template id: mustache source} for every search/*.mustache.json file."""
    return {
        path.name[: -len(TEMPLATE_SUFFIX)]: path.read_text()
        for path in sorted((directory / "search").glob(f"*{TEMPLATE_SUFFIX}"))
    }


def pipelines(directory: Path = TEMPLATES_DIR) -> dict[str, dict]:
    """Return {pipeline id: body} for every pipelines/*.json search pipeline."""
    return {p.stem: json.loads(p.read_text()) for p in sorted((directory / "pipelines").glob("*.json"))}


def index_mappings(directory: Path = TEMPLATES_DIR) -> list[str]:
    """Return the names of the index mappings in index/ (documents, products, ...)."""
    return sorted(p.stem for p in (directory / "index").glob("*.json"))


def index_body(directory: Path = TEMPLATES_DIR, *, dimension: int | None = None, mapping: str = "documents") -> dict:
    """Return an index's settings and mappings (index/<mapping>.json), optionally with another vector size."""
    path = directory / "index" / f"{mapping}.json"
    if not path.is_file():
        raise ValueError(f"unknown index mapping {mapping!r}; available: {', '.join(index_mappings(directory))}")
    body = json.loads(path.read_text())
    if dimension is not None:
        body["mappings"]["properties"]["embedding"]["dimension"] = dimension
    return body


def install(client: OpenSearch, index: str | None = None, *, recreate: bool = False,
            dimension: int | None = None, directory: Path = TEMPLATES_DIR, mapping: str = "documents") -> InstallReport:
    """Put templates and pipelines in place (idempotent); create `index` (index/<mapping>.json) if given and absent."""
    created = False
    if index:
        exists = client.indices.exists(index=index)
        if exists and recreate:
            client.indices.delete(index=index)
            exists = False
        if not exists:
            client.indices.create(index=index, body=index_body(directory, dimension=dimension, mapping=mapping))
            created = True
    templates = stored_templates(directory)
    for template_id, source in templates.items():
        client.put_script(id=template_id, body={"script": {"lang": "mustache", "source": source}})
    pipes = pipelines(directory)
    for pipeline_id, body in pipes.items():
        client.transport.perform_request("PUT", f"/_search/pipeline/{pipeline_id}", body=body)
    log.info("installed index=%s created=%s templates=%s pipelines=%s", index, created,
             ",".join(templates), ",".join(pipes))
    return InstallReport(index_created=created, templates=list(templates), pipelines=list(pipes))


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
