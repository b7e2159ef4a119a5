"""Render the stored search templates (es_templates/**/*.mustache.json) here, for engines that
cannot run them (Elasticsearch without lang-mustache): the files stay the one definition of each
mode's body, whether the engine renders them or the sidecar does.

Only the subset the template files use is understood, with the engines' JSON escaping of values:
`{{name}}`, `{{#name}}...{{/name}}` (once when truthy), `{{^name}}...{{/name}}` (when falsy) and the
engines' `{{#toJson}}name{{/toJson}}`. Any other tag is an error, never passed through.
"""
from __future__ import annotations

import json
import re
from typing import Any

_TAG = re.compile(r"\{\{([#^/]?)\s*([A-Za-z_][\w.]*)\s*\}\}")


class TemplateError(ValueError):
    """The template uses mustache this renderer does not understand, or is unbalanced."""


def render(source: str, params: dict[str, Any]) -> str:
    """Return `source` rendered with `params` (values JSON-escaped, as the engines do for JSON)."""
    if "{{{" in source:
        raise TemplateError("triple mustache (unescaped values) is not supported")
    nodes, rest = _parse(source, 0, None)
    if rest != len(source):
        raise TemplateError(f"unbalanced section at offset {rest}")
    return _emit(nodes, params)


def _parse(source: str, pos: int, section: str | None) -> tuple[list, int]:
    """Parse from `pos` to the end of `section` (or the source); return (nodes, position after it)."""
    nodes: list = []
    while True:
        match = _TAG.search(source, pos)
        text = source[pos: match.start() if match else len(source)]
        if "{{" in text:
            raise TemplateError(f"unsupported mustache tag near {text[text.find('{{'):][:40]!r}")
        nodes.append(text)
        if match is None:
            if section is not None:
                raise TemplateError(f"section {section!r} is not closed")
            return nodes, len(source)
        sigil, name = match.groups()
        pos = match.end()
        if sigil == "/":
            if name != section:
                raise TemplateError(f"{{{{/{name}}}}} closes {section!r}")
            return nodes, pos
        if sigil in "#^" and sigil:
            children, pos = _parse(source, pos, name)
            nodes.append((sigil, name, children))
        else:
            nodes.append(("", name, None))


def _emit(nodes: list, params: dict[str, Any]) -> str:
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
            continue
        sigil, name, children = node
        if sigil == "#" and name == "toJson":
            key = "".join(c for c in children if isinstance(c, str)).strip()
            if len(children) != 1 or key not in params:
                raise TemplateError(f"toJson needs one known parameter name, got {key!r}")
            out.append(json.dumps(params[key]))
        elif sigil == "#":
            if _truthy(params.get(name)):
                out.append(_emit(children, params))
        elif sigil == "^":
            if not _truthy(params.get(name)):
                out.append(_emit(children, params))
        else:
            out.append(_escape(params.get(name)))
    return "".join(out)


def _truthy(value: Any) -> bool:
    # Mustache: missing, null, false, "" and empty lists are false; 0 is a value like any other.
    return value is not None and value is not False and value != "" and value != []


def _escape(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)[1:-1]
    raise TemplateError(f"cannot render a {type(value).__name__} as a plain value; use toJson")
