"""Prometheus metrics of the sidecar: HTTP, search stages, batches, cache, degradations, model info.

One `Metrics` object per process (`metrics()`), built on first use. With several gunicorn workers
the values live in PROMETHEUS_MULTIPROC_DIR (set up by gunicorn.conf.py, see RESCORE_METRICS_DIR)
and /metrics aggregates every worker; a single worker keeps them in memory.
"""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client import multiprocess, values
from prometheus_client.core import GaugeMetricFamily

from sidecar.rerank.scheduler import BatchStats

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Latency buckets (seconds): 1 ms .. 60 s, dense where CPU and GPU reranking land.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_TOKEN_BUCKETS = (64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
# Stages of DESIGN.md §2 reported in ext.rerank (milliseconds) and observed here (seconds).
STAGE_FIELDS = {"embed": "embed_ms", "first_stage": "first_stage_ms", "queue": "queue_ms", "model": "model_ms",
                "fusion": "fusion_ms", "rerank": "rerank_ms", "total": "took_ms"}
DEGRADED = frozenset({"partial", "timeout", "error", "overloaded", "circuit_open"})
# Label values are bounded: anything a caller controls maps into a fixed set, so no request can
# create new series (each series costs memory in every worker and in Prometheus).
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
RERANK_STATUSES = DEGRADED | {"ok", "skipped", "unknown"}
OTHER = "other"


def method_label(method: str) -> str:
    """Return the HTTP method as a label: one of HTTP_METHODS or "other"."""
    return method if method in HTTP_METHODS else OTHER


def status_label(status: int) -> str:
    """Return the HTTP status code as a label ("other" outside 100..599)."""
    return str(status) if 100 <= status <= 599 else OTHER


class Metrics:
    """The sidecar's metric families and the helpers that record them."""

    def __init__(self, multiproc_dir: str = "") -> None:
        self.multiproc_dir = multiproc_dir
        # In multiprocess mode values are written to files and collected at scrape time, so the
        # families are registered nowhere; in-process they live in this registry.
        self.registry = CollectorRegistry(auto_describe=True)
        reg = None if multiproc_dir else self.registry
        self.requests = Counter("rescore_http_requests_total", "HTTP requests by endpoint, method and status",
                                ["endpoint", "method", "status"], registry=reg)
        self.request_seconds = Histogram("rescore_http_request_duration_seconds", "HTTP request latency",
                                         ["endpoint"], buckets=_LATENCY_BUCKETS, registry=reg)
        self.stage_seconds = Histogram("rescore_stage_duration_seconds",
                                       "Latency of one search stage (embed, first_stage, queue, model, fusion, "
                                       "rerank, total)", ["stage"], buckets=_LATENCY_BUCKETS, registry=reg)
        self.reranks = Counter("rescore_rerank_requests_total",
                               "Rerank outcomes by status (ok, partial, timeout, error, overloaded, "
                               "circuit_open, skipped) and experiment variant", ["status", "variant"], registry=reg)
        self.policy_searches = Counter("rescore_policy_searches_total",
                                       "Searches a rerank policy covered, by policy and outcome (a rerank status "
                                       "such as ok/timeout/error, or skipped_<reason>)", ["policy", "outcome"],
                                       registry=reg)
        self.degraded = Counter("rescore_degraded_total",
                                "Searches answered in (partly) first-stage order, by reason", ["reason"],
                                registry=reg)
        self.errors = Counter("rescore_errors_total", "Error responses of the sidecar by error_type",
                              ["error_type"], registry=reg)
        self.batch_size = Histogram("rescore_batch_size", "Pairs per model batch", buckets=_SIZE_BUCKETS,
                                    registry=reg)
        self.batch_tokens = Histogram("rescore_batch_padded_tokens", "Padded tokens (longest x pairs) per batch",
                                      buckets=_TOKEN_BUCKETS, registry=reg)
        self.tokens = Counter("rescore_model_tokens_total", "Tokens scored by the model (unpadded)", registry=reg)
        self.pairs = Counter("rescore_model_pairs_total", "Query-document pairs scored by the model", registry=reg)
        self.model_busy = Counter("rescore_model_busy_seconds_total",
                                  "Seconds the model spent on batches (tokens/s = rate(tokens)/rate(busy))",
                                  registry=reg)
        self.tokens_per_s = Gauge("rescore_model_tokens_per_second", "Throughput of the last batch",
                                  multiprocess_mode="max", registry=reg)
        self.cache = Counter("rescore_cache_lookups_total", "Score cache lookups by result (hit, miss)", ["result"],
                             registry=reg)
        self.model_info = Gauge("rescore_model_info", "The served reranker (value 1)",
                                ["backend", "model", "quantization", "device"], multiprocess_mode="max",
                                registry=reg)
        self._lock = threading.Lock()
        self._cache_counts = {"hit": 0, "miss": 0}
        self.eval_file = ""
        self._derived = _Derived(self)
        self.registry.register(self._derived)

    # --- recording ----------------------------------------------------------------------------

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one request; endpoint is the matched route's name (never the raw path)."""
        self.requests.labels(endpoint, method_label(method), status_label(status)).inc()
        self.request_seconds.labels(endpoint).observe(seconds)

    def observe_error(self, error_type: str) -> None:
        self.errors.labels(error_type).inc()

    def observe_rerank(self, ext: dict[str, Any] | None) -> None:
        """Record one response's ext.rerank block: status, variant, stage latencies."""
        if not isinstance(ext, dict):
            return
        status = str(ext.get("status", "unknown"))
        status = status if status in RERANK_STATUSES else OTHER
        experiment = ext.get("experiment")
        variant = str(experiment.get("variant", "none")) if isinstance(experiment, dict) else "none"
        self.reranks.labels(status, variant).inc()
        if status in DEGRADED:
            self.degraded.labels(status).inc()
        for stage, key in STAGE_FIELDS.items():
            value = ext.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                self.stage_seconds.labels(stage).observe(value / 1000)

    def observe_policy(self, policy: str, outcome: str) -> None:
        """Count one search a policy covered (labels: the policy's name, a bounded outcome)."""
        self.policy_searches.labels(policy, outcome).inc()

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage).observe(seconds)

    def observe_batch(self, stats: BatchStats) -> None:
        """Scheduler callback: one batch was scored."""
        self.batch_size.observe(stats.size)
        self.batch_tokens.observe(stats.padded_tokens)
        self.tokens.inc(stats.tokens)
        self.pairs.inc(stats.size)
        self.model_busy.inc(stats.seconds)
        if stats.seconds > 0:
            self.tokens_per_s.set(stats.tokens / stats.seconds)

    def observe_cache(self, hits: int, misses: int) -> None:
        if hits:
            self.cache.labels("hit").inc(hits)
        if misses:
            self.cache.labels("miss").inc(misses)
        with self._lock:
            self._cache_counts["hit"] += hits
            self._cache_counts["miss"] += misses

    def set_model(self, backend: str, model: str, quantization: str, device: str) -> None:
        self.model_info.labels(backend, model, quantization, device).set(1)

    # --- exposition ---------------------------------------------------------------------------

    def render(self) -> bytes:
        """Return the text exposition of every metric (all workers in multiprocess mode)."""
        if not self.multiproc_dir:
            return generate_latest(self.registry)
        families = list(multiprocess.MultiProcessCollector(None, path=self.multiproc_dir).collect())
        # The hit ratio of every process together (the model's lookups happen in the rerank pool's
        # workers, the scrape is answered by any front worker).
        counts = {"hit": 0.0, "miss": 0.0}
        for family in families:
            for sample in family.samples:
                if sample.name == "rescore_cache_lookups_total" and sample.labels.get("result") in counts:
                    counts[sample.labels["result"]] += sample.value
        registry = CollectorRegistry()
        registry.register(_Collected(families))
        registry.register(_Derived(self, counts))
        return generate_latest(registry)


