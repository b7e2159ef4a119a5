#!/usr/bin/env python3
"""Run OpenSearch's own REST API YAML tests directly and through the sidecar; list the differences.

    python scripts/rest_yaml_suite.py --engine http://127.0.0.1:9213 --start-sidecar
    python scripts/rest_yaml_suite.py --engine URL --sidecar URL [--subset 100] [--filter indices.create]

The tests come from `org.opensearch:rest-api-spec:<version>` (fetched with Maven into
~/.cache/rescore-sidecar/rest-api-spec on first use, never committed). Each test runs against the
engine directly, the cluster is wiped, then it runs through the sidecar and the cluster is wiped
again. The summary counts direct passes, sidecar passes and the tests that pass directly but fail
through the sidecar (the target is 0), each with its failure reason. `--start-sidecar` starts a
gunicorn sidecar with RESCORE_PROXY_ALLOW=all (pass-through of admin APIs is what the suite tests).

For the engine, start OpenSearch with the settings the suite's README asks for, e.g.
  OPENSEARCH_PORT=9213 bash scripts/opensearch.sh start -Enode.attr.testattr=test -Epath.repo=/tmp \
      -Erepositories.url.allowed_urls='http://snapshot.*'
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rest_yaml.runner import (load_api_specs, load_tests, run_test, subset, take_baseline,  # noqa: E402
                                    wipe_cluster)

DEFAULT_VERSION = "3.1.0"
CACHE = Path(os.path.expanduser("~/.cache/rescore-sidecar/rest-api-spec"))


def spec_dir(version: str = DEFAULT_VERSION, cache: Path = CACHE) -> Path:
    """Return the unpacked rest-api-spec directory, fetching the jar with Maven when absent."""
    target = cache / version
    marker = target / "rest-api-spec" / "api" / "_common.json"
    if marker.is_file():
        return target / "rest-api-spec"
    cache.mkdir(parents=True, exist_ok=True)
    jar = cache / f"rest-api-spec-{version}.jar"
    if not jar.is_file():
        cmd = ["mvn", "-q", "-B", "dependency:copy", f"-Dartifact=org.opensearch:rest-api-spec:{version}",
               f"-DoutputDirectory={cache}"]
        done = subprocess.run(cmd, cwd=cache, capture_output=True, text=True)
        if done.returncode != 0 or not jar.is_file():
            raise RuntimeError(f"could not fetch org.opensearch:rest-api-spec:{version} with Maven:\n"
                               f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    with zipfile.ZipFile(jar) as archive:
        archive.extractall(target)
    return target / "rest-api-spec"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sidecar(engine_url: str, port: int, log_path: Path) -> subprocess.Popen:
    """Start the sidecar under gunicorn with the pass-through fully open; wait for /health."""
    env = {**os.environ, "RESCORE_OPENSEARCH_URL": engine_url, "RESCORE_HOST": "127.0.0.1",
           "RESCORE_PORT": str(port), "RESCORE_PROXY_ALLOW": "all", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "sidecar/gunicorn.conf.py", "sidecar.wsgi:app"],
                            cwd=ROOT, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sidecar exited:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("sidecar did not answer /health within 300 s")


def engine_version(url: str) -> str:
    return requests.get(url, timeout=30).json()["version"]["number"]


def compare(engine_url: str, sidecar_url: str, tests, api_dir: Path, *, progress: bool = False,
            rows_file: Path | None = None) -> dict:
    """Run each test directly and through the sidecar (wiping in between); return the summary.

    With rows_file, every result is appended to it as one JSON line as soon as it is known, and
    tests already recorded there are not run again (a long run can be resumed).
    """
    specs = load_api_specs(api_dir)
    version = engine_version(engine_url)
    admin = requests.Session()
    baseline = take_baseline(engine_url, admin)
    wipe_cluster(engine_url, baseline, admin)
    direct_session, sidecar_session = requests.Session(), requests.Session()
    rows = []
    done: dict[str, dict] = {}
    if rows_file is not None and rows_file.is_file():
        for line in rows_file.read_text().splitlines():
            row = json.loads(line)
            done[row["test"]] = row
    started = time.perf_counter()
    for number, test in enumerate(tests, 1):
        if test.test_id in done:
            rows.append(done[test.test_id])
            continue
        direct = run_test(test, engine_url, specs, version, direct_session)
        if direct.status != "skip":
            wipe_cluster(engine_url, baseline, admin)
            through = run_test(test, sidecar_url, specs, version, sidecar_session)
            wipe_cluster(engine_url, baseline, admin)
        else:
            through = direct
        row = {"test": test.test_id, "direct": direct.status, "sidecar": through.status,
               "direct_reason": direct.reason, "sidecar_reason": through.reason}
        rows.append(row)
        if rows_file is not None:
            with rows_file.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
        if progress and (number % 50 == 0 or number == len(tests)):
            print(f"[{number}/{len(tests)}] {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    diffs = [r for r in rows if r["direct"] == "pass" and r["sidecar"] != "pass"]
    return {
        "engine_version": version,
        "tests": len(rows),
        "skipped": sum(r["direct"] == "skip" for r in rows),
        "direct_pass": sum(r["direct"] == "pass" for r in rows),
        "sidecar_pass": sum(r["sidecar"] == "pass" for r in rows),
        "direct_pass_sidecar_fail": len(diffs),
        "sidecar_pass_direct_fail": sum(r["sidecar"] == "pass" and r["direct"] != "pass" for r in rows),
        "diffs": diffs,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", required=True, help="engine base URL (the tests also run directly here)")
    parser.add_argument("--sidecar", help="sidecar base URL in front of --engine")
    parser.add_argument("--start-sidecar", action="store_true", help="start a gunicorn sidecar for the run")
    parser.add_argument("--spec-version", default=DEFAULT_VERSION)
    parser.add_argument("--subset", type=int, default=0, help="run only N tests spread over the API families")
    parser.add_argument("--filter", default="", help="only tests whose file path contains this text")
    parser.add_argument("--json", type=Path, help="write the full result (every test) here")
    parser.add_argument("--rows", type=Path, help="append each test's result here as it runs; resume from it")
    args = parser.parse_args(argv)
    if not args.sidecar and not args.start_sidecar:
        parser.error("give --sidecar URL or --start-sidecar")
    api_root = spec_dir(args.spec_version)
    tests = load_tests(api_root / "test")
    if args.filter:
        tests = [t for t in tests if args.filter in t.file]
    if args.subset:
        tests = subset(tests, args.subset)
    proc = None
    sidecar_url = args.sidecar
    if args.start_sidecar:
        port = free_port()
        proc = start_sidecar(args.engine, port, Path(f"/tmp/rest-yaml-sidecar-{port}.log"))
        sidecar_url = f"http://127.0.0.1:{port}"
    try:
        summary = compare(args.engine, sidecar_url, tests, api_root / "api", progress=True, rows_file=args.rows)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    print(f"engine {summary['engine_version']}: {summary['tests']} tests, {summary['skipped']} skipped, "
          f"direct pass {summary['direct_pass']}, sidecar pass {summary['sidecar_pass']}, "
          f"direct-pass/sidecar-fail {summary['direct_pass_sidecar_fail']}, "
          f"sidecar-pass/direct-fail {summary['sidecar_pass_direct_fail']} ({summary['seconds']} s)")
    for diff in summary["diffs"]:
        print(f"DIFF {diff['test']}: {diff['sidecar_reason']}")
    return 1 if summary["diffs"] else 0


if __name__ == "__main__":
    sys.exit(main())
