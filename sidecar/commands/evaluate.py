"""Evaluate search modes on a BEIR-layout dataset against a real OpenSearch or Elasticsearch.

Prints NDCG@10, MRR@10 and Recall@100 per mode; --out writes {mode: {metric: value}} as JSON.
The corpus is indexed (with embeddings) into --index first if that index is missing.

Modes: bm25, knn, hybrid, hybrid-rrf, and any of them with "+rerank" (e.g. bm25+rerank,
hybrid+rerank:replace). Rerank modes go through the sidecar's real HTTP path: the stored
template with {"rerank": true} sent to --sidecar (started here on a free port if not given).
An optional ":fusion" suffix picks replace | linear | zscore | rrf | calibrated | relative instead of the sidecar's default, and
":passages" (max over passages) or ":passages-mean" (mean of the --passage-top-k best) scores
long documents by passages (e.g. bm25+rerank:passages, hybrid+rerank:linear:passages-mean).
On an engine that refuses the stored templates (Elasticsearch without lang-mustache) the same
template files are rendered here (Engine.search_body) and sent as plain searches; modes whose
first stage needs a module the engine lacks (hybrid modes without rank-rrf) stop with exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sidecar.commands.common import (
    UsageError,
    add_connection_args,
    client_from_args,
    non_negative_int,
    positive_int,
    setup_logging,
)
from sidecar.engine import engine_for_client
from sidecar.search.fusion import METHODS as FUSION_METHODS
from sidecar.search.templates import MODES

DEPTH = 100
HELP = "NDCG@10 / MRR@10 / Recall@100 per search mode on a BEIR dataset"
EPILOG = """examples:
  rescore evaluate --dataset ../shared/datasets/scifact --modes bm25,knn,hybrid --out scifact.json
  rescore evaluate --dataset ../shared/datasets/cranfield --modes hybrid,hybrid+rerank,hybrid+rerank:replace
  rescore evaluate --dataset DIR --modes bm25+rerank --sidecar http://127.0.0.1:8080 --max-queries 50

The dataset directory holds corpus.jsonl, queries.jsonl and qrels/test.tsv (BEIR layout).
The table goes to stdout, progress bars (interactive terminals only) and indexing notes to stderr."""


PASSAGE_MODES = {"passages": "max", "passages-max": "max", "passages-mean": "mean"}


def parse_mode(mode: str) -> tuple[str, bool, str | None]:
    """Split "hybrid+rerank:rrf" into (first-stage mode, rerank?, fusion or None)."""
    base, _, rerank = mode.partition("+")
    if not rerank:
        return base, False, None
    kind, *options = rerank.split(":")
    fusions = [o for o in options if o in FUSION_METHODS]
    aggregates = [o for o in options if o in PASSAGE_MODES]
    if kind != "rerank" or len(fusions) > 1 or len(aggregates) > 1 or len(fusions) + len(aggregates) != len(options):
        raise ValueError(mode)
    return base, True, fusions[0] if fusions else None


def passage_aggregate(mode: str) -> str | None:
    """Return the passage aggregate a rerank mode asks for ("max", "mean"), None without passages."""
    return next((PASSAGE_MODES[o] for o in mode.partition("+")[2].split(":")[1:] if o in PASSAGE_MODES), None)


def mode_list(text: str) -> list[str]:
    """argparse type: comma-separated modes, each a known first stage with an optional +rerank[:fusion]."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = []
    for mode in modes:
        try:
            if parse_mode(mode)[0] not in MODES:
                unknown.append(mode)
        except ValueError:
            unknown.append(mode)
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"unknown mode(s) {', '.join(unknown) or repr(text)}; "
                                         f"available: {', '.join(MODES)} "
                                         "(each optionally +rerank[:fusion][:passages|:passages-mean])")
    return modes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_args(parser)
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR-layout directory")
    parser.add_argument("--modes", type=mode_list, default="bm25,knn,hybrid",
                        help=f"comma-separated; available: {', '.join(MODES)}, each optionally "
                             "+rerank[:fusion][:passages|:passages-mean] (default bm25,knn,hybrid)")
    parser.add_argument("--index", help="index name (default: beir-<dataset name>)")
    parser.add_argument("--reindex", action="store_true", help="rebuild the index even if it exists")
    parser.add_argument("--max-queries", type=non_negative_int, default=0,
                        help="evaluate only the first N judged queries")
    parser.add_argument("--out", type=Path, help="write the metrics as JSON to this file")
    parser.add_argument("--runs-out", type=Path,
                        help="write each mode's ranked lists to DIR/<mode>.json as {query id: [doc ids]} "
                             "(input of scripts/simulate_clicks.py)")
    parser.add_argument("--sidecar", help="sidecar URL for +rerank modes (default: start one here)")
    parser.add_argument("--window", type=positive_int, default=50, help="rerank window size (default 50)")
    parser.add_argument("--passage-tokens", type=positive_int, default=256,
                        help=":passages modes: tokens per passage (default 256)")
    parser.add_argument("--passage-overlap", type=non_negative_int, default=32,
                        help=":passages modes: tokens shared by consecutive passages (default 32)")
    parser.add_argument("--passage-top-k", type=positive_int, default=2,
                        help=":passages-mean: mean of this many best passages (default 2)")
    parser.add_argument("--max-passages", type=positive_int, default=8,
                        help=":passages modes: passages per document at most (default 8)")


