"""Query understanding: a small pre-step that normalizes the rerank query and picks its instruction.

A pipeline of analyzers (RESCORE_QUERY_ANALYZERS) runs over the query text before the rerank spec
is final. Built in: "normalize" (NFKC, control characters out, whitespace collapsed), "language"
(py3langid, deterministic, "unknown" for short or unclear text) and "rules" (the first matching
rule of RESCORE_QUERY_RULES_FILE sets the query type, instruction and document template). A
custom analyzer is any class with `analyze(info: QueryInfo) -> QueryInfo`, named
`package.module:Class` and built without arguments. The first-stage query is never changed.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sidecar.rerank.doc_text import DocTemplate, TemplateError

log = logging.getLogger(__name__)

DEFAULT_RULES_FILE = Path(__file__).resolve().parents[2] / "es_templates" / "query_rules.json"
BUILTIN = ("normalize", "language", "rules")
# Language detection and rules read at most this many leading characters of the normalized query,
# so their time stays bounded whatever the query's length (the reranker still gets all of it).
ANALYZE_CHARS = 1000
# Code points that render as nothing and only split words: zero-width space, word joiner, BOM,
# soft hyphen. Zero-width (non-)joiners stay: some scripts need them.
_INVISIBLE = {"\u200b", "\u2060", "\ufeff", "\u00ad"}
_LANGUAGE_NAMES = {
    "ar": "Arabic", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch", "no": "Norwegian",
    "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sv": "Swedish", "th": "Thai",
    "tr": "Turkish", "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese",
}


class QueryUnderstandingError(ValueError):
    """The analyzer list or the rules file is unusable; the message names the setting, file and key."""


@dataclass(frozen=True, kw_only=True)
class QueryInfo:
    """What the analyzers found out about one query; `normalized` is what the reranker sees."""

    original: str
    normalized: str
    language: str = "unknown"
    type: str = "default"
    rule: str | None = None
    instruction: str | None = None
    doc_template: str | None = None

    def to_ext(self) -> dict[str, Any]:
        """Return the analysis part of the response's `ext.rerank.query` object."""
        return {"normalized": self.normalized, "language": self.language, "type": self.type, "rule": self.rule}


@runtime_checkable
class QueryAnalyzer(Protocol):
    """One step of the pipeline: read what earlier steps found, return it updated."""

    def analyze(self, info: QueryInfo) -> QueryInfo: ...


class QueryPipeline:
    """The configured analyzers, run in order over each rerank query."""

    def __init__(self, analyzers: tuple[QueryAnalyzer, ...]) -> None:
        self.analyzers = analyzers

    def analyze(self, text: str) -> QueryInfo:
        """Run every analyzer over `text` and return the result."""
        info = QueryInfo(original=text, normalized=text)
        for analyzer in self.analyzers:
            info = analyzer.analyze(info)
        return info


def normalize_text(text: str) -> str:
    """Return NFKC text without control or invisible characters and with single spaces."""
    text = unicodedata.normalize("NFKC", text)
    kept = []
    for char in text:
        if char.isspace():
            kept.append(" ")  # tabs, newlines, NBSP-like spaces separate words
        elif char not in _INVISIBLE and unicodedata.category(char) != "Cc":
            kept.append(char)
    return " ".join("".join(kept).split())


class Normalizer:
    """NFKC, control characters out, whitespace collapsed."""

    def analyze(self, info: QueryInfo) -> QueryInfo:
        """Return info with the normalized text."""
        return dataclasses.replace(info, normalized=normalize_text(info.normalized))


@functools.lru_cache(maxsize=4)
def _identifier(languages: tuple[str, ...]) -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if languages:
        unknown = sorted(set(languages) - set(identifier.labels))
        if unknown:
            raise QueryUnderstandingError(f"RESCORE_QUERY_LANGUAGES: unknown language code {unknown[0]!r}")
        identifier.set_languages(list(languages))
    return identifier


