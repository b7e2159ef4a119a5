"""Document text templates: rendering, per-index selection, files, request options and settings."""
from __future__ import annotations

import json

import pytest

from sidecar.api.errors import ValidationFailed
from sidecar.config import Settings, SettingsError
from sidecar.rerank.doc_text import (
    DEFAULT_DIR,
    DocTemplate,
    DocTemplateSet,
    IndexTemplate,
    TemplateError,
    load_dir,
    load_file,
    template_fields,
    template_for,
)
from sidecar.rerank.documents import plan_source
from sidecar.search.syntax import RerankDefaults, plan_search
from sidecar.search.templates import index_body

PRODUCT = {"_index": "products-2024", "_source": {
    "title": "Road Running Shoe", "brand": "Hoka", "category": ["shoes", "running"], "price": 144.95,
    "description": "Soft and light.", "attributes": {"color": "blue"}}}
TEMPLATE = "{title}\nBrand: {brand}\nCategory: {category}\nPrice: {price} {currency}\nSize: {attributes.size}\n{description}"


def test_render_drops_lines_whose_fields_are_all_missing_and_joins_lists():
    text = DocTemplate.parse(TEMPLATE).render(PRODUCT)
    assert text == "Road Running Shoe\nBrand: Hoka\nCategory: shoes, running\nPrice: 144.95\nSoft and light."


def test_render_literals_dotted_paths_and_the_fields_section():
    template = DocTemplate.parse("Product {{new}}\n{attributes.color} / {attributes.material}\nSKU: {sku}")
    hit = {"_source": {"attributes": {"color": "blue"}}, "fields": {"sku": ["A-1"]}}
    assert template.render(hit) == "Product {new}\nblue /\nSKU: A-1"
    assert template.fields == ("attributes.color", "attributes.material", "sku")


@pytest.mark.parametrize("source,message", [
    ("{title", "unbalanced"), ("title}", "unbalanced"), ("{}", "not a field path"), ("{a b}", "not a field path"),
    ("no fields here", "at least one"), ("", "non-empty"), ("{x}" * 5000, "at most"),
])
def test_bad_templates_are_refused(source, message):
    with pytest.raises(TemplateError, match=message):
        DocTemplate.parse(source)


def _entry(name, patterns, source, priority=0):
    return IndexTemplate(name=name, index_patterns=tuple(patterns), template=DocTemplate.parse(source),
                         priority=priority)


def test_template_set_picks_by_index_pattern_and_priority_order():
    general = _entry("general", ["products*"], "{title}")
    special = _entry("special", ["products-shoes"], "{title} {brand}", priority=5)
    templates = DocTemplateSet((special, general))  # load_dir sorts by priority
    assert templates.for_index("products-shoes") is special.template
    assert templates.for_index("products-2024") is general.template
    assert templates.for_index("docs") is None and templates.for_index(None) is None
    assert templates.fields_for("products-2024") == ("title",)
    assert templates.fields_for("products-shoes,products-2024") == ("title", "brand")
    assert templates.fields_for("an-alias") == ("title", "brand"), "unknown names: every template's fields"
    assert templates.fields_for("products*") == ("title", "brand")
    assert templates.named("general") is general.template and templates.named("nope") is None


def test_template_for_and_fields_prefer_the_request_template():
    templates = DocTemplateSet((_entry("p", ["products*"], "{title}"),))
    assert template_for(PRODUCT, None, templates).fields == ("title",)
    assert template_for(PRODUCT, "{brand}", templates).fields == ("brand",)
    assert template_for({"_index": "other"}, None, templates) is None
    assert template_fields("{brand} {price}", templates, "products") == ("brand", "price")


def test_template_fields_widen_the_callers_source_filter():
    needed = ("title", "text") + template_fields(None, load_dir(DEFAULT_DIR), "products")
    plan = plan_source(["title"], needed, missing=False)
    assert plan.changed and {"brand", "category", "price", "description"} <= set(plan.send["includes"])


def test_bundled_product_template_and_index_mapping():
    templates = load_dir(DEFAULT_DIR)
    assert [e.name for e in templates.templates] == ["products"]
    text = templates.for_index("products").render(PRODUCT)
    assert "Brand: Hoka" in text and "Price: 144.95" in text and "Color: blue" in text and "Material" not in text
    body = index_body(mapping="products")
    props = body["mappings"]["properties"]
    assert props["brand"]["type"] == props["category"]["type"] == "keyword" and props["price"]["type"] == "float"
    assert props["embedding"]["method"]["engine"] == "lucene" and props["embedding"]["dimension"] == 384
    with pytest.raises(ValueError, match="products"):
        index_body(mapping="nope")


