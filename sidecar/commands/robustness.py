"""Robustness suite: every first stage and rerank fusion on every collection, defaults by leave-one-out.

Per collection (BEIR layout): index it once (BM25 + the bundled embedder's vectors), fetch each first
stage's top --depth with scores (bm25, knn, and every hybrid search pipeline variant; cached as JSON
runs), score the union of every stage's top --window with the bundled reranker once (cached), then
compute every rerank fusion offline with sidecar.search.fusion (the code the sidecar runs).
Prints per collection NDCG@10, MRR@10, Recall@100, helped/hurt and a paired t-test against the best
first stage, then the leave-one-collection-out choice of the hybrid pipeline and the rerank fusion.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import mean

from sidecar.commands.common import (
    UsageError,
    add_connection_args,
    client_from_args,
    non_negative_int,
    positive_int,
    setup_logging,
)

HELP = "every first stage and rerank fusion on every collection; fusion defaults by leave-one-out"
EPILOG = """examples:
  rescore robustness --datasets ../shared/datasets/cacm,../shared/datasets/cranfield,../shared/datasets/scifact \\
      --cache ~/.cache/rescore-robustness --out robustness.json
  rescore robustness --datasets DIR --cache DIR --max-queries 20   (a quick look)

Cached per collection under --cache/<name>/: runs/<stage>.json and scores-<model>.json; a rerun only
does what is missing (delete a file to redo it): with every first-stage list on disk it neither
indexes nor asks the engine. Table to stdout, progress to stderr."""

FIRST_STAGES = ("bm25", "knn")
DEFAULT_HYBRID = "hybrid"
# Fusions that score a hit without looking at the rest of the window (candidates for the default;
# relative looks at one number of it, the top score, which is the query's own hits.max_score).
WINDOW_INDEPENDENT = ("replace", "calibrated", "relative")
# DEFAULT_HYBRID is fetched through the shipped pipeline (es_templates/pipelines/rescore-hybrid-minmax.json,
# min-max BM25 0.3 / kNN 0.7); PREVIOUS_HYBRID is the 0.5/0.5 default it replaced.
PREVIOUS_HYBRID = "hybrid-minmax-5"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_args(parser)
    parser.add_argument("--datasets", required=True,
                        help="comma-separated BEIR-layout directories (corpus.jsonl, queries.jsonl, qrels/test.tsv); "
                             "DIR:text runs that one text-only (see --stages)")
    parser.add_argument("--cache", type=Path, required=True, help="directory for runs and model scores")
    parser.add_argument("--window", type=positive_int, default=50, help="rerank window (default 50)")
    parser.add_argument("--depth", type=positive_int, default=100, help="first-stage depth (default 100)")
    parser.add_argument("--max-queries", type=non_negative_int, default=0,
                        help="only the first N judged queries of each collection")
    parser.add_argument("--stages", default="all",
                        help="first stages: all (bm25, knn, hybrid and its variants) or text (bm25 only: the "
                             "collection is indexed without vectors, in beir-<name>-text, which takes seconds)")
    parser.add_argument("--rerank-hybrids", type=lambda t: [s.strip() for s in t.split(",") if s.strip()],
                        default=[], help="hybrid variants whose windows are scored and reranked too "
                                         "(comma-separated, e.g. hybrid-zscore-5; default none: model time)")
    parser.add_argument("--rerank-stages", type=lambda t: [s.strip() for s in t.split(",") if s.strip()],
                        default=[*FIRST_STAGES, DEFAULT_HYBRID],
                        help="first stages whose windows the model scores (default bm25,knn,hybrid; "
                             "e.g. hybrid alone: the default path, a third of the model time)")
    parser.add_argument("--cached-only", action="store_true",
                        help="score nothing: evaluate only the queries whose windows are already in the cache "
                             "(a look at a run that is still scoring)")
    parser.add_argument("--families", action="store_true",
                        help="also try the fusion families that are not served (query-adaptive model weight, "
                             "no-signal guard, three-way BM25+kNN+model) on hybrid+rerank, by leave-one-out")
    parser.add_argument("--runs", type=Path,
                        help="ranked lists made elsewhere, e.g. by `rescore evaluate --runs-out` (passage modes): "
                             "DIR/<collection>/<mode>.json ({query id: [doc ids]}), each a row 'evaluate:<mode>' "
                             "tested against the best first stage; each must cover every query evaluated here "
                             "(a collection without a folder gets none)")
    parser.add_argument("--out", type=Path, help="write every table and the leave-one-out choices as JSON")


def cached_runs(cache: Path, queries: dict[str, str], stages: list[str],
                *, listed_only: bool = False) -> tuple[dict[str, str], dict | None]:
    """Return (queries, every stage's cached list for each of them), runs None when something must still be fetched.

    listed_only (--cached-only): keep the queries every stage lists (a run made with --max-queries
    has lists for those queries only), all of them when none is listed everywhere.
    """
    from sidecar.experiments.robustness import load_json

    loaded = {stage: load_json(cache / "runs" / f"{stage}.json") or {} for stage in stages}
    if listed_only:
        queries = {q: t for q, t in queries.items() if all(q in run for run in loaded.values())} or queries
    if any(q not in run for run in loaded.values() for q in queries):
        return queries, None
    return queries, {stage: {q: [(d, s) for d, s in run[q]] for q in queries} for stage, run in loaded.items()}


def first_stage_runs(client, index: str, queries: dict[str, str], embedder, depth: int, cache: Path,
                     stages: list[str], engine) -> dict:
    """Fetch (or load) every first stage's scored lists; hybrid variants through their own pipelines.

    embedder: a callable returning the embedder (loaded only when a query vector is missing).
    """
    from tqdm import tqdm

    from sidecar.experiments.robustness import HYBRID_VARIANTS, load_json, save_json
    from sidecar.search import first_stage

    for name, body in HYBRID_VARIANTS.items():
        if name in stages:
            client.transport.perform_request("PUT", f"/_search/pipeline/rescore-robustness-{name}", body=body)
    vectors_path = cache / "query_vectors.json"
    vectors = load_json(vectors_path) or {}
    if stages != ["bm25"] and any(q not in vectors for q in queries):
        model = embedder()
        vectors.update({q: list(map(float, model.embed_query(t))) for q, t in queries.items() if q not in vectors})
        save_json(vectors_path, vectors)
    runs = {}
    for stage in stages:
        path = cache / "runs" / f"{stage}.json"
        run = load_json(path) or {}
        missing = [q for q in queries if q not in run]
        for qid in tqdm(missing, desc=f"{index} {stage}", disable=None, file=sys.stderr):
            mode = stage if stage in first_stage.VECTOR_MODES or stage == "bm25" else "hybrid"
            vector = vectors[qid] if mode in first_stage.VECTOR_MODES else None
            body, params = first_stage.template_request(mode, queries[qid], engine=engine, size=depth,
                                                        query_vector=vector, k=depth)
            if stage in HYBRID_VARIANTS:
                params = {"search_pipeline": f"rescore-robustness-{stage}"}
            hits = client.search_template(index=index, body=body, params=params)["hits"]["hits"]
            run[qid] = [[hit["_id"], float(hit["_score"])] for hit in hits]
        if missing:
            save_json(path, run)
        runs[stage] = {q: [(d, s) for d, s in run[q]] for q in queries}
    return runs


# A split document's cache key: "<doc id><PASSAGE_KEY>max_tokens/overlap/aggregate/top_k/max_passages/query"
# ("/query": past max_passages the passages that match the query are scored, passages.select_passages).
# A document the model reads whole keeps its plain id: with passages on it is the very same pair.
PASSAGE_KEY = "\tpassages:"


class ModelScorer:
    """Score hits the way the sidecar's flow does: the same text, and with passages on (the
    default) a document longer than the model reads whole scored by its passages, aggregated."""

    def __init__(self, settings) -> None:
        self._settings = settings
        self.options = settings.passage_options
        self._services = self._reranker = None

    @property
    def services(self):
        """The sidecar's services, made on first use (a run with everything cached needs none)."""
        if self._services is None:
            from sidecar import Services

            self._services = Services(self._settings)
        return self._services

    @property
    def reranker(self):
        if self._reranker is None:
            self._reranker = self.services.reranker
            print(f"robustness_model loaded {self._reranker.model} (scores pairs not in the cache)", file=sys.stderr)
        return self._reranker

    def _spec(self, query: str):
        from sidecar.search.syntax import build_spec

        return build_spec({}, query, self.services.rerank_defaults, "robustness")

    def text(self, spec, source: dict) -> str:
        from sidecar.rerank.doc_text import template_for
        from sidecar.rerank.documents import hit_text

        hit = {"_source": source}
        return hit_text(hit, spec.fields, template_for(hit, spec.doc_template, spec.index_templates))

    def keys(self, query: str, doc_ids: list[str], corpus: dict[str, dict], known: dict) -> list[str]:
        """The cache key of each document for this query (see PASSAGE_KEY).

        known ({"docs": {doc id: tokens}, "queries": {query: document budget}}, cached on disk
        per collection) spares loading the model when every count is there.
        """
        if not self.options.enabled:
            return list(doc_ids)
        budgets, tokens = known.setdefault("queries", {}), known.setdefault("docs", {})
        if query not in budgets:
            spec = self._spec(query)
            budgets[query] = self.reranker.document_budget(spec.query_text, spec.instruction)
        limit = max(self.options.max_tokens, budgets[query])
        o = self.options
        suffix = f"{PASSAGE_KEY}{o.max_tokens}/{o.overlap}/{o.aggregate}/{o.top_k}/{o.max_passages}/query"
        out = []
        for doc in doc_ids:
            if doc not in tokens:
                text = self.text(self._spec(query), corpus[doc])
                tokens[doc] = self.reranker.passage_splitter.count(text)
            out.append(doc if tokens[doc] <= limit else doc + suffix)
        return out

    def __call__(self, query: str, sources: list[dict]) -> list[float]:
        from sidecar.rerank import passages

        spec = self._spec(query)
        texts = [self.text(spec, s) for s in sources]
        split = None
        if self.options.enabled:
            split = passages.plan(texts, self.reranker.passage_splitter, self.options,
                                  self.reranker.document_budget(spec.query_text, spec.instruction), query=spec.query_text)
        result = self.reranker.score(spec.query_text, split.texts if split else texts, instruction=spec.instruction)
        if any(s is None for s in result.scores):
            raise RuntimeError(f"reranker status {result.status}: not every document scored")
        if split is None:
            return [float(s) for s in result.scores]
        return [float(passages.aggregate(doc, self.options.aggregate, self.options.top_k)[0])
                for doc in split.per_document(result.scores)]


