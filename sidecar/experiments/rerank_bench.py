"""Reranker engine benchmark: the engine's backends vs a naive implementation on the same inputs.

CPU: random-weight Qwen3 (tiny, small) with naive torch vs the engine's torch, shared-prefix,
onnx fp32/int8 and quanto int8 backends, and the MiniLM cross-encoder naive vs engine, on top-50 /
top-100 windows of 30-400 word passages. GPU: bf16 naive vs engine bf16 / quanto int8 / fp8 with
MFU against a bf16 matmul peak measured in the same run. Random weights measure speed only.
`rescore bench` (sidecar/commands/bench.py) drives it.
"""

from __future__ import annotations

import gc
import logging
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sidecar.rerank.options import DEFAULT_INSTRUCTION, RerankerOptions
from sidecar.rerank.prompt import QWEN3_PREFIX, QWEN3_SUFFIX

logger = logging.getLogger(__name__)

WORDS = (
    "the of and to in is was for on that with as by at from his her an which are be this were "
    "had not but have it or they their one all been has who when more there can its would other "
    "time first into only new some these two may than city river music water school history war "
    "system world state government family people between during after under while where about "
    "north south house century church court energy market island film album species season"
).split()
NaiveFn = Callable[[str, list[str]], list[float]]


@dataclass(frozen=True, slots=True)
class Window:
    """One query and its first-stage documents."""

    query: str
    documents: list[str]


@dataclass(frozen=True, slots=True)
class Workload:
    """A named set of query windows."""

    name: str
    windows: list[Window]

    @property
    def pairs(self) -> int:
        return sum(len(w.documents) for w in self.windows)


@dataclass(frozen=True, slots=True)
class Record:
    """One benchmark row: model x workload x engine."""

    model: str
    workload: str
    engine: str
    pairs: int
    pairs_per_s: float
    p50_ms: float
    p99_ms: float
    speedup_vs_naive: float
    max_abs_diff: float | None
    spearman_vs_naive: float | None = None
    mfu: float | None = None
    peak_memory_gb: float | None = None


def make_workload(name: str, *, k: int, windows: int, seed: int, lengths: tuple[int, int]) -> Workload:
    """Return windows of k passages with word counts drawn uniformly from lengths (deterministic)."""
    rng = random.Random(seed)
    result = []
    for _ in range(windows):
        query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))
        docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(*lengths))) for _ in range(k)]
        result.append(Window(query=query, documents=docs))
    return Workload(name=name, windows=result)


def cpu_workloads(quick: bool, arch: str) -> list[Workload]:
    """Return the mixed-length (30-400 words) top-50 and top-100 workloads for one CPU model."""
    top50 = make_workload("top50-mixed", k=50, windows=1 if quick else 2, seed=50, lengths=(30, 400))
    top100 = make_workload("top100-mixed", k=100, windows=1 if quick else 2, seed=100, lengths=(30, 400))
    # On "small" the naive path spends ~20 s per batch of 16 on the 151669-wide LM head (2 cores):
    # one top-100 window keeps the whole CPU run under 10 minutes.
    if arch == "small":
        return [replace(top100, windows=top100.windows[:1])]
    return [top50, top100]


def gpu_workloads(quick: bool, *, dry_run: bool = False) -> list[Workload]:
    """Return the GPU workloads: top-50 x 256 words (~256 tokens) and top-100 of mixed 30-400 words.

    dry_run: one short window of each shape, for the CPU rehearsal of the GPU path.
    """
    if dry_run:
        return [
            make_workload("top50x256", k=8, windows=1, seed=256, lengths=(32, 32)),
            make_workload("top100-mixed", k=12, windows=1, seed=100, lengths=(5, 60)),
        ]
    count = 2 if quick else 5
    return [
        make_workload("top50x256", k=50, windows=count, seed=256, lengths=(256, 256)),
        make_workload("top100-mixed", k=100, windows=count, seed=100, lengths=(30, 400)),
    ]


