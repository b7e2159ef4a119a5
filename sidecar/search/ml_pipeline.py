"""Wire OpenSearch to call the sidecar itself: ML Commons connector, remote model, rerank pipeline.

With the pipeline set as an index's `index.search.default_pipeline`, every search that carries
`ext.rerank.query_context` — from any client or dashboard, straight to OpenSearch — comes back
reranked by the sidecar's `/v1/rerank`. Searches without it (Dashboards, plain apps, the sidecar's
own first stage) make OpenSearch's rerank processor fail; the pipeline sets `ignore_failure`, so
they are answered in first-stage order instead of with HTTP 500. To rerank searches that cannot
carry `ext.rerank`, point the clients at the sidecar with a rerank policy (RESCORE_POLICIES_FILE).
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from opensearchpy import OpenSearch

from sidecar.search.templates import TEMPLATES_DIR

log = logging.getLogger(__name__)

ML = "/_plugins/_ml"


@dataclass(frozen=True)
class MlPipeline:
    """Ids of what install_ml_rerank() created or found."""

    connector_id: str
    model_id: str
    pipeline_id: str


def _load(name: str, directory: Path, **values: str) -> dict:
    text = (directory / "ml" / name).read_text()
    for key, value in values.items():
        text = text.replace("${" + key + "}", value)
    return json.loads(text)


def trust_endpoint(client: OpenSearch, sidecar_url: str, directory: Path = TEMPLATES_DIR) -> None:
    """Apply the ML Commons settings that let a connector call a local/private sidecar URL."""
    body = _load("cluster-settings.json", directory)
    patterns = body["persistent"]["plugins.ml_commons.trusted_connector_endpoints_regex"]
    own = "^" + re.escape(sidecar_url.rstrip("/")) + "/.*$"
    if own not in patterns:
        patterns.append(own)
    client.cluster.put_settings(body=body)


def _find_model(client: OpenSearch, name: str) -> dict | None:
    query = {"query": {"bool": {"must": [{"term": {"name.keyword": name}}],
                                "must_not": [{"exists": {"field": "chunk_number"}}]}}, "size": 1}
    try:
        hits = client.transport.perform_request("POST", f"{ML}/models/_search", body=query)["hits"]["hits"]
    except Exception:  # the ML index does not exist before the first registration
        return None
    return hits[0]["_source"] | {"_id": hits[0]["_id"]} if hits else None


def _wait_task(client: OpenSearch, task_id: str, timeout_s: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        task = client.transport.perform_request("GET", f"{ML}/tasks/{task_id}")
        if task.get("state") in ("COMPLETED", "FAILED", "COMPLETED_WITH_ERROR"):
            if task["state"] != "COMPLETED":
                raise RuntimeError(f"ML Commons task {task_id} ended {task['state']}: {task.get('error')}")
            return task
        if time.monotonic() > deadline:
            raise TimeoutError(f"ML Commons task {task_id} still {task.get('state')} after {timeout_s}s")
        time.sleep(0.5)


def install_ml_rerank(client: OpenSearch, sidecar_url: str, *, index: str | None = None,
                      pipeline_id: str = "rescore-sidecar-rerank", api_key: str = "none",
                      fields: tuple[str, ...] = ("title", "text"),
                      directory: Path = TEMPLATES_DIR) -> MlPipeline:
    """Create (or reuse) connector + model, deploy it, put the pipeline, optionally make it the index default."""
    trust_endpoint(client, sidecar_url, directory)
    model_name = _load("model.json", directory, CONNECTOR_ID="")["name"]
    existing = _find_model(client, model_name)
    connector_body = _load("connector.json", directory, SIDECAR_URL=sidecar_url.rstrip("/"), SIDECAR_API_KEY=api_key)
    if existing and existing.get("connector_id"):
        connector_id, model_id = existing["connector_id"], existing["_id"]
        # ML Commons refuses to update a connector that a deployed model uses.
        client.transport.perform_request("POST", f"{ML}/models/{model_id}/_undeploy")
        client.transport.perform_request("PUT", f"{ML}/connectors/{connector_id}", body={
            "parameters": connector_body["parameters"], "credential": connector_body["credential"]})
    else:
        connector_id = client.transport.perform_request(
            "POST", f"{ML}/connectors/_create", body=connector_body)["connector_id"]
        registered = client.transport.perform_request(
            "POST", f"{ML}/models/_register", body=_load("model.json", directory, CONNECTOR_ID=connector_id))
        model_id = registered.get("model_id") or _wait_task(client, registered["task_id"])["model_id"]
    deployed = client.transport.perform_request("POST", f"{ML}/models/{model_id}/_deploy")
    if "task_id" in deployed:
        _wait_task(client, deployed["task_id"])
    pipeline = _load("rerank-pipeline.json", directory, MODEL_ID=model_id)
    pipeline["response_processors"][0]["rerank"]["context"]["document_fields"] = list(fields)
    client.transport.perform_request("PUT", f"/_search/pipeline/{pipeline_id}", body=pipeline)
    if index:
        client.indices.put_settings(index=index, body={"index.search.default_pipeline": pipeline_id})
    log.info("ml_rerank_installed connector=%s model=%s pipeline=%s index=%s", connector_id, model_id,
             pipeline_id, index)
    return MlPipeline(connector_id=connector_id, model_id=model_id, pipeline_id=pipeline_id)