@pytest.mark.parametrize("content,message", [
    ({"template": "{a}"}, "index_patterns"), ({"index_patterns": ["x"], "template": "{a"}, "unbalanced"),
    ({"index_patterns": ["x"], "template": "{a}", "extra": 1}, "unknown key 'extra'"),
    ({"index_patterns": ["x"], "template": "{a}", "priority": "high"}, "priority"),
])
def test_template_files_are_validated_with_the_file_named(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(TemplateError, match=message) as info:
        load_file(path)
    assert "bad.json" in str(info.value)


def test_load_dir_of_a_missing_directory_is_empty(tmp_path):
    assert load_dir(tmp_path / "none").templates == ()


DEFAULTS = RerankDefaults(doc_templates=load_dir(DEFAULT_DIR))


def _rerank(**options):
    body = {"query": {"match_all": {}}, "ext": {"rerank": {"query_context": {"query_text": "q"}, **options}}}
    return plan_search(body, DEFAULTS).rerank


def test_request_doc_template_inline_named_or_off():
    assert _rerank().doc_template is None and _rerank().index_templates is DEFAULTS.doc_templates
    assert _rerank(doc_template="{title} by {brand}").doc_template == "{title} by {brand}"
    assert _rerank(doc_template="products").doc_template == DEFAULTS.doc_templates.named("products").source
    off = _rerank(doc_template=False)
    assert off.doc_template is None and off.index_templates.templates == ()


@pytest.mark.parametrize("value,message", [
    ("{title", "unbalanced"), ("nosuch", "no document template named 'nosuch'"), ("", "template string"),
    (True, "template string"), (3, "template string"),
])
def test_bad_request_doc_template_names_the_field(value, message):
    with pytest.raises(ValidationFailed, match=message) as info:
        _rerank(doc_template=value)
    assert info.value.field == "ext.rerank.doc_template"


def test_request_passages_options_in_every_syntax():
    spec = _rerank(passages={"max_tokens": 128, "aggregate": "mean", "top_k": 3})
    assert spec.passages.enabled and spec.passages.max_tokens == 128 and spec.passages.top_k == 3
    assert spec.passages.overlap == 32, "unset keys keep the server default"
    assert not _rerank().passages.enabled and _rerank(passages=True).passages.enabled
    assert not _rerank(passages={"enabled": False, "max_tokens": 64}).passages.enabled
    rescore = plan_search({"query": {"match_all": {}}, "rescore": {"rerank": {
        "query_text": "q", "passages": {"max_passages": 4}}}}, DEFAULTS).rerank
    assert rescore.passages.max_passages == 4
    retriever = plan_search({"retriever": {"text_similarity_reranker": {
        "retriever": {"standard": {"query": {"match_all": {}}}}, "inference_text": "q",
        "passages": True, "doc_template": False}}}, DEFAULTS).rerank
    assert retriever.passages.enabled and retriever.index_templates.templates == ()


@pytest.mark.parametrize("value,field", [
    ({"max_tokens": 4}, "ext.rerank.passages.max_tokens"), ({"overlap": 500}, "ext.rerank.passages.overlap"),
    ({"aggregate": "median"}, "ext.rerank.passages.aggregate"), ({"top_k": 0}, "ext.rerank.passages.top_k"),
    ({"max_passages": 100}, "ext.rerank.passages.max_passages"), ({"size": 3}, "ext.rerank.passages.size"),
    ("yes", "ext.rerank.passages"),
])
def test_bad_passages_options_name_the_field(value, field):
    with pytest.raises(ValidationFailed) as info:
        _rerank(passages=value)
    assert info.value.field == field


def test_passage_and_template_settings_are_validated_naming_the_variable(tmp_path):
    settings = Settings.from_env({"RESCORE_PASSAGE_MAX_TOKENS": "128",
                                  "RESCORE_PASSAGE_AGGREGATE": "mean", "RESCORE_DOC_TEMPLATES_DIR": str(tmp_path)})
    assert settings.passage_options.enabled and settings.passage_options.max_tokens == 128
    assert settings.passage_options.enabled, "on by default (texts that fit the model stay whole)"
    assert not Settings.from_env({"RESCORE_PASSAGES": "off"}).passage_options.enabled
    for env, variable in [({"RESCORE_PASSAGE_OVERLAP": "300"}, "RESCORE_PASSAGE_OVERLAP"),
                          ({"RESCORE_PASSAGE_AGGREGATE": "sum"}, "RESCORE_PASSAGE_AGGREGATE"),
                          ({"RESCORE_MAX_PASSAGES": "0"}, "RESCORE_MAX_PASSAGES"),
                          ({"RESCORE_PASSAGE_TOP_K": "20"}, "RESCORE_PASSAGE_TOP_K"),
                          ({"RESCORE_DOC_TEMPLATES_DIR": str(tmp_path / "x")}, "RESCORE_DOC_TEMPLATES_DIR")]:
        with pytest.raises(SettingsError, match=variable):
            Settings.from_env(env)