class LanguageDetector:
    """ISO 639-1 code of the query by py3langid, or "unknown" for short or unclear text.

    Deterministic (a fixed naive Bayes model). Restricting the candidates (RESCORE_QUERY_LANGUAGES)
    makes short queries far more reliable than picking among all 97 languages.
    """

    def __init__(self, languages: tuple[str, ...] = (), *, min_letters: int = 8, min_words: int = 2,
                 min_confidence: float = 0.5) -> None:
        self.languages = languages
        self.min_letters = min_letters
        self.min_words = min_words
        self.min_confidence = min_confidence
        self._identifier = _identifier(languages)  # loaded at start-up, once per process; stateless per call

    def detect(self, text: str) -> str:
        """Return the language code of `text` (its first ANALYZE_CHARS characters), or "unknown"."""
        text = text[:ANALYZE_CHARS]
        letters = sum(ch.isalpha() for ch in text)
        if letters < self.min_letters or (len(text.split()) < self.min_words and letters < 2 * self.min_letters):
            return "unknown"
        language, confidence = self._identifier.classify(text)
        return language if confidence >= self.min_confidence else "unknown"

    def analyze(self, info: QueryInfo) -> QueryInfo:
        """Return info with the detected language."""
        return dataclasses.replace(info, language=self.detect(info.normalized))


@dataclass(frozen=True, kw_only=True)
class QueryRule:
    """One rule of the rules file: conditions (all must hold) and what a match sets."""

    name: str
    type: str
    regex: re.Pattern | None = None
    languages: tuple[str, ...] = ()
    not_languages: tuple[str, ...] = ()
    min_words: int | None = None
    max_words: int | None = None
    terms: tuple[str, ...] = ()
    instruction: str | None = None
    doc_template: str | None = None

    def matches(self, info: QueryInfo) -> bool:
        """Return whether every condition of the rule holds for the query."""
        text = info.normalized
        words = len(text.split())
        if self.regex is not None and not self.regex.search(text):
            return False
        if self.languages and info.language not in self.languages:
            return False
        if self.not_languages and info.language in self.not_languages:
            return False
        if self.min_words is not None and words < self.min_words:
            return False
        if self.max_words is not None and words > self.max_words:
            return False
        if self.terms:
            padded = f" {_words(text)} "
            if not any(f" {term} " in padded for term in self.terms):
                return False
        return True


