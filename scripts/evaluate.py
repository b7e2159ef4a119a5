#!/usr/bin/env python3
"""Evaluate search modes on a BEIR-layout dataset against a real OpenSearch.

Prints NDCG@10, MRR@10 and Recall@100 per mode; --out writes {mode: {metric: value}} as JSON.
The corpus is indexed (with embeddings) into --index first if that index is missing.

Modes: bm25, knn, hybrid, hybrid-rrf, and any of them with "+rerank" (e.g. bm25+rerank,
hybrid+rerank:replace). Rerank modes go through the sidecar's real HTTP path: the stored
template with {"rerank": true} sent to --sidecar (started here on a free port if not given).
An optional ":fusion" suffix picks replace | linear | rrf instead of the sidecar's default.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import add_connection_args, client_from_args, setup_logging
from tqdm import tqdm

from sidecar.experiments.evaluation import compare, evaluate_run, format_table, load_dataset, run_queries
from sidecar.search import first_stage
from sidecar.search.ingest import count_lines, ingest
from sidecar.search.templates import MODES, install

DEPTH = 100


def parse_mode(mode: str) -> tuple[str, bool, str | None]:
    """Split "hybrid+rerank:rrf" into (first-stage mode, rerank?, fusion or None)."""
    base, _, rerank = mode.partition("+")
    if not rerank:
        return base, False, None
    kind, _, fusion = rerank.partition(":")
    if kind != "rerank" or fusion not in ("", "replace", "linear", "rrf"):
        raise ValueError(mode)
    return base, True, fusion or None


def start_sidecar(opensearch_url: str):
    """Start the sidecar under gunicorn on a free port (the real HTTP path); return (process, url)."""
    import os
    import socket
    import subprocess
    import time

    import requests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "RESCORE_OPENSEARCH_URL": opensearch_url, "RESCORE_PORT": str(port),
           "RESCORE_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "sidecar/gunicorn.conf.py", "sidecar.wsgi:app"],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(url + "/ready", timeout=2).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the sidecar did not become ready")


def rerank_search(sidecar: str, index: str, mode: str, fusion: str | None, window: int, embedder):
    """Return a search function that asks the sidecar for a reranked templated search."""
    import requests

    session = requests.Session()

    def search(text: str) -> list[str]:
        vector = embedder.embed_query(text) if mode in first_stage.VECTOR_MODES else None
        body, query = first_stage.template_request(mode, text, size=DEPTH, query_vector=vector, k=DEPTH)
        body["params"].update({"rerank": True, "window_size": window})
        if fusion:
            body["params"]["fusion"] = fusion
        response = session.post(f"{sidecar}/{index}/_search/template", params=query, json=body, timeout=600)
        response.raise_for_status()
        result = response.json()
        status = result.get("ext", {}).get("rerank", {}).get("status")
        if status != "ok":
            raise RuntimeError(f"rerank status {status}: {result.get('ext')}")
        return [hit["_id"] for hit in result["hits"]["hits"]]

    return search


def ensure_index(client, index: str, dataset, embedder, reindex: bool) -> None:
    expected = count_lines(dataset.corpus_path)
    if not reindex and client.indices.exists(index=index):
        have = client.count(index=index)["count"]
        if have >= expected * 0.99:
            install(client)  # templates/pipelines may be newer than the index
            return
    install(client, index, recreate=True, dimension=embedder.dimension)
    with dataset.corpus_path.open() as fh, tqdm(total=expected, unit="doc", desc=f"index {index}",
                                                file=sys.stderr) as bar:
        report = ingest(client, index, fh, embedder=embedder, batch_size=64, progress=bar)
    print(f"indexed {report.indexed} docs into {index} ({len(report.rejected)} rejected) "
          f"in {report.seconds:.0f}s", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_connection_args(parser)
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR-layout directory")
    parser.add_argument("--modes", default="bm25,knn,hybrid",
                        help=f"comma-separated; available: {', '.join(MODES)}")
    parser.add_argument("--index", help="index name (default: beir-<dataset name>)")
    parser.add_argument("--reindex", action="store_true", help="rebuild the index even if it exists")
    parser.add_argument("--max-queries", type=int, default=0, help="evaluate only the first N judged queries")
    parser.add_argument("--out", type=Path, help="write the metrics as JSON to this file")
    parser.add_argument("--sidecar", help="sidecar URL for +rerank modes (default: start one here)")
    parser.add_argument("--window", type=int, default=50, help="rerank window size")
    args = parser.parse_args(argv)
    setup_logging()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = []
    for m in modes:
        try:
            if parse_mode(m)[0] not in MODES:
                unknown.append(m)
        except ValueError:
            unknown.append(m)
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; available: {', '.join(MODES)}")

    from sidecar.embed import OnnxEmbedder

    client, settings = client_from_args(args)
    embedder = OnnxEmbedder(settings.embed_model_dir or None, query_prefix=settings.embed_query_prefix)
    dataset = load_dataset(args.dataset)
    index = args.index or f"beir-{dataset.name.lower()}"
    ensure_index(client, index, dataset, embedder, args.reindex)
    queries = dataset.judged_queries()
    if args.max_queries:
        queries = dict(list(queries.items())[: args.max_queries])

    sidecar, proc = args.sidecar, None
    if any(parse_mode(m)[1] for m in modes) and not sidecar:
        proc, sidecar = start_sidecar(args.url or settings.opensearch_url)
    results: dict[str, dict[str, float]] = {}
    runs = {}
    try:
        for mode in modes:
            base, rerank, fusion = parse_mode(mode)
            if rerank:
                search = rerank_search(sidecar, index, base, fusion, args.window, embedder)
            else:
                def search(text: str, base: str = base) -> list[str]:
                    response = first_stage.search(client, index, base, text, embedder=embedder, size=DEPTH)
                    return [hit["_id"] for hit in response["hits"]["hits"]]

            with tqdm(total=len(queries), unit="q", desc=mode, file=sys.stderr) as bar:
                runs[mode] = run_queries(queries, search, progress=bar, workers=2 if rerank else 4)
            results[mode] = evaluate_run(dataset, runs[mode])
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)

    print(format_table(results, title=f"{dataset.name}: {len(queries)} queries, index {index}"))
    for mode in modes:
        base, rerank, _ = parse_mode(mode)
        if rerank and base in runs:
            helped, hurt, same = compare(dataset, runs[base], runs[mode])
            print(f"{mode} vs {base} (NDCG@10 per query): helped {helped}, hurt {hurt}, unchanged {same}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
