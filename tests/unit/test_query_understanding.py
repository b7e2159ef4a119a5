"""Query understanding: normalization, language detection, rules, custom analyzers, the spec hook."""
from __future__ import annotations

import dataclasses
import json

import pytest

from sidecar.api.errors import ValidationFailed
from sidecar.config import Settings, SettingsError
from sidecar.search.query_understanding import (
    DEFAULT_RULES_FILE,
    LanguageDetector,
    QueryInfo,
    QueryUnderstandingError,
    build_pipeline,
    load_rules,
    normalize_text,
)
from sidecar.search.syntax import RerankDefaults, build_spec, plan_search

LANGUAGES = Settings().query_language_list


class Tagger:
    """A custom analyzer loaded by dotted path: marks queries that mention a SKU."""

    def analyze(self, info: QueryInfo) -> QueryInfo:
        if "sku" in info.normalized.casefold():
            return dataclasses.replace(info, type="sku", rule="tagger", instruction="Find the product with this SKU")
        return info


class NoAnalyze:
    pass


@pytest.fixture(scope="module")
def pipeline():
    return build_pipeline("normalize,language,rules", languages=LANGUAGES)


@pytest.fixture(scope="module")
def detector():
    return LanguageDetector(LANGUAGES)


@pytest.mark.parametrize("raw, expected", [
    ("  solar \t panels\n\nwork ", "solar panels work"),
    ("ﬁsh and ｃｈｉｐｓ", "fish and chips"),            # NFKC: ligature, full-width letters
    ("Ｃ＋＋ ２０ ① ", "C++ 20 1"),
    ("solar\u200bpanel\ufeff", "solarpanel"),          # zero-width space and BOM vanish
    ("nul\x00byte and bell\x07", "nulbyte and bell"),  # control characters are dropped
    ("no\u00a0break\u2003em space", "no break em space"),
    ("café", "café"),                                  # NFKC composes, keeps accents
])
def test_normalization(raw, expected):
    assert normalize_text(raw) == expected


@pytest.mark.parametrize("text, language", [
    ("How do solar panels produce electricity at night", "en"),
    ("Wie funktionieren Solarzellen auf dem Dach im Winter?", "de"),
    ("Comment fonctionnent les panneaux solaires en hiver ?", "fr"),
    ("¿Cómo funcionan los paneles solares durante el invierno?", "es"),
])
def test_language_detection_on_sentences(detector, text, language):
    assert detector.detect(text) == language
    assert LanguageDetector(LANGUAGES).detect(text) == language, "a second detector agrees (deterministic)"


@pytest.mark.parametrize("text", ["acme", "tv 55", "", "42 $"])
def test_short_text_is_unknown(detector, text):
    assert detector.detect(text) == "unknown"


def test_unknown_language_code_names_the_setting():
    with pytest.raises(QueryUnderstandingError, match="RESCORE_QUERY_LANGUAGES.*'xx'"):
        LanguageDetector(("en", "xx"))


@pytest.mark.parametrize("query, kind, rule, needle", [
    ("how do solar panels produce electricity", "question", "question", "Given a question"),
    ("Wie funktionieren Solarzellen auf dem Dach?", "non_english", "non_english", "written in German"),
    ("Comment fonctionnent les panneaux solaires ?", "non_english", "non_english", "written in French"),
    ("NullPointerException in getUser()", "code", "code", "code search query"),
    ("parse_json decoder", "code", "code", "code search query"),
    ("running shoes under $50", "product", "product_price", "product search query"),
    ("nike air max", "product", "product_brand", "product search query"),
    ("solar panel efficiency", "default", None, None),
])
def test_default_rules_pick_type_and_instruction(pipeline, query, kind, rule, needle):
    info = pipeline.analyze(query)
    assert (info.type, info.rule) == (kind, rule)
    if needle is None:
        assert info.instruction is None
    else:
        assert needle in info.instruction