class RuleSet:
    """Ordered query rules; the first that matches sets type, instruction and document template."""

    def __init__(self, rules: tuple[QueryRule, ...]) -> None:
        self.rules = rules

    def analyze(self, info: QueryInfo) -> QueryInfo:
        """Return info with the first matching rule's type, instruction and template (unchanged if none).

        Rules see the first ANALYZE_CHARS characters of the normalized query.
        """
        probe = dataclasses.replace(info, normalized=info.normalized[:ANALYZE_CHARS])
        for rule in self.rules:
            if rule.matches(probe):
                instruction = rule.instruction
                if instruction is not None:
                    name = _LANGUAGE_NAMES.get(info.language, info.language)
                    instruction = instruction.replace("{language_name}", name).replace("{language}", info.language)
                return dataclasses.replace(info, type=rule.type, rule=rule.name, instruction=instruction,
                                           doc_template=rule.doc_template)
        return info


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a rules file; errors name the file and the JSON path of the bad value."""
    path = Path(path)
    where = f"RESCORE_QUERY_RULES_FILE {path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise QueryUnderstandingError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise QueryUnderstandingError(f"{where}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise QueryUnderstandingError(f"{where}: rules: expected an object with a list \"rules\"")
    unknown = sorted(set(data) - {"rules", "description"})
    if unknown:
        raise QueryUnderstandingError(f"{where}: {unknown[0]}: unknown key")
    rules: list[QueryRule] = []
    for i, raw in enumerate(data["rules"]):
        rules.append(_rule(raw, f"rules[{i}]", where))
    names = [r.name for r in rules]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise QueryUnderstandingError(f"{where}: rules[{i}].name: duplicate rule name {name!r}")
    return RuleSet(tuple(rules))


def _rule(raw: Any, at: str, where: str) -> QueryRule:
    def fail(key: str, message: str) -> QueryUnderstandingError:
        return QueryUnderstandingError(f"{where}: {at}{'.' + key if key else ''}: {message}")

    if not isinstance(raw, dict):
        raise fail("", "a rule must be an object")
    unknown = sorted(set(raw) - {"name", "type", "when", "instruction", "doc_template", "description"})
    if unknown:
        raise fail(unknown[0], "unknown key")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("name", "must be a non-empty string")
    kind = raw.get("type", name)
    if not isinstance(kind, str) or not kind.strip():
        raise fail("type", "must be a non-empty string")
    for key in ("instruction", "doc_template"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise fail(key, "must be a non-empty string")
    if "{" in raw.get("doc_template", ""):  # an inline template; a plain name refers to RESCORE_DOC_TEMPLATES_DIR
        try:
            DocTemplate.parse(raw["doc_template"])
        except TemplateError as exc:
            raise fail("doc_template", str(exc)) from None
    when = raw.get("when", {})
    if not isinstance(when, dict):
        raise fail("when", "must be an object")
    unknown = sorted(set(when) - {"regex", "language", "not_language", "min_words", "max_words", "terms"})
    if unknown:
        raise fail(f"when.{unknown[0]}", "unknown condition")
    regex = None
    if "regex" in when:
        if not isinstance(when["regex"], str):
            raise fail("when.regex", "must be a string")
        try:
            regex = re.compile(when["regex"])
        except re.error as exc:
            raise fail("when.regex", f"bad regular expression: {exc}") from None
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("language", "not_language", "terms"):
        value = when.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise fail(f"when.{key}", "must be a string or a list of non-empty strings")
        lists[key] = tuple(_words(v) if key == "terms" else v for v in value)
    bounds: dict[str, int | None] = {}
    for key in ("min_words", "max_words"):
        value = when.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise fail(f"when.{key}", "must be a non-negative integer")
        bounds[key] = value
    return QueryRule(name=name, type=kind, regex=regex, languages=lists["language"],
                     not_languages=lists["not_language"], terms=lists["terms"], instruction=raw.get("instruction"),
                     doc_template=raw.get("doc_template"), **bounds)


def _words(text: str) -> str:
    """Return the casefolded word tokens of `text` joined by single spaces (for term matching)."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def build_pipeline(spec: str, *, rules_file: str | Path = "", languages: tuple[str, ...] = ()) -> QueryPipeline | None:
    """Build the pipeline named by RESCORE_QUERY_ANALYZERS (None when it is empty)."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        return None
    analyzers: list[QueryAnalyzer] = []
    for name in names:
        if name == "normalize":
            analyzers.append(Normalizer())
        elif name == "language":
            analyzers.append(LanguageDetector(languages))
        elif name == "rules":
            analyzers.append(load_rules(rules_file or DEFAULT_RULES_FILE))
        else:
            analyzers.append(_load_custom(name))
    log.info("query_understanding analyzers=%s", ",".join(names))
    return QueryPipeline(tuple(analyzers))


def _load_custom(name: str) -> QueryAnalyzer:
    setting = "RESCORE_QUERY_ANALYZERS"
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        raise QueryUnderstandingError(f"{setting}: {name!r} is neither a built-in analyzer "
                                      f"({', '.join(BUILTIN)}) nor a package.module:Class path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise QueryUnderstandingError(f"{setting}: cannot import {module_name!r} for {name!r}: {exc}") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise QueryUnderstandingError(f"{setting}: module {module_name!r} has no attribute {attr!r}")
    try:
        analyzer = cls()
    except Exception as exc:  # any constructor failure must stop start-up with the setting named
        raise QueryUnderstandingError(f"{setting}: {name!r} could not be built: {type(exc).__name__}: {exc}") from None
    if not isinstance(analyzer, QueryAnalyzer):
        raise QueryUnderstandingError(f"{setting}: {name!r} has no analyze(info) method")
    return analyzer
