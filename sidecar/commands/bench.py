"""Benchmark the rerank engine against a naive implementation on the same inputs.

CPU (default): random-weight Qwen3 (tiny, small) with naive torch vs the engine's torch,
shared-prefix, onnx fp32/int8 and quanto int8 backends, and the MiniLM cross-encoder naive vs
engine, on top-50 / top-100 windows of 30-400 token passages. GPU (--device cuda --arch
qwen3-8b --random-weights): bf16 naive vs engine bf16 / quanto int8 / fp8 with MFU against a
bf16 matmul peak measured in the same run. Random weights measure speed only, never relevance.
Needs the models extra: pip install 'rescore-sidecar[models]'.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

from sidecar.commands.common import UsageError, non_negative_int

HELP = "reranker engine vs a naive baseline: pairs/s, p50/p99 ms, speedup (CPU or GPU)"
EPILOG = """examples:
  rescore bench --quick                                  # tiny random Qwen3 + MiniLM, a few minutes on CPU
  rescore bench --json bench-cpu.json                    # tiny and small random Qwen3 + MiniLM
  rescore bench --device cuda --arch qwen3-8b --random-weights --json bench-gpu.json
  rescore bench --device cuda --dry-run                  # the GPU path on CPU, tiny model (CI)

The table goes to stdout (one row per model x workload x engine); --json writes the same records
with pairs_per_s, p50_ms, p99_ms and speedup_vs_naive. Progress bars on interactive stderr only."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--json", type=Path, help="write one record per (model, workload, engine)")
    parser.add_argument("--arch", default=None, help="comma list of tiny,small,qwen3-8b (default: cpu tiny,small; "
                                                     "cuda qwen3-8b)")
    parser.add_argument("--random-weights", action="store_true", help="required for qwen3-8b: build random weights")
    parser.add_argument("--quick", action="store_true", help="fewer windows, tiny model only on CPU")
    parser.add_argument("--work-dir", type=Path, default=Path("~/.cache/rescore-sidecar/bench").expanduser(),
                        help="random models and ONNX exports, reused across runs")
    parser.add_argument("--threads", type=non_negative_int, default=0, help="CPU threads (0 = library default)")
    parser.add_argument("--skip-cross-encoder", action="store_true")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --device cuda: run the GPU benchmark's code path on the CPU with the tiny "
                             "random Qwen3 and one short window per workload (what CI runs)")


def run(args: argparse.Namespace) -> int:
    if args.dry_run and args.device != "cuda":
        raise UsageError("--dry-run rehearses the GPU path: use it with --device cuda")
    default_arch = "qwen3-8b" if args.device == "cuda" and not args.dry_run else ("tiny" if args.quick or args.dry_run
                                                                                  else "tiny,small")
    archs = (args.arch or default_arch).split(",")
    if args.dry_run and "qwen3-8b" in archs:
        raise UsageError("--dry-run runs on the CPU: use --arch tiny or small")
    if args.device == "cuda" and "qwen3-8b" in archs and not args.random_weights:
        raise UsageError("--arch qwen3-8b needs --random-weights (the real weights cannot be fetched here)")
    if args.device == "cpu" and "qwen3-8b" in archs:
        raise UsageError("--arch qwen3-8b is a GPU benchmark: use --device cuda --random-weights")
    # Third-party switches, not sidecar settings: the models are local (no hub calls), and the
    # tokenizers' own thread pool is wanted in this single-process benchmark.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    from sidecar.experiments import rerank_bench as bench

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("sidecar", "transformers", "optimum"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger(bench.__name__).setLevel(logging.INFO)
    started = time.perf_counter()
    records: list[bench.Record] = []
    if args.device == "cuda":
        device = "cpu" if args.dry_run else "cuda"
        for arch in archs:
            done = list(records)

            def save(rows: list[bench.Record], done: list[bench.Record] = done) -> None:
                if args.json:  # rewritten after every row: a run cut short by a time limit keeps its rows
                    args.json.write_text(json.dumps([asdict(r) for r in done + rows], indent=2))

            records += bench.bench_gpu(arch, bench.gpu_workloads(args.quick, dry_run=args.dry_run), device, save)
    else:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        for arch in archs:
            records += bench.bench_cpu_lm(arch, bench.cpu_workloads(args.quick, arch), args.work_dir, args.threads)
        if not args.skip_cross_encoder:
            records += bench.bench_cpu_cross_encoder(bench.cpu_workloads(args.quick, "tiny"), args.threads)
    print(bench.format_table(records))
    print(f"total_s={time.perf_counter() - started:.0f}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in records], indent=2))
    return 0
