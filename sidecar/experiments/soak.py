"""Memory soak: start a sidecar under gunicorn, send mixed traffic with long, distinct texts, watch RSS.

Traffic (each request's text is new, so every cache keeps filling): plain searches, reranked
searches with queries of 100 to `max_query_chars` characters, `_msearch` with a plain and a
reranked entry, stored search templates, search templates with made-up long ids (the stored-
template cache) and reranked searches with an inline document template (the parsed-template
cache). Every worker's resident memory (VmRSS, its model process included) is sampled; growth is measured from the end of the
warm-up (model loaded, allocator pools grown, caches started) to the end of the run.
`rescore soak` (sidecar/commands/soak.py) drives it.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("plain", "rerank", "msearch", "template", "template_unknown", "doc_template")
# Traffic shares of KINDS (plain + reranked + msearch + templates).
WEIGHTS = (30, 30, 15, 10, 5, 10)
WINDOW, SIZE = 10, 10


@dataclass
class Sample:
    """RSS of every gunicorn worker (pid -> bytes) at one time (seconds since the start)."""

    at_s: float
    rss: dict[int, int]


@dataclass
class SoakState:
    statuses: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def load_texts(corpus: Path | None, limit: int = 3000) -> list[str]:
    """Return document texts to build queries from: a BEIR corpus.jsonl, or generated sentences."""
    if corpus is not None and corpus.is_file():
        texts = []
        with corpus.open() as fh:
            for line in fh:
                doc = json.loads(line)
                text = f"{doc.get('title', '')} {doc.get('text', '')}".strip()
                if text:
                    texts.append(text)
                if len(texts) >= limit:
                    break
        return texts
    rng = random.Random(7)
    words = [f"w{n}" for n in range(5000)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(20, 200))) for _ in range(limit)]


def make_query(rng: random.Random, texts: list[str], max_chars: int, serial: int) -> str:
    """Return a distinct query text: corpus text cut to a random length (often long), plus a serial."""
    length = int(min(max_chars, 100 * (max_chars / 100) ** rng.random()))  # log-uniform 100..max_chars
    pieces, total = [], 0
    while total < length:
        piece = rng.choice(texts)
        pieces.append(piece)
        total += len(piece) + 1
    return f"{' '.join(pieces)[:length]} q{serial}"


def request_for(kind: str, index: str, query: str, serial: int) -> tuple[str, str, bytes]:
    """Return (method, path, body) of one request of this kind."""
    match = {"query": {"match": {"text": query[:2000]}}, "size": SIZE}
    rerank = {"ext": {"rerank": {"query_context": {"query_text": query}, "window_size": WINDOW}}}
    if kind == "plain":
        return "POST", f"/{index}/_search", json.dumps(match).encode()
    if kind == "rerank":
        return "POST", f"/{index}/_search", json.dumps({**match, **rerank}).encode()
    if kind == "msearch":
        lines = [{"index": index}, match, {"index": index}, {**match, **rerank}]
        return "POST", "/_msearch", ("\n".join(json.dumps(line) for line in lines) + "\n").encode()
    if kind == "template":
        body = {"id": "rescore-bm25", "params": {"query_text": query[:2000], "size": SIZE}}
        return "POST", f"/{index}/_search/template", json.dumps(body).encode()
    if kind == "template_unknown":  # a made-up, long stored-template id: OpenSearch answers 404
        body = {"id": f"soak-{serial}-" + "x" * 20000, "params": {"query_text": "q"}}
        return "POST", f"/{index}/_search/template", json.dumps(body).encode()
    template = f"{{title}}\nSoak {serial}: {{text}}"  # a new inline document template each time
    body = {**match, "ext": {"rerank": {**rerank["ext"]["rerank"], "doc_template": template}}}
    return "POST", f"/{index}/_search", json.dumps(body).encode()


def children(pid: int) -> list[int]:
    """Return the pids of pid's child processes (forked by any of its threads); [] when it is gone."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            found += map(int, Path(f"/proc/{pid}/task/{task}/children").read_text().split())
        except OSError:
            continue
    return found


def _is_pool_master(pid: int) -> bool:
    try:
        return b"RESCORE_SERVING_ROLE=pool" in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def worker_pids(master_pid: int) -> list[int]:
    """Return the pids of the gunicorn master's workers (its children but the rerank pool's master)."""
    return [pid for pid in children(master_pid) if not _is_pool_master(pid)]


def pool_pids(master_pid: int) -> list[int]:
    """Return the pid of the rerank pool's master started by this gunicorn master ([] = no pool)."""
    return [pid for pid in children(master_pid) if _is_pool_master(pid)]


