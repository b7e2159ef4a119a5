"""The engine layer (DESIGN.md §8): everything that differs between OpenSearch and Elasticsearch.

`resolve()` names the engine behind the configured URL: set by RESCORE_ENGINE, or detected from
`GET /` (OpenSearch says `version.distribution: opensearch`; Elasticsearch sends the
`X-Elastic-Product` header, even on the 405 its integ-test build answers there). EngineRef keeps
the answer and asks again after the engine was unreachable (it may have been replaced).
"""
from __future__ import annotations

import json
import logging
import threading

from sidecar.engine.base import Engine
from sidecar.engine.elasticsearch import ElasticsearchEngine
from sidecar.engine.opensearch import OpenSearchEngine

log = logging.getLogger(__name__)

ENGINES: dict[str, Engine] = {"opensearch": OpenSearchEngine(), "elasticsearch": ElasticsearchEngine()}
# The engine assumed by library calls that are not told one (the sidecar always tells).
DEFAULT_ENGINE: Engine = ENGINES["opensearch"]

__all__ = ["ENGINES", "Engine", "EngineRef", "detect", "engine_named"]


def engine_named(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; expected one of {', '.join(ENGINES)}") from None


def detect(status: int, headers: list[tuple[str, str]] | dict, body: bytes) -> Engine:
    """Return the engine that answered `GET /` with this status, headers and body."""
    items = headers.items() if isinstance(headers, dict) else headers
    items = list(items)
    if any(k.lower() == "x-elastic-product" and v.strip().lower() == "elasticsearch" for k, v in items):
        return ENGINES["elasticsearch"]
    # A secured Elasticsearch asked without credentials: 401 from its realm "security" (OpenSearch's
    # security plugin names its realm "OpenSearch Security").
    if status == 401 and any(k.lower() == "www-authenticate" and 'realm="security"' in v for k, v in items):
        return ENGINES["elasticsearch"]
    if status == 401 and any(k.lower() == "www-authenticate" and "opensearch security" in v.lower() for k, v in items):
        return ENGINES["opensearch"]
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        parsed = {}
    version = parsed.get("version") if isinstance(parsed, dict) else None
    if isinstance(version, dict) and version.get("distribution") == "opensearch":
        return ENGINES["opensearch"]
    if isinstance(parsed, dict) and parsed.get("tagline") == "You Know, for Search":
        return ENGINES["elasticsearch"]
    log.warning("engine_detect status=%d result=unknown; assuming opensearch (set RESCORE_ENGINE)", status)
    return ENGINES["opensearch"]


class EngineRef:
    """The engine behind one gateway: fixed by the setting, or detected.

    Detection is the sidecar's own bookkeeping (service account): once at start-up, again by
    `/ready` after the engine was unreachable (it may have come back as another engine), and on
    first use only when start-up could not reach it. A caller's request never triggers it otherwise.
    """

    def __init__(self, setting: str, gateway) -> None:
        self._fixed = None if setting == "auto" else engine_named(setting)
        self._gateway = gateway
        self._engine: Engine | None = None
        self._seen_failures = -1
        self._lock = threading.Lock()

    def get(self) -> Engine:
        if self._fixed is not None:
            return self._fixed
        if self._engine is None:
            self.refresh()
        return self._engine

    def refresh(self) -> Engine:
        """Detect the engine unless it is fixed or known with no connection failure since."""
        if self._fixed is not None:
            return self._fixed
        with self._lock:
            failures = self._gateway.failures
            if self._engine is None or failures != self._seen_failures:
                upstream = self._gateway.forward("GET", "/", b"", [], b"", service_account=True)
                engine = detect(upstream.status, upstream.headers, upstream.body)
                if self._engine is not None and engine is not self._engine:
                    log.warning("engine_changed from=%s to=%s", self._engine.name, engine.name)
                self._engine, self._seen_failures = engine, failures
                log.info("engine_detected engine=%s", engine.name)
            return self._engine


def engine_for_client(client, setting: str = "auto") -> Engine:
    """Return the engine behind a structured client: the setting's, else detected (tools, tests)."""
    if setting != "auto":
        return engine_named(setting)
    from opensearchpy.exceptions import TransportError

    try:
        info = client.info()
    except TransportError as exc:
        if exc.status_code == 405:  # Elasticsearch without its rest-root module; OpenSearch always answers
            return ENGINES["elasticsearch"]
        raise
    return detect(200, {}, json.dumps(info).encode())