def by_document(scores: dict[str, dict[str, float]], keys) -> dict[str, dict[str, float]]:
    """Map the cache ({query: {key: score}}) to {query: {doc id: score}} under the current passage options."""
    out = {}
    for qid, have in scores.items():
        docs = list(dict.fromkeys(k.split(PASSAGE_KEY)[0] for k in have))
        out[qid] = {d: have[k] for d, k in zip(docs, keys(qid, docs), strict=True) if k in have}
    return out


def load_corpus(path: Path) -> dict[str, dict]:
    docs = {}
    with path.open() as fh:
        for line in fh:
            if line.strip():
                record = json.loads(line)
                docs[str(record["_id"])] = {k: v for k, v in record.items() if k != "_id"}
    return docs


def collection_results(dataset, runs: dict, scores: dict, window: int, depth: int,
                       with_families: bool = False, extra: dict | None = None) -> dict:
    """Every first stage and every (base stage, fusion) on one collection, against its best first stage.

    extra: more ranked lists ({mode: {query id: [doc ids]}}, e.g. from --runs), scored the same way.
    """
    from sidecar.experiments.evaluation import evaluate_run
    from sidecar.experiments.robustness import fusion_grid, ids, rerank_run, score_rows

    first = {stage: ids(run, depth) for stage, run in runs.items()}
    ndcg = {stage: evaluate_run(dataset, run)["NDCG@10"] for stage, run in first.items()}
    shipped = [s for s in (*FIRST_STAGES, DEFAULT_HYBRID) if s in runs]
    best = max(shipped, key=lambda s: ndcg[s])
    reranked = {}
    covered = [s for s in runs if all(d in scores.get(q, {}) for q, hits in runs[s].items() for d, _ in hits[:window])]
    for stage in covered:
        for config in fusion_grid():
            reranked[f"{stage}+rerank:{config.name}"] = rerank_run(runs[stage], scores, config, window, depth)
    rows = score_rows(dataset, {**first, **reranked, **(extra or {})}, best)
    out = {"best_first_stage": best, "bm25": ndcg["bm25"],
           "rows": {r.mode: {**r.metrics, "helped": r.helped, "hurt": r.hurt, "p": r.p_value, "delta": r.delta}
                    for r in rows}}
    if with_families and DEFAULT_HYBRID in covered and "knn" in runs:
        from sidecar.experiments.robustness import families, rerank_with

        out["families"] = {family: {name: evaluate_run(dataset, rerank_with(runs, DEFAULT_HYBRID, scores, fuse, window,
                                                                            depth))["NDCG@10"] - ndcg[best]
                                    for name, fuse in grid.items()}
                           for family, grid in families().items()}
    return out


