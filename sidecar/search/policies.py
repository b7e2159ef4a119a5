"""Server-side rerank policies: rerank searches of clients that cannot ask for it themselves.

A policies file (RESCORE_POLICIES_FILE, YAML or JSON) lists rules::

    policies:
      - name: docs                      # [A-Za-z0-9_.-], unique; named in ext.rerank.policy
        indices: ["docs-*", "wiki"]     # patterns; aliases and data streams are resolved by the engine
        endpoints: [search, msearch]    # default: every search endpoint (ENDPOINTS)
        headers: {X-App: "discover*"}   # optional: request headers that must match (value globs)
        client: "Kibana/*"              # optional: User-Agent glob
        query:                          # optional: where the query text is taken from
          fields: [title, text]         #   only text queried on these fields (default: any field)
          template_params: [q]          #   search templates: the params holding the text
        rerank: {window_size: 50, fields: [title, text], fusion: linear}   # ext.rerank options

A search that matches a rule and has no rerank of its own is reranked with the rule's options
and the free text found in its query. Left untouched (byte for byte): searches sorted by anything
but `_score`, `size: 0` (aggregation-only), scroll/PIT/search_after continuation pages, queries
without free text, and requests that opt out (header X-Rescore-Rerank: false or ext.rerank: false).
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import quote

from sidecar.api.errors import ValidationFailed
from sidecar.rerank.cache import ByteLRU, hashed_key, text_size
from sidecar.search.syntax import RerankDefaults, RerankSpec, build_spec, opts_out, sorts_by_score_only

log = logging.getLogger(__name__)

ENDPOINTS = ("search", "msearch", "search_template", "msearch_template", "async_search")
# ext.rerank keys a rule may set (the request syntax of DESIGN.md §1, minus the per-user ones).
RERANK_KEYS = ("window_size", "fields", "doc_template", "fusion", "weights", "rank_constant", "instruction",
               "model", "passages", "timeout_ms", "min_score", "query_understanding")
# The request header that opts one request out (any of these values), next to ext.rerank: false.
OPT_OUT_HEADER = "X-Rescore-Rerank"
_OFF = ("false", "off", "0", "no")
# Why a matching search was not reranked: bounded, used as a metric label.
SKIP_REASONS = ("sorted", "size_0", "continuation", "no_text", "opted_out")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_RULE_KEYS = {"name", "indices", "endpoints", "headers", "client", "query", "rerank"}
_QUERY_KEYS = {"fields", "template_params"}


class PolicyError(ValueError):
    """The policies file is invalid; the message names the file and the path inside it."""


@dataclass(frozen=True, kw_only=True)
class Policy:
    """One rule: which searches it covers and the rerank options it applies."""

    name: str
    indices: tuple[str, ...]
    endpoints: tuple[str, ...] = ENDPOINTS
    headers: tuple[tuple[str, str], ...] = ()
    client: str | None = None
    text_fields: tuple[str, ...] = ()
    template_params: tuple[str, ...] = ()
    rerank: Mapping[str, Any] | None = None

    def covers_request(self, endpoint: str, headers: Mapping[str, str]) -> bool:
        """Return whether the endpoint and the request headers are the ones this rule covers."""
        if endpoint not in self.endpoints:
            return False
        if self.client is not None and not fnmatchcase(headers.get("User-Agent", ""), self.client):
            return False
        return all(fnmatchcase(headers.get(name, ""), pattern) for name, pattern in self.headers)

    def spec(self, query_text: str, body: dict, defaults: RerankDefaults) -> RerankSpec:
        """Return the rerank spec for one search this rule applies to."""
        return build_spec(dict(self.rerank or {}), query_text, defaults, f"policy {self.name}",
                          explain=bool(body.get("explain", False)), syntax="policy")


@dataclass(frozen=True)
class Decision:
    """What a policy says about one search: rerank it (reason None) or leave it, and why."""

    policy: Policy | None
    reason: str | None = None
    query_text: str | None = None

    @property
    def rerank(self) -> bool:
        return self.policy is not None and self.reason is None

    def header(self) -> str:
        """Return the X-Rescore-Status value of a search that was not reranked."""
        if self.policy is None:
            return "none"
        return f"skipped;reason={self.reason}"


NO_POLICY = Decision(None, None, None)


class IndexResolver:
    """Resolve an index expression to its concrete indices with their aliases and data stream.

    Answers are cached for `ttl_s` in a ByteLRU (digest keys, at most `max_bytes`): an index
    expression comes from the request path, so neither its text nor an unbounded count is kept.
    """

    def __init__(self, client: Any, ttl_s: float = 30.0, max_bytes: int = 1024 * 1024) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._cache: ByteLRU[tuple[float, tuple[frozenset[str], ...]]] = ByteLRU(
            max_bytes, size_of=lambda entry: sum(text_size(*names) for names in entry[1]))

    def names(self, expression: str) -> tuple[frozenset[str], ...]:
        """Return, per concrete index, the names it answers to: itself, its aliases, its data stream."""
        now = time.monotonic()
        key = hashed_key("index-expression", expression)
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        resolved = self._resolve(expression)
        self._cache.put(key, (now, resolved))
        return resolved

    def _resolve(self, expression: str) -> tuple[frozenset[str], ...]:
        try:
            answer = self._client.transport.perform_request(
                "GET", f"/_resolve/index/{quote(expression, safe=',*')}", params={"expand_wildcards": "open"})
        except Exception as exc:  # a missing index: no policy applies, the engine answers the search
            log.info("policy_resolve_failed expression=%s error=%s", expression, type(exc).__name__)
            return ()
        by_index: dict[str, set[str]] = {}
        for entry in answer.get("indices", []):
            names = by_index.setdefault(entry["name"], {entry["name"]})
            names.update(entry.get("aliases", []))
            if entry.get("data_stream"):
                names.add(entry["data_stream"])
        for stream in answer.get("data_streams", []):
            for backing in stream.get("backing_indices", []):
                by_index.setdefault(backing, {backing}).add(stream["name"])
        for alias in answer.get("aliases", []):
            for index in alias.get("indices", []):
                by_index.setdefault(index, {index}).add(alias["name"])
        return tuple(frozenset(v) for _, v in sorted(by_index.items()))


@dataclass(frozen=True)
class PolicySet:
    """Every rule of the policies file; the first rule that covers a search applies."""

    policies: tuple[Policy, ...] = ()
    source: str = ""

    def __bool__(self) -> bool:
        return bool(self.policies)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.policies)

    def find(self, endpoint: str, index: str | None, headers: Mapping[str, str],
             resolve: Callable[[str], tuple[frozenset[str], ...]]) -> Policy | None:
        """Return the first rule covering this endpoint, headers and every index the search reads."""
        candidates = [p for p in self.policies if p.covers_request(endpoint, headers)]
        if not candidates:
            return None
        parts = [p.strip() for p in (index or "*").split(",") if p.strip()]
        direct = next((p for p in candidates if parts and all(_matches(part, p.indices) for part in parts)), None)
        if direct is not None:
            return direct
        concrete = resolve(index or "*")
        if not concrete:
            return None
        return next((p for p in candidates
                     if all(any(_matches(name, p.indices) for name in names) for names in concrete)), None)

    def decide(self, endpoint: str, index: str | None, headers: Mapping[str, str], body: Any,
               params: Mapping[str, str], resolve: Callable[[str], tuple[frozenset[str], ...]], *,
               template_params: Mapping[str, Any] | None = None) -> Decision:
        """Return whether (and with which rule and query text) to rerank one search body."""
        if not self.policies or not isinstance(body, dict):
            return NO_POLICY
        policy = self.find(endpoint, index, headers, resolve)
        if policy is None:
            return NO_POLICY
        if headers.get(OPT_OUT_HEADER, "").strip().lower() in _OFF or opts_out(body):
            return Decision(policy, "opted_out")
        reason = skip_reason(body, params)
        if reason is not None:
            return Decision(policy, reason)
        text = ""
        if template_params is not None and policy.template_params:
            text = " ".join(str(template_params[k]) for k in policy.template_params
                            if isinstance(template_params.get(k), (str, int, float))
                            and str(template_params[k]).strip())
        if not text:
            text = extract_query_text(body.get("query"), policy.text_fields)
        if not text and isinstance(params.get("q"), str):  # URI search: /_search?q=...
            text = lucene_free_text(params["q"], policy.text_fields)
        if not text.strip():
            return Decision(policy, "no_text")
        return Decision(policy, None, text)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


# --- what is left untouched --------------------------------------------------------------------

def skip_reason(body: dict, params: Mapping[str, str]) -> str | None:
    """Return why a search must stay as it is (sorted, size_0, continuation), or None."""
    if "scroll" in params or "scroll" in body or "pit" in body or "search_after" in body:
        return "continuation"
    sort = body.get("sort", params.get("sort"))
    if sort is not None and not sorts_by_score_only(sort):
        return "sorted"
    size = body.get("size", params.get("size"))
    try:
        if size is not None and int(size) == 0:
            return "size_0"
    except (TypeError, ValueError):
        return None  # a bad size: the first stage names it
    return None


# --- query text --------------------------------------------------------------------------------

_MATCH_TYPES = ("match", "match_phrase", "match_phrase_prefix", "match_bool_prefix")
_MULTI_TYPES = ("multi_match", "combined_fields")
_STRING_TYPES = ("query_string", "simple_query_string")
# Compound queries: the keys whose queries score the hits (negations like must_not are not text).
_COMPOUND = {"bool": ("must", "should", "filter"), "dis_max": ("queries",), "constant_score": ("filter",),
             "function_score": ("query",), "script_score": ("query",), "boosting": ("positive",),
             "nested": ("query",), "hybrid": ("queries",)}


def extract_query_text(query: Any, fields: tuple[str, ...] = ()) -> str:
    """Return the free text of a query DSL tree (words joined by spaces, repeated parts once).

    Reads match/match_phrase(_prefix)/match_bool_prefix, multi_match, combined_fields,
    query_string, simple_query_string and neural, through bool (must/should/filter, never
    must_not), dis_max, constant_score, function_score, script_score, boosting, nested and
    hybrid; the shapes Kibana's KQL/Lucene and Dashboards' DQL compile to are made of these.
    With `fields`, only text queried on one of them (or on no named field) counts.
    """
    parts: list[str] = []
    _walk(query, fields, parts)
    seen: list[str] = []
    for part in parts:
        part = " ".join(part.split())
        if part and part not in seen:
            seen.append(part)
    return " ".join(seen)


def _walk(node: Any, fields: tuple[str, ...], out: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, fields, out)
        return
    if not isinstance(node, dict):
        return
    for kind, value in node.items():
        if not isinstance(value, dict):
            continue
        if kind in _MATCH_TYPES:
            for field, spec in value.items():
                text = spec.get("query") if isinstance(spec, dict) else spec
                if isinstance(text, str) and _field_ok(field, fields):
                    out.append(text)
        elif kind in _MULTI_TYPES:
            if isinstance(value.get("query"), str) and _fields_ok(value.get("fields"), fields):
                out.append(value["query"])
        elif kind in _STRING_TYPES:
            if isinstance(value.get("query"), str):
                default = value.get("fields") or value.get("default_field")
                out.append(lucene_free_text(value["query"], fields if _fields_ok(default, fields) else None))
        elif kind == "neural":
            for field, spec in value.items():
                if isinstance(spec, dict) and isinstance(spec.get("query_text"), str) and _field_ok(field, fields):
                    out.append(spec["query_text"])
        elif kind in _COMPOUND:
            for key in _COMPOUND[kind]:
                _walk(value.get(key), fields, out)


def _field_ok(field: str, fields: tuple[str, ...]) -> bool:
    base = field.split("^", 1)[0]
    return not fields or any(fnmatchcase(base, f) or base.startswith(f + ".") for f in fields)


def _fields_ok(named: Any, fields: tuple[str, ...]) -> bool:
    if not fields or not named or named == "*":
        return True
    named = [named] if isinstance(named, str) else named
    return any(isinstance(n, str) and (n in ("*", "*.*") or _field_ok(n, fields)) for n in named)


_LUCENE_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"~?\d*|\S+')
_LUCENE_RANGE = re.compile(r'(?:[\w.@*-]+:)?[\[{][^\]}]*[\]}]')
_FIELD_PREFIX = re.compile(r"^([\w.@*-]+):(.*)$")
_NOT_TEXT = re.compile(r"^[<>=]*[\d.:/+-]*$")  # numbers, dates, times, IP addresses, price:>10


def lucene_free_text(query: str, fields: tuple[str, ...] | None = ()) -> str:
    """Return the words of a query_string / simple_query_string query that are free text.

    Drops operators, negated terms (NOT x, -x, !x), ranges, lone wildcards, boosts and fuzziness,
    field prefixes (with `fields`, terms on other fields), and fielded values that are numbers,
    dates or addresses. `fields` None: the query's default fields are not wanted, so only
    terms that name a wanted field count.
    """
    words: list[str] = []
    negate_next = False
    spaced = re.sub(r"([()])", r" \1 ", _LUCENE_RANGE.sub(" ", query))
    for token in _LUCENE_TOKEN.findall(spaced):
        if token in ("(", ")"):
            continue
        if token in ("AND", "OR", "&&", "||", "|", "+"):
            continue
        if token in ("NOT", "!", "-"):
            negate_next = True
            continue
        if negate_next or token[0] in "-!":
            negate_next = False
            continue
        token = token.lstrip("+")
        fielded = _FIELD_PREFIX.match(token)
        if fielded and not token.startswith('"'):
            field, token = fielded.groups()
            if fields and not _field_ok(field, fields) or _NOT_TEXT.match(token.strip('"')):
                continue
        elif fields is None:
            continue
        token = re.sub(r"(\^[\d.]+|~[\d.]*)$", "", token).strip('"')
        token = token.replace("\\", "")
        token = token.replace("*", "").replace("?", "")
        if token.strip():
            words.append(token.strip())
    return " ".join(words)


# --- loading -----------------------------------------------------------------------------------

def load_policies(path: str | Path, defaults: RerankDefaults) -> PolicySet:
    """Read and validate a policies file (YAML or JSON); errors name the file and the path inside it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read: {exc}") from None
    data = _parse(path, text)
    if not isinstance(data, dict) or set(data) - {"policies"} or not isinstance(data.get("policies"), list):
        raise PolicyError(f"{path}: must be an object with one key, policies: a list of rules")
    policies: list[Policy] = []
    for i, raw in enumerate(data["policies"]):
        policy = _policy(raw, f"policies[{i}]", path, defaults)
        if policy.name in (p.name for p in policies):
            raise PolicyError(f"{path}: policies[{i}].name: {policy.name!r} is used twice")
        policies.append(policy)
    log.info("policies_loaded file=%s policies=%s", path, ",".join(p.name for p in policies))
    return PolicySet(tuple(policies), str(path))