def test_first_matching_rule_wins_and_conditions_combine(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"rules": [
        {"name": "long", "when": {"min_words": 4, "regex": "(?i)^what\\b"}, "instruction": "long question"},
        {"name": "any_what", "type": "question", "when": {"regex": "(?i)^what\\b"}, "instruction": "question"},
        {"name": "brand", "when": {"terms": ["Levi's", "acme corp"]}, "doc_template": "{title}\nBrand: {brand}"},
        {"name": "fallback", "instruction": "anything else"},
    ]}))
    rules = load_rules(path)

    def run(text: str) -> QueryInfo:
        return rules.analyze(QueryInfo(original=text, normalized=text, language="en"))

    assert run("what is it").rule == "any_what" and run("what is it").type == "question"
    assert run("what is this thing").instruction == "long question"
    branded = run("levi's 501 jeans")
    assert branded.rule == "brand" and branded.doc_template == "{title}\nBrand: {brand}"
    assert branded.instruction is None
    assert run("ACME Corp anvil").rule == "brand", "terms match whole words, case-insensitive"
    assert run("acmecorp anvil").rule == "fallback"


def test_language_placeholders_are_filled(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"rules": [
        {"name": "foreign", "when": {"not_language": ["en", "unknown"]}, "instruction": "{language_name} ({language})"}
    ]}))
    info = load_rules(path).analyze(QueryInfo(original="x", normalized="x", language="es"))
    assert info.instruction == "Spanish (es)"


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"rules": {}}', "rules: expected an object"),
    ('{"rules": [], "extra": 1}', "extra: unknown key"),
    ('{"rules": [{"name": "a"}, {"name": "b", "when": {"regex": "("}}]}', r"rules\[1\]\.when\.regex: bad regular"),
    ('{"rules": [{"name": "a", "when": {"langauge": ["en"]}}]}', r"rules\[0\]\.when\.langauge: unknown condition"),
    ('{"rules": [{"name": "a"}, {"name": "a"}]}', r"rules\[1\]\.name: duplicate"),
    ('{"rules": [{"name": ""}]}', r"rules\[0\]\.name: must be"),
    ('{"rules": [{"name": "a", "when": {"max_words": -1}}]}', r"rules\[0\]\.when\.max_words"),
    ('{"rules": [{"name": "a", "doc_template": "{title"}]}', r"rules\[0\]\.doc_template: "),
    ('{"rules": [{"name": "a", "instruction": 3}]}', r"rules\[0\]\.instruction: must be"),
])
def test_bad_rules_file_names_the_file_and_the_json_path(tmp_path, content, message):
    path = tmp_path / "my-rules.json"
    path.write_text(content)
    with pytest.raises(QueryUnderstandingError, match=message) as caught:
        load_rules(path)
    assert "RESCORE_QUERY_RULES_FILE" in str(caught.value) and str(path) in str(caught.value)


def test_missing_rules_file_names_it(tmp_path):
    missing = tmp_path / "absent.json"
    with pytest.raises(QueryUnderstandingError, match=f"{missing}: cannot read"):
        build_pipeline("rules", rules_file=missing)


def test_the_bundled_rules_file_loads():
    assert [r.name for r in load_rules(DEFAULT_RULES_FILE).rules][:3] == ["code", "non_english", "question"]


def test_custom_analyzer_from_a_dotted_path_runs_after_normalization():
    pipeline = build_pipeline(f"normalize,{__name__}:Tagger")
    info = pipeline.analyze("  SKU   12-44 ")
    assert info.normalized == "SKU 12-44" and info.type == "sku" and info.rule == "tagger"
    assert pipeline.analyze("garden hose").type == "default"


@pytest.mark.parametrize("name, message", [
    ("no_such_module_xyz:Thing", "cannot import 'no_such_module_xyz'"),
    (f"{__name__}:Missing", "has no attribute 'Missing'"),
    (f"{__name__}:NoAnalyze", "has no analyze"),
    ("not-a-path", "neither a built-in analyzer"),
])
def test_custom_analyzer_errors_name_the_setting(name, message):
    with pytest.raises(QueryUnderstandingError, match=message) as caught:
        build_pipeline(name)
    assert "RESCORE_QUERY_ANALYZERS" in str(caught.value)


