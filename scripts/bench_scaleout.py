#!/usr/bin/env python3
"""Scale-out benchmark on one machine: (A) 1 sidecar -> 1 OpenSearch node vs (B) 2 sidecars behind nginx + Redis
+ a 3-node OpenSearch cluster (index with 2 replicas: every node holds a copy).

    python scripts/bench_scaleout.py --dataset /work/shared/datasets/scifact --seconds 60
    python scripts/bench_scaleout.py --short          # demo corpus, 15 s runs (what CI's test does)

Both set-ups get the same number of gunicorn workers (A: 1 replica x 2 workers, B: 2 replicas x 1
worker) and the same distinct queries, alternating plain and reranked searches. Printed side by side:
req/s and p50/p99 per kind (on one machine the ratio shows the overhead of the extra parts, not
capacity), the cross-replica cache hit ratio (page 1+2 on one replica, then page 2 on the next: its
cache_hits / (cache_hits + scored)), page consistency (that page 2 == the slice of the first
answer), and, for B, the searches failed while one engine node is SIGKILLed mid-run.

Ports: OpenSearch --port (A) and --port+1.. (B), transport --transport-port likewise; sidecars, Redis
and nginx from --base-port. Everything started is stopped at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sidecar.experiments.scaleout import QuerySource, cross_replica, load_queries, run_load  # noqa: E402
from sidecar.experiments.soak import start_sidecar, stop  # noqa: E402

INDEX = "scaleout"
NODES = 3


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def opensearch(*args: str, port: int, transport: int, heap: str) -> str:
    env = {**os.environ, "OPENSEARCH_PORT": str(port), "OPENSEARCH_TRANSPORT_PORT": str(transport),
           "OPENSEARCH_HEAP": heap, "OPENSEARCH_START_TIMEOUT": "400"}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "opensearch.sh"), *args], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"opensearch.sh {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def ingest(url: str, corpus: Path, replicas: int, limit: int) -> int:
    docs = [json.loads(line) for line in corpus.read_text().splitlines()[:limit] if line.strip()]
    requests.delete(f"{url}/{INDEX}", timeout=60)
    settings = {"settings": {"number_of_shards": 1, "number_of_replicas": replicas},
                "mappings": {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}}
    created = requests.put(f"{url}/{INDEX}", json=settings, timeout=120)
    if created.status_code != 200:
        raise SystemExit(f"creating {INDEX}: {created.text[:500]}")
    for start in range(0, len(docs), 1000):
        lines = "".join(json.dumps({"index": {"_id": d["_id"]}}) + "\n"
                        + json.dumps({"title": d.get("title", ""), "text": d["text"]}) + "\n"
                        for d in docs[start:start + 1000])
        bulk = requests.post(f"{url}/{INDEX}/_bulk", data=lines, headers={"Content-Type": "application/x-ndjson"},
                             timeout=300)
        if bulk.status_code != 200 or bulk.json()["errors"]:
            raise SystemExit(f"bulk into {INDEX} failed: {bulk.text[:500]}")
    requests.post(f"{url}/{INDEX}/_refresh", timeout=120)
    health = requests.get(f"{url}/_cluster/health/{INDEX}?wait_for_status=green&timeout=300s", timeout=310).json()
    if health.get("status") != "green":
        raise SystemExit(f"{INDEX} is not green: {health}")
    return len(docs)


def start_redis(port: int) -> subprocess.Popen:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    import redis

    for _ in range(150):
        try:
            redis.Redis(port=port).ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("redis-server did not start")


def nginx(action: str, script: Path, port: int, upstreams: list[str], run_dir: Path) -> None:
    env = {**os.environ, "NGINX_PORT": str(port), "NGINX_UPSTREAM": ",".join(upstreams),
           "NGINX_RUN_DIR": str(run_dir), "NGINX_WORKERS": "1", "NGINX_STOP_WAIT_S": "5"}
    done = subprocess.run(["bash", str(script), action], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"nginx.sh {action} failed:\n{done.stderr[-2000:]}")


def node_pid(port: int) -> int:
    return int(Path(f"/tmp/rescore-opensearch-{port}/opensearch.pid").read_text().split()[0])


def sidecar_env() -> dict[str, str]:
    # A loaded machine must not turn a slow rerank into a degraded answer: measure the work, not
    # timeouts (the longest budget, so admission control refuses nothing it could finish).
    return {"RESCORE_RERANK_TIMEOUT_MS": "300000", "RESCORE_OPENSEARCH_RETRY_AFTER_S": "30",
            "RESCORE_LOG_LEVEL": "WARNING"}


def measure(front: str, replicas: list[str], queries: list[str], cross: list[str], args, *,
            kill_port: int | None = None) -> dict:
    source = QuerySource(queries)
    # Warm-up (model sessions, connections), not measured; its texts are not used again.
    run_load(front, INDEX, QuerySource([f"warm up {q}" for q in cross]), seconds=3, clients=2)
    log(f"load: {args.seconds:.0f} s, {args.clients} clients through {front}")
    result = {"load": run_load(front, INDEX, source, seconds=args.seconds, clients=args.clients)}
    log("cross-replica pages")
    result["cross"] = cross_replica(replicas, INDEX, cross)
    if kill_port is not None:
        def kill() -> None:
            log(f"SIGKILL engine node :{kill_port}")
            os.kill(node_pid(kill_port), signal.SIGKILL)
        log(f"kill run: {args.kill_seconds:.0f} s, node killed after {args.kill_seconds / 3:.0f} s")
        result["kill"] = run_load(front, INDEX, source, seconds=args.kill_seconds, clients=args.clients,
                                  during=kill, during_after_s=args.kill_seconds / 3)
    return result


def run_a(args, corpus: Path, queries: list[str], cross: list[str], stack: ExitStack, tmp: Path) -> dict:
    port, transport = args.port, args.transport_port
    log(f"A: one OpenSearch node on :{port}")
    opensearch("start", port=port, transport=transport, heap=args.heap)
    stack.callback(opensearch, "stop", port=port, transport=transport, heap=args.heap)
    url = f"http://127.0.0.1:{port}"
    docs = ingest(url, corpus, 0, args.max_docs)
    log(f"A: {docs} docs indexed; one sidecar (2 workers)")
    proc = start_sidecar(url, args.base_port + 1, 2, sidecar_env(), tmp / "sidecar-a.log")
    stack.callback(stop, proc)
    front = f"http://127.0.0.1:{args.base_port + 1}"
    result = measure(front, [front], queries, cross, args)
    return {"docs": docs, **result}


def run_b(args, corpus: Path, queries: list[str], cross: list[str], stack: ExitStack, tmp: Path) -> dict:
    port, transport = args.port + 1, args.transport_port + 1
    log(f"B: {NODES}-node OpenSearch cluster on :{port}..{port + NODES - 1}")
    urls = opensearch("cluster-start", str(NODES), port=port, transport=transport,
                      heap=args.heap).splitlines()[-1].split(",")
    stack.callback(opensearch, "cluster-stop", str(NODES), port=port, transport=transport, heap=args.heap)
    docs = ingest(urls[0], corpus, NODES - 1, args.max_docs)
    redis_port = args.base_port + 10
    stack.callback(stop, start_redis(redis_port))
    env = {**sidecar_env(), "RESCORE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    replicas = []
    for n in range(2):
        sidecar_port = args.base_port + 2 + n
        log(f"B: sidecar replica {n + 1} (1 worker) on :{sidecar_port} -> {','.join(urls)}")
        proc = start_sidecar(",".join(urls), sidecar_port, 1, env, tmp / f"sidecar-b{n}.log")
        stack.callback(stop, proc)
        replicas.append(f"127.0.0.1:{sidecar_port}")
    nginx_port = args.base_port
    run_dir = tmp / "nginx"
    nginx("start", args.nginx_script, nginx_port, replicas, run_dir)
    stack.callback(nginx, "stop", args.nginx_script, nginx_port, replicas, run_dir)
    front = f"http://127.0.0.1:{nginx_port}"
    result = measure(front, [f"http://{r}" for r in replicas], queries, cross, args, kill_port=port + 1)
    return {"docs": docs, **result}


def fmt(value) -> str:
    return "-" if value is None else str(value)


def table(a: dict, b: dict) -> str:
    rows = [("searches/s (all)", a["load"]["requests_per_s"], b["load"]["requests_per_s"])]
    for kind in ("plain", "rerank"):
        ka, kb = a["load"]["kinds"][kind], b["load"]["kinds"][kind]
        rows += [(f"{kind} req/s", ka["requests_per_s"], kb["requests_per_s"]),
                 (f"{kind} p50 ms", ka["p50_ms"], kb["p50_ms"]), (f"{kind} p99 ms", ka["p99_ms"], kb["p99_ms"])]
    rows += [("failed searches (load)", a["load"]["failed"], b["load"]["failed"]),
             ("page-2 cache hit ratio (other process)", a["cross"]["cache_hit_ratio"], b["cross"]["cache_hit_ratio"]),
             ("page consistency", f"{a['cross']['consistent']}/{a['cross']['queries']}",
              f"{b['cross']['consistent']}/{b['cross']['queries']}"),
             ("failed while a node is killed", "n/a (one node)",
              f"{b['kill']['failed']} of {b['kill']['ok'] + b['kill']['failed']}")]
    lines = [f"{'':40} {'A: 1 sidecar, 1 node':>22} {'B: 2 sidecars+nginx+Redis, 3 nodes':>36} {'B/A':>6}"]
    for name, va, vb in rows:
        ratio = f"{vb / va:.2f}" if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and va else ""
        lines.append(f"{name:40} {fmt(va):>22} {fmt(vb):>36} {ratio:>6}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("/work/shared/datasets/scifact"),
                        help="BEIR dataset dir (corpus.jsonl, queries.jsonl) or a corpus.jsonl")
    parser.add_argument("--short", action="store_true", help="demo corpus, 15 s runs, 4 clients")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured load run per set-up")
    parser.add_argument("--kill-seconds", type=float, default=30.0, help="B's run during which a node is killed")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--cross-queries", type=int, default=40, help="queries for the cross-replica pages")
    parser.add_argument("--max-docs", type=int, default=100000, help="index at most this many documents")
    parser.add_argument("--port", type=int, default=9220, help="OpenSearch HTTP port of A (B: the next ones)")
    parser.add_argument("--transport-port", type=int, default=9720, help="OpenSearch transport port of A")
    parser.add_argument("--heap", default="384m", help="OpenSearch heap per node")
    parser.add_argument("--base-port", type=int, default=18900, help="nginx; sidecars +1..+3; Redis +10")
    parser.add_argument("--nginx-script", type=Path, default=ROOT / "scripts" / "nginx.sh",
                        help="scripts/nginx.sh (takes NGINX_UPSTREAM as a comma list)")
    parser.add_argument("--json", type=Path, help="write the full results here")
    args = parser.parse_args(argv)
    if args.short:
        args.dataset, args.seconds, args.kill_seconds, args.cross_queries = ROOT / "demo", 15.0, 15.0, 10
    dataset = args.dataset
    corpus = dataset / "corpus.jsonl" if dataset.is_dir() else dataset
    queries = load_queries(dataset)
    if len(queries) < args.cross_queries + 10:
        raise SystemExit(f"{dataset} gives only {len(queries)} distinct queries")
    cross, queries = queries[-args.cross_queries:], queries[:-args.cross_queries]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rescore-scaleout-") as tmp:
        with ExitStack() as stack:
            a = run_a(args, corpus, queries, cross, stack, Path(tmp))
        with ExitStack() as stack:
            b = run_b(args, corpus, queries, cross, stack, Path(tmp))
    print(f"scale-out benchmark: {corpus} ({a['docs']} docs), {len(queries)} distinct load queries, "
          f"{args.clients} clients, {args.seconds:.0f} s per set-up, reranked window 20, same total gunicorn "
          f"workers (2); took {time.monotonic() - started:.0f} s")
    print(table(a, b))
    for name, result in (("A", a), ("B", b)):
        for part in ("load", "kill"):
            if part in result and result[part]["failures"]:
                print(f"{name} {part} failures: {result[part]['failures']}")
        if result["cross"]["mismatches"]:
            print(f"{name} page mismatches: {result['cross']['mismatches']}")
    if args.json:
        args.json.write_text(json.dumps({"A": a, "B": b}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
