"""Per-index document text templates: put structured fields (brand, category, price) into the model input.

A template is text with `{dotted.path}` placeholders, e.g.
``"{title}\\nBrand: {brand}\\nCategory: {category}\\nPrice: {price}\\n{description}"``.
Values come from the hit's `_source` (else its `fields` section); lists are joined with ", ".
A line whose placeholders are all missing is dropped whole, so "Brand: " never reaches the
model; `{{` and `}}` are literal braces. Templates are configured per index in
`es_templates/doc_text/*.json` as ``{"index_patterns": ["products*"], "template": "...",
"priority": 0}``; the highest priority whose pattern matches the hit's `_index` wins.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from sidecar.rerank.cache import ByteLRU, CacheStats, hashed_key, text_size
from sidecar.rerank.documents import get_path

log = logging.getLogger(__name__)

LIST_SEPARATOR = ", "
# The bundled per-index templates (RESCORE_DOC_TEMPLATES_DIR="" means this directory).
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "es_templates" / "doc_text"
MAX_TEMPLATE_CHARS = 10000
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_PATH = re.compile(r"^[A-Za-z0-9_@$-]+(\.[A-Za-z0-9_@$-]+)*$")


class TemplateError(ValueError):
    """A document text template that cannot be parsed; the message says where."""


@dataclass(frozen=True, slots=True)
class _Line:
    # Literal text and field paths alternate: parts[0], fields[0], parts[1], ..., parts[-1].
    parts: tuple[str, ...]
    fields: tuple[str, ...]


@dataclass(frozen=True)
class DocTemplate:
    """A parsed document text template."""

    source: str
    lines: tuple[_Line, ...]

    @classmethod
    def parse(cls, source: str) -> DocTemplate:
        """Parse a template; raise TemplateError on unbalanced braces, bad paths or no fields."""
        if not isinstance(source, str) or not source.strip():
            raise TemplateError("a template must be a non-empty string")
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateError(f"a template has at most {MAX_TEMPLATE_CHARS} characters")
        lines = tuple(_parse_line(line, number) for number, line in enumerate(source.split("\n"), start=1))
        if not any(line.fields for line in lines):
            raise TemplateError("a template needs at least one {field} placeholder")
        return cls(source, lines)

    @property
    def fields(self) -> tuple[str, ...]:
        """Return the field paths the template reads, in order of first use."""
        return tuple(dict.fromkeys(f for line in self.lines for f in line.fields))

    def render(self, hit: dict) -> str:
        """Return the hit's text: missing-field lines dropped, list values joined with ", "."""
        source = hit.get("_source") or {}
        fields_section = hit.get("fields") if isinstance(hit.get("fields"), dict) else {}
        out: list[str] = []
        for line in self.lines:
            if not line.fields:
                out.append(line.parts[0])
                continue
            values = [_value(source, fields_section, path) for path in line.fields]
            if not any(values):
                continue
            pieces = [line.parts[0]]
            for value, literal in zip(values, line.parts[1:]):
                pieces += [value, literal]
            out.append("".join(pieces).strip())
        return "\n".join(out).strip()


@dataclass(frozen=True)
class IndexTemplate:
    """A template and the index patterns it applies to."""

    name: str
    index_patterns: tuple[str, ...]
    template: DocTemplate
    priority: int = 0


@dataclass(frozen=True)
class DocTemplateSet:
    """The per-index templates loaded at start; picks the one for a hit's `_index`."""

    templates: tuple[IndexTemplate, ...] = ()

    def for_index(self, index: Any) -> DocTemplate | None:
        """Return the template of the highest priority whose pattern matches index, or None."""
        if not isinstance(index, str) or not self.templates:
            return None
        for entry in self.templates:  # sorted by priority at load
            if any(fnmatchcase(index, p) for p in entry.index_patterns):
                return entry.template
        return None

    def named(self, name: str) -> DocTemplate | None:
        """Return the template loaded from <name>.json, or None."""
        return next((e.template for e in self.templates if e.name == name), None)

    def resolve(self, name_or_source: str | None) -> str | None:
        """Return the template source for a template name or an inline source; None when unusable.

        For templates picked by server-side rules: an unusable one is logged and skipped.
        """
        if not name_or_source:
            return None
        template = self.named(name_or_source) if "{" not in name_or_source else None
        if template is not None:
            return template.source
        try:
            return DocTemplate.parse(name_or_source).source
        except TemplateError as exc:
            log.warning("doc_template_unusable template=%r error=%s", name_or_source[:80], exc)
            return None

    def fields_for(self, index_expression: str | None) -> tuple[str, ...]:
        """Return the fields templates may read for a search on index_expression (for `_source`).

        When every name in the expression is a plain name matched by some template, the
        fields of those templates; otherwise (an alias, a wildcard, no index at all) every
        template's fields, because the hits' concrete `_index` is only known afterwards.
        Widening costs only bandwidth: the caller's filter is re-applied to the response.
        """
        names = [n.strip() for n in (index_expression or "").split(",") if n.strip()]
        chosen = self.templates
        if names and not any(c in n for n in names for c in "*?"):
            matched = [self.for_index(n) for n in names]
            if all(t is not None for t in matched):
                chosen = tuple(e for e in self.templates if e.template in matched)
        return tuple(dict.fromkeys(f for e in chosen for f in e.template.fields))