def test_settings_validate_the_analyzer_list_and_rules_file(tmp_path):
    with pytest.raises(SettingsError, match="RESCORE_QUERY_ANALYZERS"):
        Settings.from_env({"RESCORE_QUERY_ANALYZERS": "normalize,spellcheck"})
    with pytest.raises(SettingsError, match="RESCORE_QUERY_RULES_FILE"):
        Settings.from_env({"RESCORE_QUERY_RULES_FILE": str(tmp_path / "nope.json")})
    assert Settings.from_env({"RESCORE_QUERY_ANALYZERS": "normalize,pkg.mod:Klass"}).query_analyzers
    assert build_pipeline(" , ") is None, "an empty list switches query understanding off"


def test_services_fail_at_start_when_the_custom_analyzer_cannot_be_imported():
    from sidecar import Services

    settings = Settings.from_env({}, query_analyzers="nowhere_pkg.mod:Analyzer", preload_model=False)
    with pytest.raises(QueryUnderstandingError, match="RESCORE_QUERY_ANALYZERS"):
        Services(settings)


# --- the hook in the rerank spec ---------------------------------------------------------------

def test_spec_gets_the_normalized_query_and_the_rules_instruction(pipeline):
    defaults = RerankDefaults(query_pipeline=pipeline)
    body = {"query": {"match": {"text": "  How   do\tsolar panels work "}},
            "ext": {"rerank": {"query_context": {"query_text_path": "query.match.text"}}}}
    plan = plan_search(body, defaults)
    spec = plan.rerank
    assert spec.query_text == "How do solar panels work"
    assert plan.body["query"] == {"match": {"text": "  How   do\tsolar panels work "}}, "first stage unchanged"
    assert spec.instruction == "Given a question, retrieve passages that answer it"
    assert spec.instruction_source == "rule" and spec.query_info.language == "en"


def test_request_instruction_wins_and_the_switch_turns_it_off(pipeline):
    defaults = RerankDefaults(query_pipeline=pipeline)
    spec = build_spec({"instruction": "Mine"}, "how does it work", defaults, "body")
    assert spec.instruction == "Mine" and spec.instruction_source == "request" and spec.query_info.rule == "question"
    off = build_spec({"query_understanding": False}, "  how  does it work", defaults, "body")
    assert off.query_info is None and off.instruction is None and off.query_text == "  how  does it work"
    with pytest.raises(ValidationFailed) as caught:
        build_spec({"query_understanding": "no"}, "q", defaults, "body")
    assert caught.value.field == "body.query_understanding"


def test_rule_doc_template_reaches_the_spec(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"rules": [{"name": "p", "when": {"terms": ["acme"]},
                                           "doc_template": "{title}\nBrand: {brand}"}]}))
    defaults = RerankDefaults(query_pipeline=build_pipeline("normalize,rules", rules_file=path))
    assert build_spec({}, "acme anvil", defaults, "body").doc_template == "{title}\nBrand: {brand}"
    assert build_spec({}, "plain", defaults, "body").doc_template is None


def test_query_that_normalizes_to_nothing_is_a_422(pipeline):
    with pytest.raises(ValidationFailed) as caught:
        plan_search({"ext": {"rerank": {"query_context": {"query_text": "\x00\u200b"}}}},
                    RerankDefaults(query_pipeline=pipeline))
    assert caught.value.field == "ext.rerank.query_text"


def test_bundled_rules_take_linear_time_on_hostile_queries(pipeline):
    """The "code" regex once scanned to the end of the text from every "(" (quadratic)."""
    import time

    for unit in ("a(", "ab(c ", "Ab", "a.", "x_"):
        started = time.perf_counter()
        info = pipeline.analyze(unit * (400_000 // len(unit)))
        assert time.perf_counter() - started < 5, unit
        assert len(info.normalized) >= 390_000, "the reranker still gets the whole text"
    rules = json.loads(DEFAULT_RULES_FILE.read_text())["rules"]
    import re

    code = re.compile(next(r for r in rules if r["name"] == "code")["when"]["regex"])
    timings = []
    for n in (20_000, 80_000):
        text = "a(" * (n // 2)
        best = min(_timed(code.search, text) for _ in range(3))
        timings.append(best)
    assert timings[1] < 8 * timings[0] + 0.01, f"superlinear: {timings}"


def _timed(fn, *args) -> float:
    import time

    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started