def external_runs(folder: Path, queries: dict[str, str], depth: int) -> dict[str, dict[str, list[str]]]:
    """The ranked lists of --runs for one collection, as rows 'evaluate:<mode>' (top `depth`)."""
    from sidecar.experiments.robustness import load_json

    out = {}
    for path in sorted(folder.glob("*.json")):
        run = load_json(path)
        missing = [q for q in queries if not isinstance(run, dict) or q not in run]
        if missing:
            raise UsageError(f"--runs {path}: no list for {len(missing)} of the {len(queries)} queries evaluated "
                             f"here (e.g. {missing[0]}); make it with the same --max-queries")
        out[f"evaluate:{path.stem}"] = {q: [str(d) for d in run[q][:depth]] for q in queries}
    return out


def choose(results: dict) -> dict:
    """Leave-one-collection-out: the hybrid pipeline and the hybrid+rerank fusion, chosen on the others."""
    from sidecar.experiments.robustness import HYBRID_VARIANTS, fusion_grid, leave_one_out

    names = list(results)
    hybrids = [h for h in (DEFAULT_HYBRID, *HYBRID_VARIANTS) if all(h in results[c]["rows"] for c in names)]
    by_hybrid = {c: {h: results[c]["rows"][h]["delta"] for h in hybrids} for c in names}
    # The fusion is judged on each collection's default path: the shipped hybrid, or bm25 where the
    # collection was run text-only (--stages text).
    # Default candidates: fusions whose score of a hit does not depend on the other hits of the window
    # (issue 12: a per-window normalization ties a rejected hit with a relevant one in a window of two).
    # The unrestricted choice is reported next to it.
    grid = fusion_grid()
    fusions = [f.name for f in grid if f.method in WINDOW_INDEPENDENT]
    everything = [f.name for f in grid]
    by_fusion = {c: {f: results[c]["rows"][f"{default_base(results[c])}+rerank:{f}"]["delta"] for f in everything}
                 for c in names}

    def held_out(candidates: list[str]) -> dict:
        return {c: (f"{default_base(results[c])}+rerank:{f}", gain)
                for c, (f, gain) in leave_one_out(by_fusion, candidates).items()}

    return {"hybrid": leave_one_out(by_hybrid, hybrids) if hybrids else {},
            "rerank": held_out(fusions), "rerank_unrestricted": held_out(everything),
            "hybrid_all": max(hybrids, key=lambda h: mean(by_hybrid[c][h] for c in names)) if hybrids else None,
            "rerank_all": max(fusions, key=lambda f: mean(by_fusion[c][f] for c in names)),
            "rerank_all_unrestricted": max(everything, key=lambda f: mean(by_fusion[c][f] for c in names))}


