"""The installed `rescore` command against a real OpenSearch: install-templates, ingest, serve, evaluate."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import DEMO_CORPUS, free_port, wait_for

pytestmark = pytest.mark.integration

# Three demo queries with one relevant document each (the document the query paraphrases).
QUERIES = {
    "q1": ("how do I fix a punctured inner tube on my bike", "bike-tyre"),
    "q2": ("wild yeast starter for sour bread", "bread-sourdough"),
    "q3": ("how do solar panels turn sunlight into electricity", "solar"),
}


def rescore(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the console script installed next to this interpreter, from outside the checkout."""
    exe = shutil.which("rescore", path=str(Path(sys.executable).parent))
    assert exe, "no rescore console script: run pip install -e ."
    return subprocess.run([exe, *args], env={**os.environ, **(env or {})}, cwd="/", capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def fresh_index(os_client):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    yield name
    os_client.indices.delete(index=name, ignore=[404])


@pytest.fixture(scope="module")
def served(opensearch_url, tmp_path_factory):
    """`rescore serve` as users start it, on a free port; terminated at the end."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    exe = shutil.which("rescore", path=str(Path(sys.executable).parent))
    with log_path.open("w") as log:
        proc = subprocess.Popen([exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                                 "--opensearch-url", opensearch_url, "--backend", "cross-encoder"],
                                cwd="/", stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", 180, proc)
    except Exception:
        proc.kill()
        raise RuntimeError(f"rescore serve did not start:\n{log_path.read_text()[-4000:]}") from None
    yield proc, url, log_path
    proc.terminate()
    proc.wait(timeout=30)


def test_install_templates_then_ingest_demo_corpus(opensearch_url, os_client, fresh_index):
    installed = rescore("install-templates", "--url", opensearch_url, "--index", fresh_index)
    assert installed.returncode == 0, installed.stderr
    assert f"index {fresh_index}: created" in installed.stdout
    assert os_client.get_script(id="rescore-bm25")["found"]

    ingested = rescore("ingest", str(DEMO_CORPUS), "--index", fresh_index, "--url", opensearch_url)
    assert ingested.returncode == 0, ingested.stderr
    assert ingested.stdout.startswith(f"indexed 30 documents into {fresh_index}")
    os_client.indices.refresh(index=fresh_index)
    assert os_client.count(index=fresh_index)["count"] == 30
    doc = os_client.get(index=fresh_index, id="espresso")["_source"]
    assert len(doc["embedding"]) == 384  # embedded with the bundled bge-small-en


def test_serve_answers_health_and_ready(served, opensearch_url):
    proc, url, _ = served
    assert proc.poll() is None
    health = requests.get(f"{url}/health", timeout=10)
    assert health.status_code == 200
    ready = requests.get(f"{url}/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    # The proxy behind `serve` is the OpenSearch given by --opensearch-url.
    assert requests.get(f"{url}/", timeout=10).json()["version"] == requests.get(opensearch_url, timeout=10).json()[
        "version"]


def write_tiny_beir(root: Path) -> Path:
    """Write a BEIR-layout folder: the demo corpus, three queries and their qrels."""
    (root / "qrels").mkdir(parents=True)
    shutil.copy(DEMO_CORPUS, root / "corpus.jsonl")
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": qid, "text": text}) + "\n" for qid, (text, _) in QUERIES.items()))
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{qid}\t{doc}\t1\n" for qid, (_, doc) in QUERIES.items()))
    return root


def test_evaluate_tiny_beir_writes_mode_metric_json(served, opensearch_url, os_client, fresh_index, tmp_path):
    _, sidecar, _ = served
    dataset = write_tiny_beir(tmp_path / "tiny")
    out = tmp_path / "metrics.json"
    result = rescore("evaluate", "--url", opensearch_url, "--dataset", str(dataset), "--index", fresh_index,
                     "--modes", "bm25,knn,bm25+rerank", "--sidecar", sidecar, "--out", str(out))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(out.read_text())
    assert list(metrics) == ["bm25", "knn", "bm25+rerank"]
    for mode, values in metrics.items():
        assert set(values) == {"NDCG@10", "MRR@10", "Recall@100"}, mode
        assert all(0.0 <= v <= 1.0 for v in values.values()), (mode, values)
        # Each query paraphrases its one relevant document: every mode must find all three in the top 10.
        assert values["Recall@100"] == 1.0 and values["NDCG@10"] > 0.6, (mode, values)
    # stdout is the table (machine-readable JSON went to --out); the index was built by evaluate itself.
    assert "tiny: 3 queries, index " + fresh_index in result.stdout
    assert "bm25+rerank vs bm25 (NDCG@10 per query)" in result.stdout
    assert os_client.count(index=fresh_index)["count"] == 30