class _Collected:
    """Metric families already collected (from the multiprocess files)."""

    def __init__(self, families: list) -> None:
        self._families = families

    def collect(self):
        return iter(self._families)

    def describe(self):
        return []


class _Derived:
    """Values computed at scrape time: cache hit ratio and evaluation quality metrics."""

    def __init__(self, owner: Metrics, counts: dict[str, float] | None = None) -> None:
        self._owner = owner
        self._counts = counts  # None: this process's own lookups

    def collect(self):
        counts = self._counts if self._counts is not None else self._owner._cache_counts
        hits, misses = counts["hit"], counts["miss"]
        ratio = GaugeMetricFamily("rescore_cache_hit_ratio",
                                  "Score cache hits / lookups since start (all processes)")
        ratio.add_metric([], hits / (hits + misses) if hits + misses else 0.0)
        yield ratio
        quality = GaugeMetricFamily("rescore_eval_quality", "Offline evaluation results (RESCORE_EVAL_METRICS_FILE)",
                                    labels=["dataset", "mode", "metric"])
        for dataset, mode, metric, value in read_eval_metrics(self._owner.eval_file):
            quality.add_metric([dataset, mode, metric], value)
        yield quality

    def describe(self):
        return []


def read_eval_metrics(path: str) -> list[tuple[str, str, str, float]]:
    """Read scripts/evaluate.py --out JSON ({mode: {metric: value}}, optionally with "dataset")."""
    if not path:
        return []
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        log.warning("eval_metrics_unreadable path=%s error=%s", path, exc)
        return []
    dataset = str(data.get("dataset") or Path(path).stem) if isinstance(data, dict) else ""
    rows = []
    for mode, values in (data.items() if isinstance(data, dict) else []):
        if not isinstance(values, dict):
            continue
        for metric, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.append((dataset, str(mode), str(metric), float(value)))
    return rows


class MetricsSetupError(RuntimeError):
    """Multiprocess metrics were asked for but prometheus_client was not started in that mode."""


_METRICS: Metrics | None = None
_METRICS_LOCK = threading.Lock()


def metrics() -> Metrics:
    """Return this process's Metrics (in-memory until configure() says otherwise)."""
    global _METRICS
    with _METRICS_LOCK:
        if _METRICS is None:
            _METRICS = Metrics()
        return _METRICS


def configure(multiproc_dir: str, eval_file: str) -> Metrics:
    """Set up this process's metrics from settings (RESCORE_METRICS_DIR, RESCORE_EVAL_METRICS_FILE).

    prometheus_client picks file-backed values when PROMETHEUS_MULTIPROC_DIR is set before it is
    imported (gunicorn.conf.py does that for several workers); a directory without that mode
    would export nothing, so it is an error.
    """
    global _METRICS
    disable_created_metrics()  # *_created series double the exposition and no dashboard uses them
    with _METRICS_LOCK:
        if multiproc_dir:
            if values.ValueClass.__name__ != "MmapedValue":
                raise MetricsSetupError("RESCORE_METRICS_DIR needs PROMETHEUS_MULTIPROC_DIR set to the same "
                                        "directory before the process starts (gunicorn.conf.py does this)")
            if _METRICS is None or _METRICS.multiproc_dir != multiproc_dir:
                _METRICS = Metrics(multiproc_dir)
        elif _METRICS is None:
            _METRICS = Metrics()
        _METRICS.eval_file = eval_file
        return _METRICS
