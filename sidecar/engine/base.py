"""What every engine provides: the parts of a request, mapping and install that differ by engine."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from sidecar.api import errors  # (module import: api.errors itself imports engine.client)

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "es_templates"
TEMPLATE_SUFFIX = ".mustache.json"
# The reranking retriever the sidecar serves itself on both engines.
RERANK_RETRIEVER = "text_similarity_reranker"


class Engine:
    """One search engine behind the sidecar. Subclasses: OpenSearch and Elasticsearch."""

    name = "engine"
    # Search mode -> (stored template id, search pipeline or None).
    modes: dict[str, tuple[str, str | None]] = {}
    # Directory (under es_templates/) of this engine's stored search templates.
    templates_subdir = "search"
    # Search mode -> the engine module its first stage needs beyond the core (none by default).
    mode_modules: dict[str, str] = {}
    # The module with the language analyzers (`english`) that es_templates/index/documents.json names.
    analysis_module = "analysis-common"
    # Whether Elasticsearch clients accept the engine's own answers (product header, media types).
    speaks_elastic_clients = False
    # Whether the engine has the async search API (POST /<index>/_async_search, GET /_async_search/<id>).
    has_async_search = False

    def first_stage(self, retriever: dict, where: str) -> tuple[dict, dict[str, str]]:
        """Return (search body keys, query params) that run `retriever` as a first stage."""
        raise NotImplementedError

    def vector_field(self, spec: dict) -> dict:
        """Return the mapping of a vector field written in the neutral (knn_vector) form."""
        raise NotImplementedError

    def index_settings(self, settings: dict) -> dict:
        """Return index settings for this engine (the neutral form enables OpenSearch's knn)."""
        return settings

    def index_body(self, body: dict) -> dict:
        """Return an index body (es_templates/index/*.json, neutral form) in this engine's syntax."""
        body = copy.deepcopy(body)
        if isinstance(body.get("settings"), dict):
            body["settings"] = self.index_settings(body["settings"])
        self._vector_fields(body.get("mappings", {}).get("properties", {}))
        return body

    def _vector_fields(self, properties: dict) -> None:
        """Rewrite the knn_vector fields of properties in place, inside nested and object fields too."""
        for name, spec in list(properties.items()):
            if isinstance(spec, dict) and spec.get("type") == "knn_vector":
                properties[name] = self.vector_field(spec)
            elif isinstance(spec, dict) and isinstance(spec.get("properties"), dict):
                self._vector_fields(spec["properties"])

    def search_templates(self, directory: Path = TEMPLATES_DIR) -> dict[str, str]:
        """Return {template id: mustache source} of this engine's stored search templates."""
        folder = directory / self.templates_subdir
        return {p.name[: -len(TEMPLATE_SUFFIX)]: p.read_text() for p in sorted(folder.glob(f"*{TEMPLATE_SUFFIX}"))}

    def search_body(self, mode: str, params: dict[str, Any], directory: Path = TEMPLATES_DIR) -> dict:
        """Return the search body `mode`'s stored template renders for `params`, rendered here (for an
        engine that cannot render templates, e.g. Elasticsearch without lang-mustache). Run it with the
        mode's search pipeline, as the stored template runs."""
        from sidecar.engine import mustache

        template_id = self.modes[mode][0]
        path = directory / self.templates_subdir / f"{template_id}{TEMPLATE_SUFFIX}"
        return json.loads(mustache.render(path.read_text(), params))

    def modules(self, client) -> frozenset[str]:
        """Return the names of the modules and plugins of the cluster behind `client`."""
        nodes = client.nodes.info(metric="plugins")["nodes"].values()
        return frozenset(m["name"] for node in nodes for m in node.get("modules", []) + node.get("plugins", []))

    def missing_module(self, client, mode: str) -> str | None:
        """Return the module `mode` needs that the cluster behind `client` lacks, else None."""
        module = self.mode_modules.get(mode)
        if module is None:
            return None
        return None if module in self.modules(client) else module

    def search_pipelines(self, directory: Path = TEMPLATES_DIR) -> dict[str, dict]:
        """Return {pipeline id: body} of the search pipelines this engine needs (none by default)."""
        return {}

    def install_pipeline(self, client, pipeline_id: str, body: dict) -> None:
        raise NotImplementedError

    def vector_templates(self) -> frozenset[str]:
        """Return the ids of the stored templates that take a query_vector."""
        return frozenset(template for mode, (template, _) in self.modes.items() if mode != "bm25")


def child_retrievers(retriever: dict, where: str) -> list[tuple[str, dict]]:
    """Return (path, retriever object) of the direct children of one retriever object.

    Children sit under `retriever` (one) or `retrievers` (a list of retriever objects, or of
    {"retriever": ..., "weight": ...} entries as the linear retriever writes them).
    """
    out: list[tuple[str, dict]] = []
    for kind, spec in retriever.items():
        if not isinstance(spec, dict):
            continue
        if isinstance(spec.get("retriever"), dict):
            out.append((f"{where}.{kind}.retriever", spec["retriever"]))
        for i, entry in enumerate(spec.get("retrievers") or [] if isinstance(spec.get("retrievers"), list) else []):
            if isinstance(entry, dict) and isinstance(entry.get("retriever"), dict):
                out.append((f"{where}.{kind}.retrievers[{i}].retriever", entry["retriever"]))
            elif isinstance(entry, dict):
                out.append((f"{where}.{kind}.retrievers[{i}]", entry))
    return out


def require_object(value: Any, field: str) -> None:
    if not isinstance(value, dict):
        raise errors.ValidationFailed("must be a JSON object", field=field)


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())