def _parse(path: Path, text: str) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    import yaml  # YAML is a superset of JSON: any other suffix is read as YAML

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1} column {where.column + 1}" if where is not None else ""
        raise PolicyError(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None


def _policy(raw: Any, where: str, path: Path, defaults: RerankDefaults) -> Policy:
    def fail(key: str, message: str) -> PolicyError:
        return PolicyError(f"{path}: {where}{'.' + key if key else ''}: {message}")

    if not isinstance(raw, dict):
        raise fail("", "must be an object")
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key (known: {', '.join(sorted(_RULE_KEYS))})")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail("name", "must be 1-64 characters of letters, digits, _ . -")
    indices = _strings(raw.get("indices"), fail, "indices", required=True)
    endpoints = _strings(raw.get("endpoints", list(ENDPOINTS)), fail, "endpoints", required=True)
    for i, endpoint in enumerate(endpoints):
        if endpoint not in ENDPOINTS:
            raise fail(f"endpoints[{i}]", f"{endpoint!r} is not one of {', '.join(ENDPOINTS)}")
    headers = raw.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(k, str) and k and isinstance(v, str)
                                                for k, v in headers.items()):
        raise fail("headers", "must map header names to value patterns (strings)")
    client = raw.get("client")
    if client is not None and (not isinstance(client, str) or not client):
        raise fail("client", "must be a User-Agent pattern (string)")
    query = raw.get("query", {})
    if not isinstance(query, dict):
        raise fail("query", "must be an object")
    unknown = sorted(set(query) - _QUERY_KEYS)
    if unknown:
        raise fail(f"query.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_QUERY_KEYS))})")
    text_fields = _strings(query.get("fields", []), fail, "query.fields")
    template_params = _strings(query.get("template_params", []), fail, "query.template_params")
    rerank = raw.get("rerank", {})
    if not isinstance(rerank, dict):
        raise fail("rerank", "must be an object of ext.rerank options")
    unknown = sorted(set(rerank) - set(RERANK_KEYS))
    if unknown:
        raise fail(f"rerank.{unknown[0]}", f"unknown key (known: {', '.join(RERANK_KEYS)})")
    try:
        build_spec(dict(rerank), "policy check", defaults, f"{where}.rerank")
    except ValidationFailed as exc:
        raise PolicyError(f"{path}: {exc.field}: {exc.message}") from None
    return Policy(name=name, indices=indices, endpoints=endpoints, headers=tuple(sorted(headers.items())),
                  client=client, text_fields=text_fields, template_params=template_params, rerank=dict(rerank))


def _strings(value: Any, fail: Callable[[str, str], PolicyError], key: str, *, required: bool = False
             ) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise fail(key, "must be a list of non-empty strings")
    if required and not value:
        raise fail(key, "must not be empty")
    return tuple(v.strip() for v in value)
