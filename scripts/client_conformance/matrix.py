"""Client conformance matrix: the app in app.py, per client, through the sidecar and direct to the engine.

    python scripts/client_conformance/matrix.py --engine opensearch --engine-url http://127.0.0.1:9200 \
        --sidecar-url http://127.0.0.1:8080 [--clients es7,es8,es9,opensearch] [--json out.json]

Each client (elasticsearch-py 7.17 + elasticsearch-dsl 7, 8.19, 9.x with its bundled DSL, opensearch-py)
is installed once into its own directory under ~/.cache/rescore-sidecar/clients (versions of one
package cannot share a venv) and the app runs in a subprocess with PYTHONPATH set to it. Every cell is
- `ok`: the operation worked through the sidecar (a rerank operation also has ext.rerank.status ok;
  any other operation answered what the engine's own client gets directly);
- `same`: it failed through the sidecar exactly as it fails direct (same error class and status);
- `FAIL`: anything else;
- `n/a`: the client has no such parameter (body= only).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

APP = Path(__file__).resolve().with_name("app.py")
CACHE = Path(os.path.expanduser("~/.cache/rescore-sidecar/clients"))
# client name -> the pinned packages installed together into its directory
CLIENTS: dict[str, tuple[str, ...]] = {
    "es7": ("elasticsearch==7.17.13", "elasticsearch-dsl==7.4.1"),
    "es8": ("elasticsearch==8.19.3",),
    "es9": ("elasticsearch==9.5.1",),
    "opensearch": ("opensearch-py==3.2.0",),
}
# The client each engine is normally used with: its direct answers are the reference for plain operations.
NATIVE_CLIENT = {"opensearch": "opensearch", "elasticsearch": "es9"}
RERANK_OPS = frozenset({"fresh_client_rerank", "rerank_ext_params", "rerank_ext_body", "rerank_rescore_params", "rerank_rescore_body",
                        "rerank_retriever_params", "rerank_retriever_body", "rerank_ext_compressed", "msearch_rerank",
                        "search_template_rerank", "dsl_rescore", "dsl_ext", "dsl_retriever"})
# Answers that differ by design between the sidecar and the engine direct.
NOT_COMPARED = frozenset({"info"})
# Engine answers that mean a module is missing (Elasticsearch's integ-test zip ships few; README "Elasticsearch").
MISSING_MODULE_SIGNS = (
    ("for uri [/] and method [GET]", "rest-root"),
    ("_render/template", "lang-mustache"),
    ("_search/template", "lang-mustache"),
    ("_msearch/template", "lang-mustache"),
)


class InstallFailed(RuntimeError):
    """pip could not install a client's packages."""


@dataclass(frozen=True)
class Cell:
    verdict: str  # ok | same | FAIL | n/a
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.verdict}: {self.detail}" if self.detail else self.verdict


def client_dir(name: str, cache: Path = CACHE) -> Path:
    """Return the directory holding this client's packages, installing them on first use."""
    packages = CLIENTS[name]
    target = cache / f"{name}-{'_'.join(p.replace('==', '-') for p in packages)}"
    marker = target / ".installed"
    if marker.exists():
        return target
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "--target", str(target), "--upgrade", *packages], capture_output=True, text=True)
    if done.returncode != 0:
        raise InstallFailed(f"pip install --target {target} {' '.join(packages)} failed:\n{done.stderr[-2000:]}")
    marker.write_text(" ".join(packages) + "\n")
    return target