def _template_size(template: DocTemplate) -> int:
    return text_size(template.source) + sum(
        120 + text_size(*line.parts, *line.fields) for line in template.lines)


# Parsed request templates by digest of their source; sources come from requests (up to
# MAX_TEMPLATE_CHARS each), so the cache is bounded in bytes, not in entries.
PARSE_CACHE_BYTES = 4 * 1024 * 1024
_PARSED: ByteLRU[DocTemplate] = ByteLRU(PARSE_CACHE_BYTES, size_of=_template_size)


def parse_cached(source: str) -> DocTemplate:
    """DocTemplate.parse, memoized: requests carry template sources, hits need them parsed."""
    key = hashed_key(source)
    template = _PARSED.get(key)
    if template is None:
        template = DocTemplate.parse(source)
        _PARSED.put(key, template)
    return template


def parse_cache_stats() -> CacheStats:
    """Return the counters of the parsed-template cache (tests, /ready)."""
    return _PARSED.stats()


def template_for(hit: dict, override: str | None, templates: DocTemplateSet) -> DocTemplate | None:
    """Return the template for one hit: the request's (or a rule's), else its index's, else None."""
    if override is not None:
        return parse_cached(override)
    return templates.for_index(hit.get("_index"))


def template_fields(override: str | None, templates: DocTemplateSet, index_expression: str | None) -> tuple[str, ...]:
    """Return the `_source` fields the templates of a search may read."""
    if override is not None:
        return parse_cached(override).fields
    return templates.fields_for(index_expression)


def load_dir(directory: str | Path) -> DocTemplateSet:
    """Load every *.json template of a directory (missing directory: no templates)."""
    directory = Path(directory)
    if not directory.is_dir():
        return DocTemplateSet()
    entries = [load_file(path) for path in sorted(directory.glob("*.json"))]
    entries.sort(key=lambda e: (-e.priority, e.name))
    log.info("doc_templates_loaded directory=%s templates=%s", directory, ",".join(e.name for e in entries))
    return DocTemplateSet(tuple(entries))


def load_file(path: Path) -> IndexTemplate:
    """Load one {"index_patterns": [...], "template": "...", "priority": 0} file."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TemplateError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise TemplateError(f"{path}: must be a JSON object")
    patterns = raw.get("index_patterns")
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise TemplateError(f"{path}: index_patterns must be a non-empty list of strings")
    priority = raw.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise TemplateError(f"{path}: priority must be an integer")
    unknown = sorted(set(raw) - {"index_patterns", "template", "priority", "description"})
    if unknown:
        raise TemplateError(f"{path}: unknown key {unknown[0]!r}")
    try:
        template = DocTemplate.parse(raw.get("template"))
    except TemplateError as exc:
        raise TemplateError(f"{path}: {exc}") from None
    return IndexTemplate(name=path.stem, index_patterns=tuple(patterns), template=template, priority=priority)


def _parse_line(line: str, number: int) -> _Line:
    parts, fields, literal = [], [], []
    at = 0
    for match in _TOKEN.finditer(line):
        literal.append(line[at:match.start()])
        at = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
        elif token in ("{", "}"):
            raise TemplateError(f"line {number}: unbalanced {token!r} (write {token * 2} for a literal brace)")
        else:
            path = match.group(1).strip()
            if not _PATH.match(path):
                raise TemplateError(f"line {number}: {{{match.group(1)}}} is not a field path")
            parts.append("".join(literal))
            literal = []
            fields.append(path)
    literal.append(line[at:])
    parts.append("".join(literal))
    return _Line(tuple(parts), tuple(fields))


def _value(source: dict, fields_section: dict, path: str) -> str:
    values = get_path(source, path)
    if not values:
        values = [str(v) for v in fields_section.get(path, []) if isinstance(v, (str, int, float))
                  and not isinstance(v, bool) and str(v).strip()]
    return LIST_SEPARATOR.join(v.strip() for v in values)
