"""Shared fixtures: a real OpenSearch process, the demo index, and a real sidecar process."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
DEMO_CORPUS = ROOT / "demo" / "corpus.jsonl"
DEMO_INDEX = "demo-test"
# Every demo document, scored unevenly. The documents index analyses English
# (es_templates/index/documents.json): stop words are not indexed, so a query of stop words
# alone ("the a of and") matches nothing there.
BROAD_QUERY = {"bool": {"should": [{"match_all": {}}, {"match": {"text": "water light heat air system"}}]}}

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(items) -> None:
    """Run the tests that wipe the shared OpenSearch (REST YAML suite) after all others."""
    items.sort(key=lambda item: item.get_closest_marker("wipes_cluster") is not None)


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


@pytest.fixture(scope="session")
def opensearch_url() -> str:
    """A real single-node OpenSearch on a random free port, stopped at the end of the session.

    Set RESCORE_TEST_OPENSEARCH_URL to reuse an already running cluster instead.
    """
    existing = os.environ.get("RESCORE_TEST_OPENSEARCH_URL")
    if existing:
        yield existing
        return
    port = free_port()
    env = {**os.environ, "OPENSEARCH_PORT": str(port), "OPENSEARCH_TRANSPORT_PORT": str(free_port())}
    script = str(ROOT / "scripts" / "opensearch.sh")
    started = subprocess.run(["bash", script, "start"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail(f"OpenSearch did not start:\n{started.stdout}\n{started.stderr}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True, text=True)


def start_elasticsearch(port: int, transport_port: int, **env_overrides: str) -> dict[str, str]:
    """Start a real single-node Elasticsearch with scripts/elasticsearch.sh; return the env to stop it with."""
    env = {
        **os.environ,
        "ELASTICSEARCH_PORT": str(port),
        "ELASTICSEARCH_TRANSPORT_PORT": str(transport_port),
        "ELASTICSEARCH_HEAP": os.environ.get("ELASTICSEARCH_HEAP", "512m"),
        **env_overrides,
    }
    started = subprocess.run(["bash", str(ROOT / "scripts" / "elasticsearch.sh"), "start"],
                             env=env, capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail(f"Elasticsearch did not start:\n{started.stdout}\n{started.stderr}")
    return env


def stop_elasticsearch(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts" / "elasticsearch.sh"), "stop"],
                          env=env, capture_output=True, text=True)


@pytest.fixture(scope="session")
def elasticsearch_url() -> str:
    """A real single-node Elasticsearch (security off) on a random free port, stopped at the end.

    Set RESCORE_TEST_ELASTICSEARCH_URL to reuse an already running cluster instead.
    """
    existing = os.environ.get("RESCORE_TEST_ELASTICSEARCH_URL")
    if existing:
        yield existing
        return
    port = free_port()
    env = start_elasticsearch(port, free_port())
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_elasticsearch(env)


@pytest.fixture(scope="session")
def os_client(opensearch_url):
    from opensearchpy import OpenSearch

    return OpenSearch(hosts=[opensearch_url], timeout=60)


@pytest.fixture(scope="session")
def embedder():
    from sidecar.embed import OnnxEmbedder

    return OnnxEmbedder(query_prefix="Represent this sentence for searching relevant passages: ")


@pytest.fixture(scope="session")
def demo_index(os_client, embedder) -> str:
    """The demo corpus indexed with embeddings, plus templates and pipelines installed."""
    from sidecar.search.ingest import ingest
    from sidecar.search.templates import install

    install(os_client, DEMO_INDEX, recreate=True, dimension=embedder.dimension)
    with DEMO_CORPUS.open() as fh:
        report = ingest(os_client, DEMO_INDEX, fh, embedder=embedder)
    assert report.indexed == 30 and not report.rejected
    return DEMO_INDEX


def start_sidecar(opensearch_url: str, **env_overrides: str) -> tuple[subprocess.Popen, str, Path]:
    """Start the sidecar under gunicorn exactly as users do; return (process, URL, log path)."""
    port = free_port()
    env = {
        **os.environ,
        "RESCORE_OPENSEARCH_URL": opensearch_url,
        "RESCORE_PORT": str(port),
        "RESCORE_HOST": "127.0.0.1",
        **env_overrides,
    }
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"rescore-sidecar-test-{port}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "sidecar/gunicorn.conf.py", "sidecar.wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", 180, proc)
    except Exception:
        proc.kill()
        raise RuntimeError(f"sidecar did not start:\n{log_path.read_text()[-4000:]}") from None
    return proc, url, log_path


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def sidecar_url(opensearch_url) -> str:
    """A real sidecar process (gunicorn) in front of the test OpenSearch."""
    proc, url, _ = start_sidecar(opensearch_url)
    try:
        yield url
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def open_sidecar_url(opensearch_url) -> str:
    """A real sidecar that forwards every engine API (RESCORE_PROXY_ALLOW=all), for admin calls through it."""
    proc, url, _ = start_sidecar(opensearch_url, RESCORE_PROXY_ALLOW="all", RESCORE_PRELOAD_MODEL="false")
    try:
        yield url
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def es_client(elasticsearch_url):
    from opensearchpy import OpenSearch

    return OpenSearch(hosts=[elasticsearch_url], timeout=60)


@pytest.fixture(scope="session")
def es_demo_index(es_client, embedder) -> str:
    """The demo corpus on Elasticsearch (dense_vector mapping from the engine layer).

    Stored templates need lang-mustache, which the integ-test-zip lacks: install() reports them
    as refused and goes on.
    """
    from sidecar.search.ingest import ingest
    from sidecar.search.templates import install

    report = install(es_client, DEMO_INDEX, recreate=True, dimension=embedder.dimension)
    assert report.engine == "elasticsearch" and report.index_created
    with DEMO_CORPUS.open() as fh:
        ingested = ingest(es_client, DEMO_INDEX, fh, embedder=embedder)
    assert ingested.indexed == 30 and not ingested.rejected
    return DEMO_INDEX


@pytest.fixture(scope="session")
def es_sidecar_url(elasticsearch_url) -> str:
    """A real sidecar process (gunicorn) in front of the test Elasticsearch (engine detected)."""
    proc, url, _ = start_sidecar(elasticsearch_url)
    try:
        yield url
    finally:
        stop_process(proc)


@dataclass(frozen=True)
class EngineStack:
    """One engine under test: its URL, a structured client, the demo index and a sidecar in front."""

    name: str
    url: str
    client: Any
    index: str
    sidecar: str
    modules: frozenset[str]

    def require(self, module: str) -> None:
        """Skip the test when this engine build lacks `module` (e.g. Elasticsearch's integ-test-zip)."""
        if module not in self.modules:
            pytest.skip(f"{self.name} here has no {module} module (README: modules missing from the integ-test-zip)")


@pytest.fixture(scope="session", params=["opensearch", "elasticsearch"])
def engine_stack(request) -> EngineStack:
    """The same tests on both engines: OpenSearch and Elasticsearch, each with its own sidecar."""
    if request.param == "opensearch":
        names = ("opensearch_url", "os_client", "demo_index", "sidecar_url")
    else:
        names = ("elasticsearch_url", "es_client", "es_demo_index", "es_sidecar_url")
    url, client, index, sidecar = (request.getfixturevalue(n) for n in names)
    nodes = client.nodes.info(metric="plugins")["nodes"].values()
    modules = frozenset(m["name"] for node in nodes for m in node.get("modules", []) + node.get("plugins", []))
    return EngineStack(request.param, url, client, index, sidecar, modules)