def rss_bytes(pid: int) -> int | None:
    """Return a process's resident set size (VmRSS), or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def descendants(pid: int) -> list[int]:
    """Return the pids of every process below pid (its children, theirs, and so on)."""
    return [below for child in children(pid) for below in (child, *descendants(child))]


def tree_rss_bytes(pid: int) -> int | None:
    """Return the RSS of a worker plus its model process (RESCORE_MODEL_PROCESS), None when it is gone."""
    own = rss_bytes(pid)
    if own is None:
        return None
    return own + sum(rss or 0 for rss in map(rss_bytes, descendants(pid)))


def _sample(master_pid: int, at_s: float) -> Sample:
    """RSS of each worker's process tree and of the rerank pool's (its master, workers and models)."""
    return Sample(round(at_s, 1), {pid: rss for pid in worker_pids(master_pid) + pool_pids(master_pid)
                                   if (rss := tree_rss_bytes(pid)) is not None})


def start_sidecar(opensearch: str, port: int, workers: int, env_overrides: dict[str, str],
                  log_path: Path) -> subprocess.Popen:
    """Start the sidecar under gunicorn (as `rescore serve` does) and wait until /health answers."""
    env = {**os.environ, "RESCORE_OPENSEARCH_URL": opensearch, "RESCORE_PORT": str(port),
           "RESCORE_HOST": "127.0.0.1", "RESCORE_WORKERS": str(workers), **env_overrides}
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "sidecar" / "gunicorn.conf.py"),
                             "sidecar.wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sidecar exited with {proc.returncode}; log: {log_path}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200:
                if len(worker_pids(proc.pid)) >= workers:
                    return proc
        except requests.RequestException:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"sidecar did not get ready within 300 s; log: {log_path}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _client(url: str, index: str, texts: list[str], max_chars: int, seed: int, until: float,
            state: SoakState) -> None:
    rng = random.Random(seed)
    serial = seed * 10_000_000
    while time.monotonic() < until:
        serial += 1
        kind = rng.choices(KINDS, WEIGHTS)[0]
        method, path, body = request_for(kind, index, make_query(rng, texts, max_chars, serial), serial)
        headers = {"Content-Type": "application/x-ndjson" if kind == "msearch" else "application/json"}
        try:
            # A new connection per request, so the kernel spreads them over every worker.
            response = requests.request(method, url + path, data=body, headers=headers, timeout=120)
            status = response.status_code
            expected = 404 if kind == "template_unknown" else 200
            problem = None if status == expected else f"{kind} -> {status}: {response.text[:200]}"
        except requests.RequestException as exc:
            status, problem = 0, f"{kind} -> {type(exc).__name__}"
        with state.lock:
            state.statuses[status] += 1
            state.kinds[kind] += 1
            if problem and len(state.failures) < 20:
                state.failures.append(problem)


def run_soak(opensearch: str, index: str, *, seconds: float, warmup_s: float, clients: int = 3, workers: int = 2,
             port: int = 18480, max_query_chars: int = 20000, corpus: Path | None = None,
             sample_every_s: float = 5.0, env_overrides: dict[str, str] | None = None,
             log_path: Path | None = None) -> dict:
    """Run the soak and return its report (RSS at warm-up end and at the end, growth, traffic)."""
    texts = load_texts(corpus)
    log_path = log_path or Path(os.environ.get("TMPDIR", "/tmp")) / f"rescore-soak-{port}.log"
    proc = start_sidecar(opensearch, port, workers, env_overrides or {}, log_path)
    url = f"http://127.0.0.1:{port}"
    state = SoakState()
    samples: list[Sample] = []
    started = time.monotonic()
    until = started + warmup_s + seconds
    threads = [threading.Thread(target=_client, args=(url, index, texts, max_query_chars, n + 1, until, state),
                                daemon=True) for n in range(clients)]
    try:
        for thread in threads:
            thread.start()
        warm: Sample | None = None
        while time.monotonic() < until:
            now = time.monotonic() - started
            sample = _sample(proc.pid, now)
            samples.append(sample)
            if warm is None and now >= warmup_s:
                warm = sample
            time.sleep(min(sample_every_s, max(0.0, until - time.monotonic())))
        for thread in threads:
            thread.join(timeout=180)
        end = _sample(proc.pid, time.monotonic() - started)
        samples.append(end)
        warm = warm or samples[0]
        try:
            ready = requests.get(f"{url}/ready", timeout=10).json()
        except (requests.RequestException, ValueError):
            ready = {}
    finally:
        stop(proc)
    return report(warm, end, samples, state, ready, seconds=seconds, warmup_s=warmup_s, clients=clients,
                  workers=workers, max_query_chars=max_query_chars)


def report(warm: Sample, end: Sample, samples: list[Sample], state: SoakState, ready: dict, **setup) -> dict:
    """Return the soak's figures: per-worker RSS at warm-up end and at the end, growth in percent."""
    per_worker = {}
    for pid, rss_end in end.rss.items():
        rss_warm = warm.rss.get(pid)
        per_worker[str(pid)] = {"rss_warm_mb": _mb(rss_warm), "rss_end_mb": _mb(rss_end),
                                "rss_peak_mb": _mb(max(s.rss.get(pid, 0) for s in samples)),
                                "growth_pct": None if not rss_warm else round(100 * (rss_end - rss_warm) / rss_warm, 2)}
    restarted = sorted(set(warm.rss) ^ set(end.rss))
    growths = [w["growth_pct"] for w in per_worker.values() if w["growth_pct"] is not None]
    return {
        **setup,
        "requests": sum(state.kinds.values()),
        "kinds": dict(state.kinds),
        "statuses": {str(k): v for k, v in sorted(state.statuses.items())},
        "unexpected": state.failures,
        "workers_rss": per_worker,
        "workers_replaced": restarted,
        "max_growth_pct": max(growths) if growths else None,
        "rss_warm_total_mb": _mb(sum(warm.rss.values())),
        "rss_end_total_mb": _mb(sum(end.rss.values())),
        "score_cache": (ready.get("reranker") or {}).get("cache"),
        "timeline": [{"t": s.at_s, "rss_mb": {str(p): _mb(v) for p, v in s.rss.items()}} for s in samples],
    }


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)