def measure(fn: NaiveFn, workload: Workload, sync: Callable[[], None],
            engine: str = "") -> tuple[list[list[float]], list[float]]:
    """Return per-window scores and latencies (ms) after one untimed warmup window."""
    fn("warmup query", workload.windows[0].documents[:8])
    sync()
    scores, latencies = [], []
    # disable=None: a bar on an interactive stderr only, so logs and CI output stay clean.
    bar = tqdm(workload.windows, desc=f"{engine} {workload.name}".strip(), unit="window", leave=False,
               disable=None, file=sys.stderr)
    for window in bar:
        started = time.perf_counter()
        scores.append(fn(window.query, window.documents))
        sync()
        latencies.append((time.perf_counter() - started) * 1e3)
    return scores, latencies


def record(model: str, workload: Workload, engine: str, latencies: list[float], *, naive_pps: float | None,
           diff: float | None, rho: float | None = None, flops_per_s: float | None = None,
           peak: float | None = None, memory_gb: float | None = None) -> Record:
    """Summarise latencies into a Record."""
    pps = workload.pairs / (sum(latencies) / 1e3)
    return Record(
        model=model, workload=workload.name, engine=engine, pairs=workload.pairs, pairs_per_s=round(pps, 2),
        p50_ms=round(statistics.median(latencies), 1), p99_ms=round(float(np.percentile(latencies, 99)), 1),
        speedup_vs_naive=round(pps / naive_pps, 2) if naive_pps else 1.0,
        max_abs_diff=None if diff is None else float(f"{diff:.3g}"),
        spearman_vs_naive=None if rho is None else round(rho, 4),
        mfu=None if flops_per_s is None or not peak else round(flops_per_s / peak, 3),
        peak_memory_gb=None if memory_gb is None else round(memory_gb, 2),
    )


def naive_rate(records: list[Record], workload: Workload) -> float:
    """Return the naive baseline's pairs/s on a workload."""
    return next(r.pairs_per_s for r in records if r.workload == workload.name and r.engine.startswith("naive"))


def model_label(arch: str) -> str:
    """Return the benchmark's name for a random-weight architecture."""
    return f"{arch if arch.startswith('qwen3') else 'qwen3-' + arch}-random"


def max_diff(a: list[list[float]], b: list[list[float]]) -> float:
    """Return the largest absolute score difference between two runs."""
    return max(abs(x - y) for wa, wb in zip(a, b, strict=True) for x, y in zip(wa, wb, strict=True))


def spearman(a: list[list[float]], b: list[list[float]]) -> float:
    """Return the mean per-window Spearman correlation."""
    def ranks(v: list[float]) -> np.ndarray:
        return np.argsort(np.argsort(np.asarray(v))).astype(float)
    return float(np.mean([np.corrcoef(ranks(x), ranks(y))[0, 1] for x, y in zip(a, b, strict=True)]))


# ---- naive baselines: written the usual way ---------------------------------------------------


