"""The engine layer's renderer of the stored template files (sidecar/engine/mustache.py)."""
from __future__ import annotations

import json

import pytest

from sidecar.engine import ENGINES
from sidecar.engine.mustache import TemplateError, render
from sidecar.search.templates import MODES


def test_values_are_json_escaped_and_sections_follow_mustache_truth():
    source = '{"q": "{{q}}", "n": {{n}}{{^n}}0{{/n}}{{#flag}}, "on": true{{/flag}}{{#v}}, "v": {{#toJson}}v{{/toJson}}{{/v}}}'
    assert json.loads(render(source, {"q": 'a "b" \\ c\n</x>', "n": 0})) == {"q": 'a "b" \\ c\n</x>', "n": 0}
    assert json.loads(render(source, {"q": "", "flag": True, "v": {"x": [1, 2]}})) == {
        "q": "", "n": 0, "on": True, "v": {"x": [1, 2]}}


@pytest.mark.parametrize("source", ["{{{raw}}}", "{{#a}}x", "{{#a}}x{{/b}}", "{{> partial}}", "{{#toJson}}nope{{/toJson}}"])
def test_mustache_it_does_not_understand_is_an_error(source):
    with pytest.raises(TemplateError):
        render(source, {"a": True, "raw": "x"})


def test_a_list_or_object_needs_to_json():
    with pytest.raises(TemplateError):
        render("{{v}}", {"v": [1]})


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("mode", MODES)
def test_every_template_file_renders_to_json_with_and_without_rerank(engine, mode):
    params = {"query_text": "q", "size": 5, "from": 0, "query_vector": [0.5], "k": 5}
    plain = ENGINES[engine].search_body(mode, params)
    assert plain["size"] == 5 and "ext" not in plain
    reranked = ENGINES[engine].search_body(mode, {**params, "rerank": True, "window_size": 9})
    assert reranked["ext"]["rerank"] == {"query_context": {"query_text": "q"}, "window_size": 9}
