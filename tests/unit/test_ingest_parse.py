from sidecar.search.ingest import Rejection, document_text, parse_corpus


def test_valid_lines_become_documents_with_attributes():
    lines = [
        '{"_id": "d1", "title": "T", "text": "body", "metadata": {"brand": "acme"}, "price": 3}\n',
        '{"_id": 7, "text": "no title"}\n',
    ]
    parsed = [doc for _, doc in parse_corpus(lines)]
    assert parsed[0] == {"doc_id": "d1", "title": "T", "text": "body", "attributes": {"brand": "acme", "price": 3}}
    assert parsed[1] == {"doc_id": "7", "title": "", "text": "no title"}


def test_bad_lines_are_reported_with_line_numbers_and_the_rest_kept():
    lines = [
        '{"_id": "ok1", "text": "fine"}',
        '{not json',
        '',
        '{"_id": "nt", "title": "only a title"}',
        '{"_id": "blank", "text": "   "}',
        '{"text": "no id"}',
        '["a", "list"]',
        '{"_id": "ok2", "text": "also fine"}',
    ]
    results = list(parse_corpus(lines))
    rejected = {n: r.reason for n, r in results if isinstance(r, Rejection)}
    kept = [d["doc_id"] for _, d in results if not isinstance(d, Rejection)]
    assert kept == ["ok1", "ok2"]
    assert set(rejected) == {2, 4, 5, 6, 7}
    assert rejected[2].startswith("bad JSON")
    assert "missing text" in rejected[4] and "missing text" in rejected[5]
    assert rejected[6] == "missing _id"
    assert rejected[7] == "line is not a JSON object"


def test_document_text_puts_title_first():
    assert document_text({"title": "Title", "text": "Body"}) == "Title\nBody"
    assert document_text({"title": "", "text": "Body"}) == "Body"