def default_base(result: dict) -> str:
    """The first stage of a collection's default path: the shipped hybrid, else bm25 (text-only runs)."""
    return DEFAULT_HYBRID if f"{DEFAULT_HYBRID}+rerank:replace" in result["rows"] else "bm25"


def format_rows(name: str, result: dict, modes: list[str]) -> str:
    width = max(44, *(len(m) for m in modes))
    lines = [f"{name}: best first stage {result['best_first_stage']} (tests against it); "
             f"BM25 NDCG@10 {result['bm25']:.4f}",
             f"{'mode':<{width}} {'NDCG@10':>8} {'MRR@10':>8} {'R@100':>8} {'vs BM25':>8} {'helped':>6} "
             f"{'hurt':>5} {'p':>7}"]
    for mode in modes:
        row = result["rows"][mode]
        gain = row["NDCG@10"] / result["bm25"] - 1 if result["bm25"] else 0.0
        gain = 0.0 if abs(gain) < 5e-4 else gain  # no "-0.0%" for bm25 itself
        lines.append(f"{mode:<{width}} {row['NDCG@10']:>8.4f} {row['MRR@10']:>8.4f} {row['Recall@100']:>8.4f} "
                     f"{gain:>+8.1%} {row['helped']:>6} {row['hurt']:>5} {row['p']:>7.3f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sidecar.commands.evaluate import ensure_index
    from sidecar.embed import OnnxEmbedder
    from sidecar.engine import engine_for_client
    from sidecar.experiments.evaluation import load_dataset
    from sidecar.experiments.robustness import candidates, leave_one_out, load_json, save_json, score_candidates

    setup_logging()
    entries = [p.strip() for p in args.datasets.split(",") if p.strip()]
    # DIR:text runs that collection text-only whatever --stages says.
    text_only = {Path(e[:-5]) for e in entries if e.endswith(":text")}
    roots = [Path(e[:-5]) if e.endswith(":text") else Path(e) for e in entries]
    if args.stages not in ("all", "text"):
        raise UsageError(f"--stages must be all or text, got {args.stages!r}")
    for root in roots:
        for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
            if not (root / name).is_file():
                raise UsageError(f"--datasets {root}: {name} not found (BEIR layout expected)")
    if len({r.name for r in roots}) != len(roots):
        raise UsageError("--datasets: two collections share a directory name (the cache is keyed by it)")
    from sidecar.experiments.robustness import HYBRID_VARIANTS

    wrong = [s for s in args.rerank_stages if s not in (*FIRST_STAGES, DEFAULT_HYBRID, *HYBRID_VARIANTS)]
    if wrong or not args.rerank_stages:
        raise UsageError(f"--rerank-stages: unknown {', '.join(wrong) or '(none given)'}; available: "
                         f"{', '.join((*FIRST_STAGES, DEFAULT_HYBRID, *HYBRID_VARIANTS))}")
    unknown = [h for h in args.rerank_hybrids if h not in HYBRID_VARIANTS]
    if unknown:
        raise UsageError(f"--rerank-hybrids: unknown {', '.join(unknown)}; available: {', '.join(HYBRID_VARIANTS)}")
    client, settings = client_from_args(args)
    connection: dict = {}

    def engine():
        """The engine behind --url, asked once and only when something is not cached."""
        if "engine" not in connection:
            connection["engine"] = engine_for_client(client, settings.engine)
        return connection["engine"]

    def embedder():
        if "embedder" not in connection:
            connection["embedder"] = OnnxEmbedder(settings.embed_model_dir or None,
                                                  query_prefix=settings.embed_query_prefix)
        return connection["embedder"]

    scorer: ModelScorer | None = None
    # Model scores are cached per configured model (RESCORE_BACKEND/RESCORE_MODEL): the model is
    # loaded only when some pair is not cached yet.
    model = f"{settings.reranker.backend}-{settings.reranker.model or 'bundled'}".replace("/", "_")
    results = {}
    for root in roots:
        dataset = load_dataset(root)
        cache = args.cache / dataset.name
        queries = dataset.judged_queries()
        if args.max_queries:
            queries = dict(list(queries.items())[: args.max_queries])
        text = args.stages == "text" or root in text_only
        index = f"beir-{dataset.name.lower()}" + ("-text" if text else "")
        # Every list on disk (the hybrid variants included): the engine is not asked, nothing is indexed.
        listed = ["bm25"] if text else [*FIRST_STAGES, DEFAULT_HYBRID, *HYBRID_VARIANTS]
        queries, runs = cached_runs(cache, queries, listed, listed_only=args.cached_only)
        if runs is None:
            if text:
                stages = ["bm25"]
                ensure_index(client, index, dataset, None, reindex=False)
            else:
                # The hybrid variants are OpenSearch search pipelines (normalization / score-ranker processors).
                variants = list(HYBRID_VARIANTS) if engine().name == "opensearch" else []
                stages = [*FIRST_STAGES, DEFAULT_HYBRID, *variants]
                ensure_index(client, index, dataset, embedder(), reindex=False)
            runs = first_stage_runs(client, index, queries, embedder, args.depth, cache, stages, engine())
        stages = list(runs)
        # The model scores the windows of --rerank-stages (bm25, knn, hybrid) plus --rerank-hybrids.
        scored_stages = [s for s in dict.fromkeys((*args.rerank_stages, *args.rerank_hybrids)) if s in stages]
        todo = candidates({s: runs[s] for s in scored_stages}, args.window)
        corpus: dict[str, dict] = {}
        # Token counts that decide which documents are split (the model's tokenizer), kept on disk.
        counts_path = cache / f"tokens-{model}.json"
        counts = load_json(counts_path) or {}
        counted = json.dumps(counts, sort_keys=True)

        def keys(qid: str, doc_ids: list[str]) -> list[str]:
            nonlocal scorer
            if not settings.passages:
                return list(doc_ids)
            if not corpus:
                corpus.update(load_corpus(dataset.corpus_path))
            scorer = scorer or ModelScorer(settings)
            return scorer.keys(queries[qid], doc_ids, corpus, counts)

        def score_query(qid: str, doc_keys: list[str]) -> list[float]:
            nonlocal scorer
            if not corpus:
                corpus.update(load_corpus(dataset.corpus_path))
            scorer = scorer or ModelScorer(settings)
            return scorer(queries[qid], [corpus[k.split(PASSAGE_KEY)[0]] for k in doc_keys])

        # With passages on, a document longer than the model reads whole is cached under its own key.
        todo = {q: keys(q, docs) for q, docs in todo.items()}
        if args.cached_only:
            have = load_json(cache / f"scores-{model}.json") or {}
            queries = {q: t for q, t in queries.items() if all(d in have.get(q, {}) for d in todo[q])}
            runs = {s: {q: run[q] for q in queries} for s, run in runs.items()}
            todo = {q: todo[q] for q in queries}
            if not queries:
                raise UsageError(f"--cached-only: no query of {dataset.name} is fully scored yet")
        with tqdm(total=len(todo), desc=f"{dataset.name} model scores", unit="q", disable=None,
                  file=sys.stderr) as bar:
            scores = score_candidates(todo, score_query, cache / f"scores-{model}.json",
                                      progress=bar)
        scores = by_document({q: scores.get(q, {}) for q in queries}, keys)
        if json.dumps(counts, sort_keys=True) != counted:
            save_json(counts_path, counts)
        outside = external_runs(args.runs / dataset.name, queries, args.depth) if args.runs else {}
        results[dataset.name] = collection_results(dataset, runs, scores, args.window, args.depth, args.families,
                                                   outside)
        results[dataset.name]["queries"] = len(queries)
    from sidecar.experiments.robustness import FusionConfig

    default = FusionConfig(settings.rerank_fusion, settings.weight_pair, settings.rerank_rank_constant,
                           settings.rerank_temperature)
    previous = "linear(0.5/0.5)"  # the default before the robustness suite chose one
    shown = list(dict.fromkeys([
        "bm25", "knn", DEFAULT_HYBRID, PREVIOUS_HYBRID, f"bm25+rerank:{default.name}", f"knn+rerank:{default.name}",
        f"{DEFAULT_HYBRID}+rerank:{default.name}", f"bm25+rerank:{previous}", f"{DEFAULT_HYBRID}+rerank:{previous}",
        "bm25+rerank:replace", f"{DEFAULT_HYBRID}+rerank:replace",
        *(m for h in args.rerank_hybrids for m in (h, f"{h}+rerank:{default.name}"))]))
    choices = choose(results) if len(results) > 1 else {}
    for name, result in results.items():
        extra = []
        if choices:
            picked = [choices["hybrid"][name][0]] if choices["hybrid"] else []
            extra = [m for m in (*picked, choices["rerank"][name][0]) if m not in shown]
        extra += [m for m in result["rows"] if m.startswith("evaluate:")]
        o = settings.passage_options
        passages = (f"passages {o.max_tokens}/{o.overlap} {o.aggregate} max_passages {o.max_passages}"
                    if o.enabled else "passages off")
        print(format_rows(f"{name} ({result['queries']} queries, window {args.window}, model {model}, {passages})",
                          result, [m for m in shown if m in result["rows"]] + extra))
        print()
    if choices:
        print("leave-one-collection-out (chosen on the others, by mean NDCG@10 gain over their best first stage):")
        for name in results:
            hybrid, gain_h = choices["hybrid"].get(name, ("-", 0.0))
            mode, gain_r = choices["rerank"][name]
            row = results[name]["rows"][mode]
            print(f"  held out {name}: hybrid {hybrid} ({gain_h:+.4f}); rerank {mode} NDCG@10 {row['NDCG@10']:.4f} "
                  f"({gain_r:+.4f} vs {results[name]['best_first_stage']}, p {row['p']:.3f})")
        print(f"  chosen on all: hybrid {choices['hybrid_all']}; rerank {choices['rerank_all']} "
              f"(among {', '.join(WINDOW_INDEPENDENT)}; unrestricted: {choices['rerank_all_unrestricted']})")
        for name in results:
            mode, gain = choices["rerank_unrestricted"][name]
            print(f"  unrestricted, held out {name}: {mode} NDCG@10 {results[name]['rows'][mode]['NDCG@10']:.4f} "
                  f"({gain:+.4f})")
    with_families = [name for name in results if "families" in results[name]]
    if len(with_families) > 1:
        print("fusion families on hybrid+rerank (NDCG@10 gain over the best first stage; each held-out "
              "collection gets the family member best on the others):")
        for family in results[with_families[0]]["families"]:
            table = {name: results[name]["families"][family] for name in with_families}
            held = leave_one_out(table, list(table[with_families[0]]))
            overall = max(table[with_families[0]], key=lambda m: mean(table[c][m] for c in with_families))
            print(f"  {family:<20} " + " | ".join(f"{name} {pick} {gain:+.4f}" for name, (pick, gain) in held.items())
                  + f" || mean held out {mean(g for _, g in held.values()):+.4f}; on all: {overall}")
    if args.out:
        args.out.write_text(json.dumps({"results": results, "choices": choices, "model": model}, indent=1) + "\n")
    return 0