def naive_qwen3(model, tokenizer, device: str, *, batch_size: int = 16, max_length: int = 8192,
                last_logit_only: bool = False) -> NaiveFn:
    """Official Qwen3-Reranker usage: pad to longest, fixed batches of 16, full-vocabulary logits.

    last_logit_only (ablation): ask transformers for the last position's logits only.
    """
    extra = {"logits_to_keep": 1} if last_logit_only else {}
    import torch

    prefix = tokenizer.encode(QWEN3_PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(QWEN3_SUFFIX, add_special_tokens=False)
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")

    def score(query: str, documents: list[str]) -> list[float]:
        out: list[float] = []
        for start in range(0, len(documents), batch_size):
            pairs = [f"<Instruct>: {DEFAULT_INSTRUCTION}\n<Query>: {query}\n<Document>: {d}"
                     for d in documents[start : start + batch_size]]
            enc = tokenizer(pairs, padding=False, truncation="longest_first", return_attention_mask=False,
                            max_length=max_length - len(prefix) - len(suffix))
            enc["input_ids"] = [prefix + ids + suffix for ids in enc["input_ids"]]
            inputs = tokenizer.pad(enc, padding=True, return_tensors="pt").to(device)
            with torch.no_grad():
                logits = model(**inputs, **extra).logits[:, -1, :]
            out.extend((logits[:, yes] - logits[:, no]).float().tolist())
        return out

    return score


def naive_cross_encoder(model_dir: Path, *, batch_size: int = 16, max_length: int = 512) -> NaiveFn:
    """Plain onnxruntime: pad every pair to 512, fixed batches of 16."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length, strategy="only_second")
    tokenizer.enable_padding(length=max_length)

    def score(query: str, documents: list[str]) -> list[float]:
        out: list[float] = []
        for start in range(0, len(documents), batch_size):
            enc = tokenizer.encode_batch([(query, d) for d in documents[start : start + batch_size]])
            feeds = {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                     "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
                     "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64)}
            out.extend(session.run(None, feeds)[0][:, 0].tolist())
        return out

    return score


def unsorted_engine_fn(options: RerankerOptions, *, batch_size: int = 16) -> NaiveFn:
    """Ablation: the engine's backend (last position, 2-row head) in input-order batches of 16."""
    from sidecar.backends.torch_lm import TorchLMBackend
    from sidecar.rerank.prompt import Qwen3PromptEncoder, load_tokenizer

    backend = TorchLMBackend.from_options(options)
    encoder = Qwen3PromptEncoder(load_tokenizer(backend.tokenizer_spec().tokenizer_file), max_length=options.max_length)

    def score(query: str, documents: list[str]) -> list[float]:
        items = encoder.encode(query, documents, options.instruction)
        batches = [items[start : start + batch_size] for start in range(0, len(items), batch_size)]
        return [score for batch in batches for score in backend.score(batch)]

    return score


def engine_fn(service) -> NaiveFn:
    """Adapt a RerankService to the benchmark's callable."""
    return lambda query, documents: service.score(query, documents).scores


# ---- CPU --------------------------------------------------------------------------------------


def bench_cpu_lm(arch: str, workloads: list[Workload], root: Path, threads: int) -> list[Record]:
    """Naive torch fp32 vs each engine backend on one random Qwen3 architecture."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sidecar.rerank.random_models import save_random_qwen3
    from sidecar.rerank.service import build_reranker

    model_dir = root / f"qwen3-{arch}-random"
    if not (model_dir / "model.safetensors").is_file():
        save_random_qwen3(arch, model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    naive = naive_qwen3(model, tokenizer, "cpu")
    base = RerankerOptions(backend="torch", model=str(model_dir), cache_size=0, num_threads=threads,
                           onnx_cache_dir=str(root / "onnx"), shared_prefix=False)
    engines = {
        "engine-torch-fp32": base,
        "engine-torch-fp32-shared-prefix": replace(base, shared_prefix=True),
        "engine-onnx-fp32": replace(base, backend="onnx", quantization="none"),
        "engine-onnx-int8": replace(base, backend="onnx", quantization="int8"),
        "engine-quanto-int8": replace(base, backend="quanto", quantization="int8"),
    }
    ablations = {
        "ablation-naive-last-logit-only": naive_qwen3(model, tokenizer, "cpu", last_logit_only=True),
        "ablation-2row-head-unsorted-b16": unsorted_engine_fn(base),
    }
    records: list[Record] = []
    label = model_label(arch)
    naive_runs = {}
    for workload in workloads:
        scores, lat = measure(naive, workload, lambda: None, "naive-torch-fp32")
        naive_runs[workload.name] = scores
        naive_record = record(label, workload, "naive-torch-fp32", lat, naive_pps=None, diff=0.0)
        records.append(naive_record)
        for name, fn in ablations.items():
            ab_scores, ab_lat = measure(fn, workload, lambda: None, name)
            records.append(record(label, workload, name, ab_lat, naive_pps=naive_record.pairs_per_s,
                                  diff=max_diff(ab_scores, scores), rho=spearman(ab_scores, scores)))
    del model, naive, ablations
    gc.collect()
    for name, options in engines.items():
        started = time.perf_counter()
        service = build_reranker(options)
        service.warmup()
        logger.info("engine_built engine=%s took_s=%.1f", name, time.perf_counter() - started)
        for workload in workloads:
            scores, lat = measure(engine_fn(service), workload, lambda: None, name)
            naive_pps = naive_rate(records, workload)
            reference = naive_runs[workload.name]
            records.append(record(label, workload, name, lat, naive_pps=naive_pps, diff=max_diff(scores, reference),
                                  rho=spearman(scores, reference)))
        service.close()
        del service
        gc.collect()
    return records


def bench_cpu_cross_encoder(workloads: list[Workload], threads: int) -> list[Record]:
    """Naive padded-to-512 onnxruntime vs the engine on the bundled MiniLM INT8."""
    from sidecar.backends.cross_encoder import bundled_model_dir
    from sidecar.rerank.service import build_reranker

    naive = naive_cross_encoder(bundled_model_dir())
    service = build_reranker(RerankerOptions(backend="cross-encoder", cache_size=0, num_threads=threads))
    service.warmup()
    records = []
    for workload in workloads:
        naive_scores, naive_lat = measure(naive, workload, lambda: None, "naive-ort-pad512")
        base = record("ms-marco-MiniLM-L-12-v2-int8", workload, "naive-ort-pad512", naive_lat, naive_pps=None, diff=0.0)
        scores, lat = measure(engine_fn(service), workload, lambda: None, "engine-cross-encoder")
        records += [base, record("ms-marco-MiniLM-L-12-v2-int8", workload, "engine-cross-encoder", lat,
                                 naive_pps=base.pairs_per_s, diff=max_diff(scores, naive_scores),
                                 rho=spearman(scores, naive_scores))]
    service.close()
    return records


# ---- GPU --------------------------------------------------------------------------------------


class Accelerator:
    """The device a GPU-path benchmark runs on: synchronisation, matmul peak and peak memory.

    On "cpu" (the dry run that keeps the GPU script from rotting) the same code path runs with
    no-op synchronisation, a small matmul for the peak and no memory figure.
    """

    def __init__(self, device: str) -> None:
        import torch

        self.device = device
        self._torch = torch
        self.cuda = device == "cuda"

    def sync(self) -> None:
        if self.cuda:
            self._torch.cuda.synchronize()

    def reset_peak_memory(self) -> None:
        if self.cuda:
            self._torch.cuda.reset_peak_memory_stats()

    def peak_memory_gb(self) -> float | None:
        return self._torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None

    def fp8_supported(self) -> bool:
        return self.cuda and self._torch.cuda.get_device_capability() >= (8, 9)

    def release(self) -> None:
        gc.collect()
        if self.cuda:
            self._torch.cuda.empty_cache()

    def matmul_peak_flops(self, dtype) -> float:
        """Measure achievable matmul FLOP/s in dtype (8192^3 on GPU, 512^3 on CPU; best of 20)."""
        torch = self._torch
        n = 8192 if self.cuda else 512
        a = torch.randn(n, n, device=self.device, dtype=dtype)
        b = torch.randn(n, n, device=self.device, dtype=dtype)
        for _ in range(3):
            a @ b
        self.sync()
        best = float("inf")
        for _ in range(20 if self.cuda else 3):
            started = time.perf_counter()
            a @ b
            self.sync()
            best = min(best, time.perf_counter() - started)
        return 2 * n**3 / best


def forward_flops(config, tokens_per_seq: list[int]) -> float:
    """Return decoder FLOPs for sequences of the given lengths (dense matmuls + attention, no LM head)."""
    h, layers = config.hidden_size, config.num_hidden_layers
    q = config.num_attention_heads * config.head_dim
    kv = config.num_key_value_heads * config.head_dim
    per_token = layers * 2 * (h * (q + 2 * kv) + q * h + 3 * h * config.intermediate_size)
    attention = sum(layers * 2 * 2 * q * n * n / 2 for n in tokens_per_seq)  # causal QK^T and PV
    return per_token * sum(tokens_per_seq) + attention


def bench_gpu(arch: str, workloads: list[Workload], device: str = "cuda",
              sink: Callable[[list[Record]], None] | None = None) -> list[Record]:
    """bf16 naive vs engine bf16 (+shared prefix) / quanto int8 / quanto fp8 on a random-weight model.

    The model is built directly on the device. device="cpu" is the dry run of this same path.
    sink, when given, receives the records so far after each one, so a run cut short keeps its rows.
    """
    import torch
    from transformers import AutoTokenizer

    from sidecar.backends.quanto_lm import QuantoLMBackend
    from sidecar.backends.torch_lm import TorchLMBackend
    from sidecar.rerank.prompt import Qwen3PromptEncoder, load_tokenizer
    from sidecar.rerank.random_models import build_random_qwen3, qwen_tokenizer_dir
    from sidecar.rerank.service import build_service

    acc = Accelerator(device)
    peak = acc.matmul_peak_flops(torch.bfloat16)
    logger.info("bf16_matmul_peak device=%s tflops=%.3f", device, peak / 1e12)
    tokenizer_path = qwen_tokenizer_dir() / "tokenizer.json"
    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir(), padding_side="left")
    label = model_label(arch)
    acc.reset_peak_memory()
    model = build_random_qwen3(arch, dtype="bfloat16", device=device)
    config = model.config
    naive = naive_qwen3(model, tokenizer, device)
    records: list[Record] = []
    naive_runs: dict[str, list[list[float]]] = {}
    lengths: dict[str, list[int]] = {}
    base = RerankerOptions(backend="torch", model=label, device=device, dtype="bfloat16", cache_size=0,
                           max_batch_size=128, shared_prefix=False)
    encoder = Qwen3PromptEncoder(load_tokenizer(tokenizer_path), max_length=8192)
    for workload in workloads:
        lengths[workload.name] = [i.cost for w in workload.windows for i in encoder.encode(w.query, w.documents,
                                                                                              DEFAULT_INSTRUCTION)]
        scores, lat = measure(naive, workload, acc.sync, "naive-torch-bf16")
        naive_runs[workload.name] = scores
        flops = forward_flops(config, lengths[workload.name]) / (sum(lat) / 1e3)
        records.append(record(label, workload, "naive-torch-bf16", lat, naive_pps=None, diff=0.0,
                              flops_per_s=flops, peak=peak, memory_gb=acc.peak_memory_gb()))
        if sink:
            sink(records)
    del naive
    engines: list[tuple[str, type, RerankerOptions]] = [
        ("engine-torch-bf16", TorchLMBackend, base),
        ("engine-torch-bf16-shared-prefix", TorchLMBackend, replace(base, shared_prefix=True)),
        ("engine-quanto-int8", QuantoLMBackend, replace(base, backend="quanto", quantization="int8")),
    ]
    if acc.fp8_supported():
        engines.append(("engine-quanto-fp8", QuantoLMBackend, replace(base, backend="quanto", quantization="fp8")))
    for name, cls, options in engines:
        if model is None:
            acc.release()
            model = build_random_qwen3(arch, dtype="bfloat16", device=device)
        acc.reset_peak_memory()
        try:
            service = build_service(cls(model, tokenizer_path=tokenizer_path, options=options, device=device),
                                    options)
            service.warmup()
        except Exception:  # one unsupported engine (e.g. a quanto kernel) must not lose the other rows
            logger.exception("engine_failed engine=%s", name)
            continue
        finally:
            model = None  # quantization mutates it; the next engine builds a fresh one (same seed)
        for workload in workloads:
            scores, lat = measure(engine_fn(service), workload, acc.sync, name)
            naive_pps = naive_rate(records, workload)
            flops = forward_flops(config, lengths[workload.name]) / (sum(lat) / 1e3)
            records.append(record(label, workload, name, lat, naive_pps=naive_pps,
                                  diff=max_diff(scores, naive_runs[workload.name]),
                                  rho=spearman(scores, naive_runs[workload.name]), flops_per_s=flops, peak=peak,
                                  memory_gb=acc.peak_memory_gb()))
            if sink:
                sink(records)
        service.close()
        del service
        acc.release()
    return records


# ---- report -----------------------------------------------------------------------------------


def format_table(records: list[Record]) -> str:
    """Render one aligned row per record."""
    header = f"{'model':<30} {'workload':<14} {'engine':<32} {'pairs/s':>9} {'p50_ms':>9} {'p99_ms':>9} " \
             f"{'speedup':>8} {'max|diff|':>10} {'rho':>7} {'mfu':>6} {'mem_gb':>7}"
    lines = [header, "-" * len(header)]
    for r in records:
        diff = "-" if r.max_abs_diff is None else f"{r.max_abs_diff:.2e}"
        mfu = "-" if r.mfu is None else f"{r.mfu:.3f}"
        rho = "-" if r.spearman_vs_naive is None else f"{r.spearman_vs_naive:.4f}"
        mem = "-" if r.peak_memory_gb is None else f"{r.peak_memory_gb:.1f}"
        lines.append(f"{r.model:<30} {r.workload:<14} {r.engine:<32} {r.pairs_per_s:>9.1f} {r.p50_ms:>9.1f} "
                     f"{r.p99_ms:>9.1f} {r.speedup_vs_naive:>7.2f}x {diff:>10} {rho:>7} {mfu:>6} {mem:>7}")
    return "\n".join(lines)