def run_app(name: str, url: str, index: str, timeout_s: float = 300) -> dict[str, dict]:
    """Run the app with one client against url; return its records by operation."""
    env = {**os.environ, "PYTHONPATH": str(client_dir(name)), "PYTHONNOUSERSITE": "1"}
    done = subprocess.run([sys.executable, str(APP), name, url, index], env=env, capture_output=True, text=True,
                          timeout=timeout_s)
    records = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            records[record["op"]] = record
    if done.returncode != 0 or not records:
        raise RuntimeError(f"app.py {name} {url} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return records


def _signature(record: dict) -> tuple:
    error = record.get("error") or {}
    return error.get("class"), error.get("status")


def _short(record: dict) -> str:
    if record["outcome"] != "error":
        return record["outcome"]
    error = record["error"]
    status = f" {error['status']}" if error.get("status") else ""
    return f"{error['class']}{status}"


def _rerank_problem(op: str, result: dict) -> str | None:
    """Return why a rerank operation's answer is not a reranked one, or None."""
    answers = result["entries"][1:] if op == "msearch_rerank" else [result]
    for answer in answers:
        if answer.get("rerank_status") != "ok":
            return f"ext.rerank.status={answer.get('rerank_status')!r}"
        if not answer.get("ids"):
            return "no hits"
    return None


def missing_module(reason: str) -> str | None:
    """Return the engine module whose absence an error reason shows, or None."""
    return next((module for sign, module in MISSING_MODULE_SIGNS if sign in reason), None)


def judge(op: str, sidecar: dict, direct: dict, reference: dict | None) -> Cell:
    """Return the cell for one operation: via the sidecar vs the same client direct and the reference answer."""
    if sidecar["outcome"] == "n/a":
        return Cell("n/a")
    if sidecar["outcome"] == "ok":
        if op in RERANK_OPS:
            problem = _rerank_problem(op, sidecar["result"])
            return Cell("FAIL", problem) if problem else Cell("ok", f"direct {_short(direct)}")
        if op in NOT_COMPARED or reference is None or reference.get("outcome") != "ok":
            return Cell("ok", f"direct {_short(direct)}")
        if sidecar["result"] != reference["result"]:
            return Cell("FAIL", f"answer {sidecar['result']} != direct {reference['result']}")
        return Cell("ok", f"direct {_short(direct)}")
    if direct["outcome"] == "error" and _signature(sidecar) == _signature(direct):
        module = missing_module(sidecar["error"]["reason"])
        why = f"the engine lacks the {module} module" if module else sidecar["error"]["reason"][:120]
        return Cell("same", f"{_short(sidecar)} ({why})")
    reason = sidecar["error"]["reason"][:160]
    return Cell("FAIL", f"{_short(sidecar)} ({reason}); direct {_short(direct)}")


def build_matrix(engine: str, engine_url: str, sidecar_url: str,
                 clients: tuple[str, ...] = tuple(CLIENTS)) -> dict[str, dict[str, Cell]]:
    """Return {client: {operation: Cell}} for one engine."""
    runs = {}
    for name in clients:
        runs[name] = (run_app(name, sidecar_url, f"conformance-{name}-sidecar"),
                      run_app(name, engine_url, f"conformance-{name}-direct"))
    native = NATIVE_CLIENT[engine]
    reference = runs[native][1] if native in runs else run_app(native, engine_url, f"conformance-{native}-direct")
    return {name: {op: judge(op, record, direct_run[op], reference.get(op)) for op, record in sidecar_run.items()}
            for name, (sidecar_run, direct_run) in runs.items()}


def format_matrix(engine: str, matrix: dict[str, dict[str, Cell]]) -> str:
    """Return the matrix as a Markdown table (operations × clients)."""
    clients = list(matrix)
    ops = list(next(iter(matrix.values())))
    lines = [f"| {engine}: operation | " + " | ".join(clients) + " |", "|---|" + "---|" * len(clients)]
    for op in ops:
        lines.append(f"| {op} | " + " | ".join(str(matrix[c].get(op, Cell('-'))) for c in clients) + " |")
    return "\n".join(lines)


def failures(matrix: dict[str, dict[str, Cell]]) -> list[str]:
    """Return 'client op: detail' for every FAIL cell."""
    return [f"{client} {op}: {cell.detail}" for client, row in matrix.items() for op, cell in row.items()
            if cell.verdict == "FAIL"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=sorted(NATIVE_CLIENT), required=True)
    parser.add_argument("--engine-url", required=True)
    parser.add_argument("--sidecar-url", required=True)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--json", help="also write {client: {op: [verdict, detail]}} here")
    args = parser.parse_args(argv)
    matrix = build_matrix(args.engine, args.engine_url, args.sidecar_url, tuple(args.clients.split(",")))
    print(format_matrix(args.engine, matrix))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {c: {op: [cell.verdict, cell.detail] for op, cell in row.items()} for c, row in matrix.items()}, indent=1))
    failed = failures(matrix)
    for line in failed:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
