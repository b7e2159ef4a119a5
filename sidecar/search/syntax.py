"""Turn a search request in any supported syntax into (first-stage body, rerank plan).

Supported ways to ask for reranking:
- OpenSearch: ``"ext": {"rerank": {"query_context": {"query_text": ...}}}`` (or
  ``query_text_path``), plus our keys ``window_size``, ``fields``, ``instruction``, ``fusion``,
  ``weights``, ``rank_constant``, ``min_score``, ``timeout_ms``, ``model``.
- Elasticsearch rescore: ``"rescore": {"window_size": 50, "rerank": {"query_text": ..., "fields": [...]}}``.
- Elasticsearch retriever: ``"retriever": {"text_similarity_reranker": {...}}`` with Elasticsearch's
  contract (rank_window_size default 10, allow_rerank_failures); its inner retriever runs as the
  engine runs retrievers (natively on Elasticsearch, translated on OpenSearch: Engine.first_stage).
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from sidecar.api.errors import ValidationFailed
from sidecar.engine import DEFAULT_ENGINE, Engine
from sidecar.rerank.doc_text import DocTemplate, DocTemplateSet, TemplateError
from sidecar.rerank.passages import PassageOptionError, PassageOptions
from sidecar.search import fusion
from sidecar.search.personalization import UserContext, parse_user_context
from sidecar.search.query_understanding import QueryInfo, QueryPipeline

FUSIONS = fusion.METHODS
# Per-request keys of personalization, query understanding, long documents and document
# templates, accepted in every syntax.
_REQUEST_KEYS = ("user_context", "query_understanding", "passages", "doc_template")
MAX_WINDOW = 1000
# Accepted range of a rerank's time budget (ext.rerank.timeout_ms, RESCORE_RERANK_TIMEOUT_MS), counted
# from the request's arrival. The upper end stays below every proxy and worker timeout in front.
TIMEOUT_MS_RANGE = (1, 300_000)


@dataclass(frozen=True, kw_only=True)
class RerankDefaults:
    """Server-side defaults for keys a request leaves out."""

    window_size: int = 50
    fields: tuple[str, ...] = ("title", "text")
    fusion: str = "relative"
    weights: tuple[float, float] = (0.3, 0.7)
    rank_constant: int = 20
    # relative and calibrated fusion: the model's logit is divided by this before the sigmoid
    # (RESCORE_RERANK_TEMPERATURE).
    temperature: float = 8.0
    timeout_ms: int = 30000
    max_window: int = MAX_WINDOW
    max_text_chars: int = 100000
    text_overflow: str = "truncate"
    # RESCORE_PASSAGE* (long documents) and the per-index templates of RESCORE_DOC_TEMPLATES_DIR.
    passages: PassageOptions = PassageOptions()
    doc_templates: DocTemplateSet = DocTemplateSet()
    # RESCORE_PERSONALIZATION* (user_context), and the query-understanding pipeline (None = off).
    personalization: bool = False
    personalization_brand_field: str = "brand"
    personalization_category_field: str = "category"
    personalization_weight: float = 0.1
    query_pipeline: QueryPipeline | None = None


@dataclass(frozen=True, kw_only=True)
class RerankSpec:
    """What to rerank and how: one per search request that asks for it."""

    query_text: str
    window_size: int
    fields: tuple[str, ...]
    instruction: str | None
    fusion: str
    weights: tuple[float, float]
    rank_constant: int
    min_score: float | None
    timeout_ms: int
    model: str | None
    explain: bool = False
    syntax: str = "opensearch"
    # relative and calibrated fusion's temperature (a server setting; RerankDefaults.temperature).
    temperature: float = 1.0
    # Text limits (RESCORE_MAX_TEXT_CHARS / RESCORE_TEXT_OVERFLOW); query_truncated: query_text was cut.
    max_text_chars: int = 100000
    text_overflow: str = "truncate"
    query_truncated: bool = False
    # The request's user_context (validated even when RESCORE_PERSONALIZATION is off) and whether
    # personalization is on for this server; applied only when both are there.
    user_context: UserContext | None = None
    personalization: bool = False
    # What query understanding found (None: off for the server or the request); query_text is then
    # its normalized text. instruction_source: "request", "rule" or "default" (the model's own).
    query_info: QueryInfo | None = None
    instruction_source: str = "default"
    # Document template for the model input; set by a query rule when the request names none.
    doc_template: str | None = None
    # Long-document passages, and the per-index templates that apply when doc_template is None
    # (empty when the request says "doc_template": false).
    passages: PassageOptions = PassageOptions()
    index_templates: DocTemplateSet = DocTemplateSet()
    # text_similarity_reranker's allow_rerank_failures false: a failed rerank fails the search.
    fail_on_error: bool = False
    # The reranking retriever's _name (kept in ext.rerank.name).
    name: str | None = None


# Elasticsearch's text_similarity_reranker default rank_window_size.
RETRIEVER_WINDOW = 10


@dataclass(frozen=True)
class SearchPlan:
    """The body to send to OpenSearch, the rerank spec (None: plain search), extra query params."""

    body: dict
    rerank: RerankSpec | None
    params: dict[str, str]


def plan_search(body: dict | None, defaults: RerankDefaults, engine: Engine = DEFAULT_ENGINE) -> SearchPlan:
    """Split a search body into the first-stage body (in `engine`'s syntax) and a rerank spec."""
    if body is None:
        return SearchPlan({}, None, {})
    if not isinstance(body, dict):
        raise ValidationFailed("search body must be a JSON object", field="body")
    retriever = body.get("retriever")
    if isinstance(retriever, dict) and "text_similarity_reranker" in retriever:
        return _from_retriever(body, defaults, engine)
    original = body
    body = copy.deepcopy(body)
    engine_params: dict[str, str] = {}
    if "retriever" in body:  # a plain retriever tree, possibly with ext.rerank / rescore around it
        _require_object(retriever, "retriever")
        query, engine_params = engine.first_stage(body.pop("retriever"), "retriever")
        body.update(query)
    ext = body.get("ext")
    if isinstance(ext, dict) and "rerank" in ext:
        raw = ext.pop("rerank")
        if not ext:
            body.pop("ext")
        if raw is False:  # the request opts out of a rerank policy; the engine must not see it
            return SearchPlan(body, None, engine_params)
        spec = _from_ext(raw, original, defaults)
        return SearchPlan(body, spec, engine_params)
    if "rescore" in body:
        spec = _pop_rescore(body, defaults)
        if spec is not None:
            return SearchPlan(body, spec, engine_params)
    return SearchPlan(body, None, engine_params)


def opts_out(body: Any) -> bool:
    """Return whether a parsed search body says `"ext": {"rerank": false}` (no policy rerank)."""
    ext = body.get("ext") if isinstance(body, dict) else None
    return isinstance(ext, dict) and ext.get("rerank") is False


def wants_rerank(body: Any) -> bool:
    """Return whether a parsed search body asks for reranking in any supported syntax."""
    if not isinstance(body, dict):
        return False
    ext = body.get("ext")
    if isinstance(ext, dict) and "rerank" in ext and ext["rerank"] is not False:
        return True
    retriever = body.get("retriever")
    if isinstance(retriever, dict) and "text_similarity_reranker" in retriever:
        return True
    rescore = body.get("rescore")
    entries = rescore if isinstance(rescore, list) else [rescore]
    return any(isinstance(e, dict) and "rerank" in e for e in entries)


# --- OpenSearch ext.rerank ---------------------------------------------------------------

def _from_ext(raw: Any, original: dict, defaults: RerankDefaults) -> RerankSpec:
    where = "ext.rerank"
    _require_object(raw, where)
    context = raw.get("query_context", {})
    _require_object(context, f"{where}.query_context")
    query_text = context.get("query_text", raw.get("query_text"))
    path = context.get("query_text_path", raw.get("query_text_path"))
    if query_text is None and path is not None:
        if not isinstance(path, str) or not path:
            raise ValidationFailed("query_text_path must be a non-empty string", field=f"{where}.query_context.query_text_path")
        query_text = _resolve_path(original, path, f"{where}.query_context.query_text_path")
    if query_text is None:
        raise ValidationFailed("rerank needs query_context.query_text or query_context.query_text_path",
                               field=f"{where}.query_context.query_text")
    known = {"query_context", "query_text", "query_text_path", "window_size", "fields", "instruction",
             "fusion", "weights", "rank_constant", "min_score", "timeout_ms", "model", *_REQUEST_KEYS}
    _reject_unknown(raw, known, where)
    return _spec(raw, query_text, original, defaults, where, syntax="opensearch")


def _resolve_path(body: dict, path: str, field: str) -> str:
    value: Any = body
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise ValidationFailed(f"query_text_path {path!r} does not exist in the request", field=field)
    if isinstance(value, dict) and isinstance(value.get("query"), str):
        value = value["query"]  # e.g. "query.match.text" -> {"query": "..."}
    if not isinstance(value, str):
        raise ValidationFailed(f"query_text_path {path!r} does not point at a string", field=field)
    return value


# --- Elasticsearch rescore of type rerank ---------------------------------------------------

def _pop_rescore(body: dict, defaults: RerankDefaults) -> RerankSpec | None:
    rescore = body["rescore"]
    entries = rescore if isinstance(rescore, list) else [rescore]
    found = [i for i, e in enumerate(entries) if isinstance(e, dict) and "rerank" in e]
    if not found:
        return None
    if len(found) > 1:
        raise ValidationFailed("only one rescore entry of type rerank is supported", field="rescore")
    index = found[0]
    if index != len(entries) - 1:
        raise ValidationFailed("the rerank rescore entry must be the last one", field=f"rescore[{index}]")
    entry = entries[index]
    where = f"rescore[{index}].rerank" if isinstance(rescore, list) else "rescore.rerank"
    raw = entry["rerank"]
    _require_object(raw, where)
    _reject_unknown(entry, {"rerank", "window_size"}, where.rsplit(".", 1)[0])
    query_text = raw.get("query_text")
    if query_text is None:
        raise ValidationFailed("rerank rescore needs query_text", field=f"{where}.query_text")
    merged = dict(raw)
    if "window_size" in entry:
        merged.setdefault("window_size", entry["window_size"])
    known = {"query_text", "window_size", "fields", "instruction", "fusion", "weights", "rank_constant",
             "min_score", "timeout_ms", "model", *_REQUEST_KEYS}
    _reject_unknown(raw, known, where)
    remaining = [e for i, e in enumerate(entries) if i != index]
    if remaining:
        body["rescore"] = remaining if isinstance(rescore, list) else remaining[0]
    else:
        body.pop("rescore")
    return _spec(merged, query_text, body, defaults, where, syntax="es-rescore")


# --- Elasticsearch text_similarity_reranker retriever ---------------------------------------

def _from_retriever(body: dict, defaults: RerankDefaults, engine: Engine) -> SearchPlan:
    body = copy.deepcopy(body)
    retriever = body.pop("retriever")
    _require_object(retriever, "retriever")
    params: dict[str, str] = {}
    if "text_similarity_reranker" not in retriever:
        query, params = engine.first_stage(retriever, "retriever")
        body.update(query)
        return SearchPlan(body, None, params)
    where = "retriever.text_similarity_reranker"
    raw = retriever["text_similarity_reranker"]
    _require_object(raw, where)
    known = {"retriever", "field", "inference_text", "rank_window_size", "min_score", "inference_id",
             "allow_rerank_failures", "chunk_rescorer", "_name",
             "instruction", "fusion", "weights", "rank_constant", "timeout_ms", "filter", *_REQUEST_KEYS}
    _reject_unknown(raw, known, where)
    if "inference_text" not in raw:
        raise ValidationFailed("text_similarity_reranker needs inference_text", field=f"{where}.inference_text")
    if "retriever" not in raw:
        raise ValidationFailed("text_similarity_reranker needs an inner retriever", field=f"{where}.retriever")
    inner = raw["retriever"]
    _require_object(inner, f"{where}.retriever")
    if "filter" in raw:  # the reranker's filter applies to what it reranks: its inner retriever
        inner = _with_filter(inner, raw["filter"], f"{where}.retriever")
    query, params = engine.first_stage(inner, f"{where}.retriever")
    body.update(query)
    field = raw.get("field")
    options = {
        "window_size": raw.get("rank_window_size", RETRIEVER_WINDOW),
        "fields": [field] if field is not None else list(defaults.fields),
        "min_score": raw.get("min_score"),
        "model": raw.get("inference_id"),
    }
    for key in ("instruction", "fusion", "weights", "rank_constant", "timeout_ms", *_REQUEST_KEYS):
        if key in raw:
            options[key] = raw[key]
    if field is not None and not isinstance(field, str):
        raise ValidationFailed("field must be a string", field=f"{where}.field")
    if "chunk_rescorer" in raw:  # Elasticsearch's per-chunk scoring = the sidecar's passages
        options["passages"] = _chunk_rescorer(raw["chunk_rescorer"], raw.get("passages"), f"{where}.chunk_rescorer")
    allow = raw.get("allow_rerank_failures", False)
    if not isinstance(allow, bool):
        raise ValidationFailed("allow_rerank_failures must be true or false", field=f"{where}.allow_rerank_failures")
    name = raw.get("_name")
    if name is not None and not isinstance(name, str):
        raise ValidationFailed("_name must be a string", field=f"{where}._name")
    spec = _spec(options, raw["inference_text"], body, defaults, where, syntax="es-retriever")
    return SearchPlan(body, dataclasses.replace(spec, fail_on_error=not allow, name=name), params)


def _with_filter(retriever: dict, extra: Any, where: str) -> dict:
    """Return the retriever with `extra` added to its own filter list (every retriever type has one)."""
    if len(retriever) != 1:
        raise ValidationFailed("a retriever object must have exactly one type", field=where)
    kind, spec = next(iter(retriever.items()))
    _require_object(spec, f"{where}.{kind}")
    filters = _as_list(spec["filter"]) if "filter" in spec else []
    return {kind: {**spec, "filter": filters + _as_list(extra)}}


def _chunk_rescorer(raw: Any, passages: Any, where: str) -> dict:
    """Map chunk_rescorer ({size, chunking_settings: {max_chunk_size, ...}}) to passage options."""
    if passages is not None:
        raise ValidationFailed("give chunk_rescorer or passages, not both", field=where)
    _require_object(raw, where)
    _reject_unknown(raw, {"size", "chunking_settings"}, where)
    out: dict[str, Any] = {"enabled": True}
    if "size" in raw:
        out["top_k"] = raw["size"]
        out["max_passages"] = max(raw["size"], PassageOptions.max_passages) if isinstance(raw["size"], int) else raw["size"]
    chunking = raw.get("chunking_settings", {})
    _require_object(chunking, f"{where}.chunking_settings")
    if "max_chunk_size" in chunking:
        out["max_tokens"] = chunking["max_chunk_size"]
    return out


# --- shared validation ---------------------------------------------------------------------

def fit_text(text: str, field: str, max_chars: int, overflow: str) -> tuple[str, bool]:
    """Return (text cut to max_chars, whether it was cut); in "reject" mode a longer text is a 422.

    A text that is not valid Unicode (a lone surrogate such as "\\ud800" from a JSON escape) is a 422.
    """
    if not is_unicode(text):
        raise ValidationFailed(f"{field} contains a lone surrogate (not valid Unicode text)", field=field)
    if len(text) <= max_chars:
        return text, False
    if overflow == "reject":
        raise ValidationFailed(f"{field} has {len(text)} characters; the maximum is {max_chars} "
                               "(RESCORE_MAX_TEXT_CHARS)", field=field)
    return text[:max_chars], True


def is_unicode(text: str) -> bool:
    """Return whether text holds no lone surrogate (so it can be encoded as UTF-8 and tokenized)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def scrub_text(text: str) -> str:
    """Return text with every lone surrogate replaced by U+FFFD."""
    if is_unicode(text):
        return text
    return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in text)


def fit_texts(texts: list[str], field: str, max_chars: int, overflow: str) -> tuple[list[str], int]:
    """fit_text over a list whose items are named field[i]; return the texts and how many were cut."""
    out, cut = [], 0
    for i, text in enumerate(texts):
        fitted, was_cut = fit_text(text, f"{field}[{i}]", max_chars, overflow)
        out.append(fitted)
        cut += was_cut
    return out, cut


def build_spec(raw: dict, query_text: Any, defaults: RerankDefaults, where: str, *, explain: bool = False,
               syntax: str = "rescore-api") -> RerankSpec:
    """Validate rerank options given directly (rescore API) and return the spec."""
    return _spec(raw, query_text, {"explain": explain}, defaults, where, syntax=syntax)


def _spec(raw: dict, query_text: Any, body: dict, defaults: RerankDefaults, where: str, *, syntax: str) -> RerankSpec:
    if not isinstance(query_text, str) or not query_text.strip():
        raise ValidationFailed("query text must be a non-empty string", field=f"{where}.query_text")
    if not is_unicode(query_text):
        raise ValidationFailed("query text contains a lone surrogate (not valid Unicode text)",
                               field=f"{where}.query_text")
    window = raw.get("window_size", defaults.window_size)
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= defaults.max_window:
        raise ValidationFailed(f"window_size must be an integer in 1..{defaults.max_window}", field=f"{where}.window_size")
    fields = raw.get("fields", list(defaults.fields))
    if isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
        raise ValidationFailed("fields must be a non-empty list of field names", field=f"{where}.fields")
    instruction = raw.get("instruction")
    if instruction is not None and (not isinstance(instruction, str) or not instruction.strip()):
        raise ValidationFailed("instruction must be a non-empty string", field=f"{where}.instruction")
    fusion = raw.get("fusion", defaults.fusion)
    if fusion not in FUSIONS:
        raise ValidationFailed(f"fusion must be one of {', '.join(FUSIONS)}", field=f"{where}.fusion")
    weights = raw.get("weights", list(defaults.weights))
    if (not isinstance(weights, list) or len(weights) != 2
            or not all(_finite_number(w) and w >= 0 for w in weights)
            or not 0 < sum(float(w) for w in weights) < float("inf")):
        raise ValidationFailed("weights must be two finite non-negative numbers [first_stage, rerank] with a "
                               "positive finite sum",
                               field=f"{where}.weights")
    rank_constant = raw.get("rank_constant", defaults.rank_constant)
    if not isinstance(rank_constant, int) or isinstance(rank_constant, bool) or not 1 <= rank_constant < 2**31:
        raise ValidationFailed("rank_constant must be a positive 32-bit integer", field=f"{where}.rank_constant")
    min_score = raw.get("min_score")
    if min_score is not None and not _finite_number(min_score):
        raise ValidationFailed("min_score must be a number", field=f"{where}.min_score")
    timeout_ms = raw.get("timeout_ms", defaults.timeout_ms)
    low, high = TIMEOUT_MS_RANGE
    if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or not low <= timeout_ms <= high:
        raise ValidationFailed(f"timeout_ms must be an integer in {low}..{high} (milliseconds)",
                               field=f"{where}.timeout_ms")
    model = raw.get("model")
    if model is not None and not isinstance(model, str):
        raise ValidationFailed("model must be a string", field=f"{where}.model")
    passages = _passages(raw.get("passages"), defaults.passages, f"{where}.passages")
    doc_template, index_templates = _doc_template(raw.get("doc_template"), defaults.doc_templates,
                                                  f"{where}.doc_template")
    user_context = None
    if raw.get("user_context") is not None:
        user_context = parse_user_context(
            raw["user_context"], f"{where}.user_context", brand_field=defaults.personalization_brand_field,
            category_field=defaults.personalization_category_field, default_weight=defaults.personalization_weight)
    understand = raw.get("query_understanding", True)
    if not isinstance(understand, bool):
        raise ValidationFailed("query_understanding must be true or false", field=f"{where}.query_understanding")
    query_info = None
    instruction_source = "default" if instruction is None else "request"
    if understand and defaults.query_pipeline is not None:
        query_info = defaults.query_pipeline.analyze(query_text)
        if not query_info.normalized:
            raise ValidationFailed("query text is empty after normalization", field=f"{where}.query_text")
        query_text = query_info.normalized
        if instruction is None and query_info.instruction is not None:
            instruction, instruction_source = query_info.instruction, "rule"  # the request's own always wins
    if doc_template is None and raw.get("doc_template") is not False and query_info is not None:
        doc_template = defaults.doc_templates.resolve(query_info.doc_template)  # a rule's template
    query_text, query_truncated = fit_text(query_text, f"{where}.query_text", defaults.max_text_chars,
                                           defaults.text_overflow)
    return RerankSpec(
        query_text=query_text, window_size=window, fields=tuple(fields), instruction=instruction,
        fusion=fusion, weights=(float(weights[0]), float(weights[1])), rank_constant=rank_constant,
        temperature=defaults.temperature,
        min_score=None if min_score is None else float(min_score), timeout_ms=timeout_ms, model=model,
        explain=bool(body.get("explain", False)), syntax=syntax,
        max_text_chars=defaults.max_text_chars, text_overflow=defaults.text_overflow,
        query_truncated=query_truncated, user_context=user_context, personalization=defaults.personalization,
        query_info=query_info, instruction_source=instruction_source,
        doc_template=doc_template, passages=passages, index_templates=index_templates,
    )


def _passages(raw: Any, defaults: PassageOptions, field: str) -> PassageOptions:
    """Return the request's passage options: true/false, or an object (enabled unless it says not)."""
    if raw is None:
        return defaults
    if isinstance(raw, bool):
        return dataclasses.replace(defaults, enabled=raw)
    if not isinstance(raw, dict):
        raise ValidationFailed("passages must be true, false or an object", field=field)
    _reject_unknown(raw, {f.name for f in dataclasses.fields(PassageOptions)}, field)
    try:
        return dataclasses.replace(defaults, **{"enabled": True, **raw})
    except PassageOptionError as exc:
        raise ValidationFailed(str(exc), field=f"{field}.{exc.key}") from None


def _doc_template(raw: Any, templates: DocTemplateSet, field: str) -> tuple[str | None, DocTemplateSet]:
    """Return (template source or None, per-index templates) for the request's doc_template.

    Absent: the per-index templates apply. false: none do (plain `fields`). A string with a
    `{field}` is an inline template; one without names a loaded template (its file name).
    """
    if raw is None:
        return None, templates
    if raw is False:
        return None, DocTemplateSet()
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed("doc_template must be a template string, a template name, or false", field=field)
    if "{" not in raw:
        named = templates.named(raw.strip())
        if named is None:
            known = ", ".join(e.name for e in templates.templates) or "none loaded"
            raise ValidationFailed(f"no document template named {raw.strip()!r} ({known})", field=field)
        return named.source, templates
    try:
        return DocTemplate.parse(raw).source, templates
    except TemplateError as exc:
        raise ValidationFailed(f"doc_template: {exc}", field=field) from None


def _finite_number(value: Any) -> bool:
    """Return whether value is a JSON number that is a finite double (not a bool, not 1e400, not 10**400)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _require_object(value: Any, field: str) -> None:
    if not isinstance(value, dict):
        raise ValidationFailed("must be a JSON object", field=field)


def _reject_unknown(raw: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValidationFailed(f"unknown key {unknown[0]!r}", field=f"{where}.{unknown[0]}")


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def sorts_by_score_only(sort: Any) -> bool:
    """Return whether a sort (body or `sort` param form) orders by descending _score only.

    Such a sort is the default order: the engines accept it next to a rescore, and so does the flow.
    """
    if isinstance(sort, str):
        return all(_score_desc_str(part.strip()) for part in sort.split(",") if part.strip())
    if isinstance(sort, dict):
        sort = [sort]
    if not isinstance(sort, list):
        return False
    for item in sort:
        if isinstance(item, str):
            if not _score_desc_str(item):
                return False
        elif isinstance(item, dict) and list(item) == ["_score"]:
            order = item["_score"]
            order = order.get("order", "desc") if isinstance(order, dict) else order
            if str(order).lower() != "desc":
                return False
        else:
            return False
    return True


def _score_desc_str(text: str) -> bool:
    return text in ("_score", "_score:desc")