def start_sidecar(opensearch_url: str):
    """Start the sidecar under gunicorn on a free port (the real HTTP path); return (process, url)."""
    import os
    import socket
    import subprocess
    import time

    import requests

    from sidecar.commands.serve import gunicorn_argv

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "RESCORE_OPENSEARCH_URL": opensearch_url, "RESCORE_PORT": str(port),
           "RESCORE_HOST": "127.0.0.1", "RESCORE_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(gunicorn_argv(), env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr)
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


def rerank_search(sidecar: str, index: str, mode: str, fusion: str | None, window: int, embedder,
                  passages: dict | None = None, *, engine, templated: bool = True):
    """Return a search function that asks the sidecar for a reranked templated search (templated=False:
    a plain search with the body the template renders, rendered here by the engine layer)."""
    import requests

    from sidecar.search import first_stage

    session = requests.Session()

    def search(text: str) -> list[str]:
        vector = embedder.embed_query(text) if mode in first_stage.VECTOR_MODES else None
        body, query = first_stage.template_request(mode, text, engine=engine, size=DEPTH, query_vector=vector,
                                                   k=DEPTH)
        body["params"].update({"rerank": True, "window_size": window})
        if fusion:
            body["params"]["fusion"] = fusion
        if passages:
            body["params"]["passages"] = passages
        if templated:
            response = session.post(f"{sidecar}/{index}/_search/template", params=query, json=body, timeout=600)
        else:
            response = session.post(f"{sidecar}/{index}/_search", params=query,
                                    json=engine.search_body(mode, body["params"]), timeout=600)
        response.raise_for_status()
        result = response.json()
        status = result.get("ext", {}).get("rerank", {}).get("status")
        if status != "ok":
            raise RuntimeError(f"rerank status {status}: {result.get('ext')}")
        return [hit["_id"] for hit in result["hits"]["hits"]]

    return search


def ensure_index(client, index: str, dataset, embedder, reindex: bool):
    """Index the dataset's corpus into `index` unless (nearly) all of it is already there; return the
    template install report (its `failed` names the templates the engine refused)."""
    from tqdm import tqdm

    from sidecar.search.ingest import count_lines, ingest
    from sidecar.search.templates import install

    expected = count_lines(dataset.corpus_path)
    if not reindex and client.indices.exists(index=index):
        have = client.count(index=index)["count"]
        if have >= expected * 0.99:
            return install(client)  # templates/pipelines may be newer than the index
    report = install(client, index, recreate=True, dimension=embedder.dimension if embedder else None)
    if report.analysis:
        print(f"warning: index {index}: {report.analysis}", file=sys.stderr)
    with dataset.corpus_path.open() as fh, tqdm(total=expected, unit="doc", desc=f"index {index}",
                                                disable=None, file=sys.stderr) as bar:
        indexed = ingest(client, index, fh, embedder=embedder, batch_size=64, progress=bar)
    print(f"indexed {indexed.indexed} docs into {index} ({len(indexed.rejected)} rejected) "
          f"in {indexed.seconds:.0f}s", file=sys.stderr)
    return report


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sidecar.embed import OnnxEmbedder
    from sidecar.experiments.evaluation import compare, evaluate_run, format_table, load_dataset, run_queries
    from sidecar.search import first_stage

    setup_logging()
    modes = args.modes  # already validated by mode_list (argparse runs string defaults through type too)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        if not (args.dataset / name).is_file():
            raise UsageError(f"--dataset {args.dataset}: {name} not found (BEIR layout expected)")
    client, settings = client_from_args(args)
    engine = engine_for_client(client, settings.engine)
    for base in dict.fromkeys(parse_mode(m)[0] for m in modes):
        module = engine.missing_module(client, base)
        if module:
            raise UsageError(f"mode {base} needs the {engine.name} module {module}, which this cluster lacks "
                             "(README: modules the Elasticsearch integ-test-zip lacks); the sidecar has no fusion "
                             "of its own for it")
    embedder = OnnxEmbedder(settings.embed_model_dir or None, query_prefix=settings.embed_query_prefix)
    dataset = load_dataset(args.dataset)
    index = args.index or f"beir-{dataset.name.lower()}"
    installed = ensure_index(client, index, dataset, embedder, args.reindex)
    # Modes whose stored template the engine refused (no lang-mustache): render the same template here.
    rendered = {mode for mode, (template_id, _) in engine.modes.items() if template_id in installed.failed}
    if rendered:
        print(f"stored templates refused by {engine.name} ({'; '.join(sorted(set(installed.failed.values())))}): "
              f"rendering {', '.join(sorted(rendered))} here", file=sys.stderr)
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
                aggregate = passage_aggregate(mode)
                passages = None if aggregate is None else {
                    "enabled": True, "aggregate": aggregate, "max_tokens": args.passage_tokens,
                    "overlap": args.passage_overlap, "top_k": min(args.passage_top_k, args.max_passages),
                    "max_passages": args.max_passages}
                search = rerank_search(sidecar, index, base, fusion, args.window, embedder, passages, engine=engine,
                                       templated=base not in rendered)
            else:
                def search(text: str, base: str = base) -> list[str]:
                    response = first_stage.search(client, index, base, text, embedder=embedder, size=DEPTH,
                                                  engine=engine, templated=base not in rendered)
                    return [hit["_id"] for hit in response["hits"]["hits"]]

            # disable=None: bars on an interactive stderr only; stdout keeps just the table.
            with tqdm(total=len(queries), unit="q", desc=mode, disable=None, file=sys.stderr) as bar:
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
    if args.runs_out:
        args.runs_out.mkdir(parents=True, exist_ok=True)
        for mode, run in runs.items():
            (args.runs_out / f"{mode}.json").write_text(json.dumps(run) + "\n")
    return 0
