"""RESCORE_MAX_TEXT_CHARS / RESCORE_TEXT_OVERFLOW on every path that feeds texts to the reranker."""
from __future__ import annotations

import pytest

from sidecar import create_app
from sidecar.config import Settings, SettingsError
from sidecar.rerank.passages import WhitespaceSplitter
from sidecar.rerank.service import ScoreResult
from sidecar.search.syntax import fit_text, fit_texts
from tests.conftest import free_port

LIMIT = 10
LONG = "x" * 25


class RecordingReranker:
    """Scores texts by length and records what it was given."""

    model = "fake"
    passage_splitter = WhitespaceSplitter()

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def admit(self, query, texts, instruction=None, timeout_s=None) -> None:
        pass  # room for every request

    def document_budget(self, query, instruction=None) -> int:
        return 512  # the texts here are a few words: passages (on by default) leave them whole

    def score(self, query, texts, instruction=None, timeout_s=None):
        self.calls.append((query, list(texts)))
        return ScoreResult(scores=[float(len(t)) for t in texts], cache_hits=0, scored=len(texts), took_ms=1.0,
                           model=self.model, status="ok")


def make_app(overflow: str, opensearch_url: str | None = None):
    """The app with a recording reranker (the unit under test is text limiting, not the model)."""
    url = opensearch_url or f"http://127.0.0.1:{free_port()}"
    settings = Settings.from_env({}, opensearch_url=url, preload_model=False,
                                 max_text_chars=LIMIT, text_overflow=overflow)
    app = create_app(settings)
    app.testing = True
    app.extensions["rescore"]._reranker = RecordingReranker()
    return app


def _app(overflow: str):
    return make_app(overflow)


@pytest.fixture
def truncating():
    return _app("truncate")


@pytest.fixture
def rejecting():
    return _app("reject")


def _calls(app):
    return app.extensions["rescore"].reranker.calls


def test_fit_text_and_texts():
    assert fit_text("abc", "q", 3, "reject") == ("abc", False)
    assert fit_text("abcd", "q", 3, "truncate") == ("abc", True)
    assert fit_texts(["ab", "abcd", "abcdef"], "documents", 3, "truncate") == (["ab", "abc", "abc"], 2)
    with pytest.raises(Exception) as info:
        fit_texts(["ab", "abcd"], "documents", 3, "reject")
    assert info.value.status == 422 and info.value.field == "documents[1]"


def test_settings_validate_the_new_values():
    assert Settings.from_env({}).max_text_chars == 100000 and Settings.from_env({}).text_overflow == "truncate"
    assert Settings.from_env({"RESCORE_TEXT_OVERFLOW": "reject", "RESCORE_MAX_TEXT_CHARS": "5"}).max_text_chars == 5
    with pytest.raises(SettingsError, match="RESCORE_TEXT_OVERFLOW"):
        Settings.from_env({"RESCORE_TEXT_OVERFLOW": "drop"})
    with pytest.raises(SettingsError, match="RESCORE_MAX_TEXT_CHARS"):
        Settings.from_env({"RESCORE_MAX_TEXT_CHARS": "0"})


# --- truncate ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
def test_cohere_truncates_and_warns(truncating, path):
    response = truncating.test_client().post(path, json={"query": LONG, "documents": ["ok", LONG, {"text": LONG}]})
    assert response.status_code == 200
    query, texts = _calls(truncating)[-1]
    assert query == LONG[:LIMIT] and texts == ["ok", LONG[:LIMIT], LONG[:LIMIT]]
    warnings = response.get_json()["meta"]["warnings"]
    assert any("2 of 3 documents" in w for w in warnings) and any("query" in w for w in warnings)
    assert "X-Rescore-Warning" in response.headers


def test_cohere_without_long_texts_has_no_warnings(truncating):
    response = truncating.test_client().post("/v1/rerank", json={"query": "q", "documents": ["a", "b"]})
    assert "warnings" not in response.get_json()["meta"] and "X-Rescore-Warning" not in response.headers


def test_tei_truncates_and_flags_in_a_header(truncating):
    response = truncating.test_client().post("/rerank", json={"query": "q", "texts": [LONG, "b"], "return_text": True})
    assert response.status_code == 200 and "1 of 2 texts" in response.headers["X-Rescore-Warning"]
    assert _calls(truncating)[-1] == ("q", [LONG[:LIMIT], "b"])


@pytest.mark.parametrize("path", ["/score", "/v1/score"])
def test_vllm_score_truncates_both_sides(truncating, path):
    response = truncating.test_client().post(path, json={"text_1": [LONG, "q"], "text_2": ["a", LONG]})
    assert response.status_code == 200
    assert sorted(_calls(truncating)) == sorted([(LONG[:LIMIT], ["a"]), ("q", [LONG[:LIMIT]])])
    assert len(response.get_json()["meta"]["warnings"]) == 2


def test_rescore_documents_truncate_and_count(truncating):
    response = truncating.test_client().post("/v1/rescore", json={"query": LONG, "documents": [LONG, "b"]})
    assert response.status_code == 200
    assert response.get_json()["ext"]["rerank"]["truncated"] == 2  # one document and the query
    assert _calls(truncating)[-1] == (LONG[:LIMIT], [LONG[:LIMIT], "b"])


def test_rescore_hits_truncate(truncating):
    hits = [{"_id": "1", "_score": 1.0, "_source": {"title": "t", "text": LONG}}]
    response = truncating.test_client().post("/v1/rescore", json={"query": "q", "hits": hits})
    assert response.get_json()["ext"]["rerank"]["truncated"] == 1
    assert _calls(truncating)[-1] == ("q", [("t\n" + LONG)[:LIMIT]])


# --- reject -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path, body, field", [
    ("/v1/rerank", {"query": "q", "documents": ["a", "b", "c", LONG]}, "documents[3]"),
    ("/v2/rerank", {"query": LONG, "documents": ["a"]}, "query"),
    ("/rerank", {"query": "q", "texts": [LONG]}, "texts[0]"),
    ("/score", {"text_1": "q", "text_2": ["a", LONG]}, "text_2[1]"),
    ("/v1/score", {"text_1": LONG, "text_2": "a"}, "text_1"),
    ("/v1/score", {"text_1": ["q", LONG], "text_2": ["a", "b"]}, "text_1[1]"),
    ("/v1/rescore", {"query": "q", "documents": ["a", LONG]}, "documents[1]"),
    ("/v1/rescore", {"query": LONG, "documents": ["a"]}, "query"),
    ("/v1/rescore", {"query": "q", "hits": [{"_id": "1", "_source": {"text": LONG}}]}, "hits[0]"),
])
def test_reject_mode_is_422_naming_the_field(rejecting, path, body, field):
    response = rejecting.test_client().post(path, json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()
    assert error["error_type"] == "validation_error" and error["field"] == field
    assert "RESCORE_MAX_TEXT_CHARS" in error["error"]
    assert _calls(rejecting) == []


def test_reject_mode_accepts_texts_at_the_limit(rejecting):
    response = rejecting.test_client().post("/v1/rerank", json={"query": "q" * LIMIT, "documents": ["d" * LIMIT]})
    assert response.status_code == 200 and "warnings" not in response.get_json()["meta"]
