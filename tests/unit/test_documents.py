from sidecar.rerank.documents import apply_source_filter, get_path, hit_text, plan_source

SOURCE = {"title": "T", "text": "Body", "embedding": [0.1], "meta": {"brand": "acme", "tags": ["a", "b"]}}


def test_get_path_through_objects_and_lists():
    assert get_path(SOURCE, "meta.brand") == ["acme"]
    assert get_path(SOURCE, "meta.tags") == ["a", "b"]
    assert get_path({"items": [{"name": "x"}, {"name": "y"}]}, "items.name") == ["x", "y"]
    assert get_path(SOURCE, "missing") == []


def test_hit_text_joins_fields_and_falls_back_to_fields_section():
    assert hit_text({"_source": SOURCE}, ("title", "text")) == "T\nBody"
    assert hit_text({"_source": {}, "fields": {"title": ["From fields"]}}, ("title",)) == "From fields"


def test_no_source_filter_needs_no_change():
    plan = plan_source(None, ("title", "text"), missing=True)
    assert not plan.changed
    assert not plan_source({"excludes": ["embedding"]}, ("title", "text"), missing=False).changed


def test_source_false_is_widened_then_removed():
    plan = plan_source(False, ("title", "text"), missing=False)
    assert plan.changed and plan.send == {"includes": ["title", "text"]}
    assert apply_source_filter(SOURCE, plan.original) is None


def test_includes_are_widened_and_the_callers_filter_reapplied():
    plan = plan_source(["meta.*"], ("title", "text"), missing=False)
    assert plan.changed and plan.send == {"includes": ["meta.*", "title", "text"]}
    assert apply_source_filter(SOURCE, plan.original) == {"meta": {"brand": "acme", "tags": ["a", "b"]}}


def test_excludes_of_needed_fields_are_lifted_then_reapplied():
    plan = plan_source({"excludes": ["text", "embedding"]}, ("title", "text"), missing=False)
    assert plan.changed and plan.send == {"excludes": ["embedding"]}
    assert apply_source_filter(SOURCE, plan.original) == {"title": "T", "meta": {"brand": "acme", "tags": ["a", "b"]}}


def test_nested_include_keeps_only_that_branch():
    assert apply_source_filter(SOURCE, "meta.brand") == {"meta": {"brand": "acme"}}
