"""LRU score cache."""

from __future__ import annotations

import threading

from sidecar.rerank.cache import ScoreCache, cache_key


def key(doc: str, *, model: str = "m@main/none", instruction: str = "i", query: str = "q"):
    return cache_key(model, instruction, query, doc)


def test_get_returns_stored_scores_and_none_for_misses() -> None:
    cache = ScoreCache(10)
    cache.put_many([(key("a"), 1.5), (key("b"), -2.0)])
    assert cache.get_many([key("a"), key("c"), key("b")]) == [1.5, None, -2.0]
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.size) == (2, 1, 2)


def test_key_separates_model_instruction_query_and_content() -> None:
    base = key("doc")
    variants = [key("doc", model="other"), key("doc", instruction="j"), key("doc", query="r"), key("doc2")]
    assert all(v != base for v in variants)
    assert key("doc") == base


def test_least_recently_used_entry_is_evicted() -> None:
    cache = ScoreCache(2)
    cache.put_many([(key("a"), 1.0), (key("b"), 2.0)])
    cache.get_many([key("a")])  # a is now the most recent
    cache.put_many([(key("c"), 3.0)])
    assert cache.get_many([key("a"), key("b"), key("c")]) == [1.0, None, 3.0]


def test_zero_capacity_disables_the_cache() -> None:
    cache = ScoreCache(0)
    cache.put_many([(key("a"), 1.0)])
    assert cache.get_many([key("a")]) == [None]
    assert cache.stats().size == 0


def test_concurrent_writers_keep_the_capacity() -> None:
    cache = ScoreCache(100)

    def writer(offset: int) -> None:
        for i in range(500):
            cache.put_many([(key(f"{offset}-{i}"), float(i))])
            cache.get_many([key(f"{offset}-{i // 2}")])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.stats().size == 100


# --- byte budgets and digest keys (issue 16 item 6) --------------------------------------------

import gc  # noqa: E402
import logging  # noqa: E402
import tracemalloc  # noqa: E402

import pytest  # noqa: E402

from sidecar.rerank import doc_text  # noqa: E402
from sidecar.rerank.cache import ENTRY_OVERHEAD, ByteLRU, hashed_key  # noqa: E402


def _traced_growth(fill) -> int:
    """Return the bytes still allocated after fill() ran (what the cache keeps), measured by tracemalloc."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = fill()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return after - before


def test_score_cache_stays_within_its_byte_budget_after_far_more_inserts() -> None:
    budget = 64 * 1024
    long_query = "why does the immune system attack " * 300  # ~10 KB: must not be kept anywhere

    def fill():
        cache = ScoreCache(capacity=1_000_000, max_bytes=budget)
        for i in range(20 * budget // ENTRY_OVERHEAD):  # 20x what fits
            cache.put_many([(key(f"doc {i}", query=long_query + str(i)), float(i))])
        stats = cache.stats()
        assert stats.bytes <= budget and stats.max_bytes == budget
        assert stats.size == budget // ENTRY_OVERHEAD and stats.evictions > 0
        return cache

    grown = _traced_growth(fill)
    assert grown <= budget * 1.1, f"cache holds {grown} bytes for a {budget}-byte budget"


def test_entry_cap_and_byte_budget_both_apply_and_zero_bytes_disables() -> None:
    by_entries = ScoreCache(capacity=10, max_bytes=10**9)
    by_entries.put_many((key(str(i)), 1.0) for i in range(100))
    assert by_entries.stats().size == 10
    disabled = ScoreCache(capacity=100, max_bytes=0)
    disabled.put_many([(key("a"), 1.0)])
    assert disabled.get_many([key("a")]) == [None]


def test_keys_are_digests_never_text() -> None:
    assert len(key("d", query="q" * 100_000)) == 16
    assert hashed_key("ab", "c") != hashed_key("a", "bc")
    with pytest.raises(TypeError):
        ByteLRU(1024).put("raw query text", 1.0)  # type: ignore[arg-type]


def test_values_larger_than_the_budget_are_not_stored_and_sizes_count() -> None:
    cache: ByteLRU[str] = ByteLRU(10_000, size_of=len)
    cache.put(hashed_key("big"), "x" * 20_000)
    cache.put(hashed_key("small"), "y" * 100)
    assert cache.get(hashed_key("big")) is None and cache.get(hashed_key("small")) == "y" * 100
    assert cache.stats().bytes == ENTRY_OVERHEAD + 100


def test_stored_template_lookups_are_bounded_for_long_made_up_ids() -> None:
    from opensearchpy import OpenSearch

    from sidecar.search.templates import TemplateInspector
    from tests.conftest import free_port

    budget = 64 * 1024
    # Nothing listens there: every lookup fails and is cached as "does not mention rerank".
    client = OpenSearch(hosts=[f"http://127.0.0.1:{free_port()}"], max_retries=0, timeout=1)

    def fill():
        inspector = TemplateInspector(client, cache_bytes=budget)
        for i in range(150):  # 150 ids of 20 KB: 3 MB of ids, kept whole before
            assert inspector.may_rerank({"id": f"{i}-" + "t" * 20_000}) is False
        assert inspector._sources.stats().bytes <= budget  # noqa: SLF001
        return inspector

    logging.disable(logging.WARNING)  # pytest keeps every captured record (opensearch-py logs each failure)
    try:
        grown = _traced_growth(fill)
    finally:
        logging.disable(logging.NOTSET)
    assert grown <= budget * 1.1 + 64 * 1024  # + the client's own buffers


def test_parsed_request_templates_are_bounded_in_bytes() -> None:
    doc_text._PARSED.clear()  # noqa: SLF001
    line = "{title} " + "w" * 2000
    for i in range(3000):  # ~12 MB of distinct template sources
        doc_text.parse_cached(f"{i}\n{line}\n{{text}} {'z' * 2000}")
    stats = doc_text.parse_cache_stats()
    assert stats.bytes <= doc_text.PARSE_CACHE_BYTES and stats.evictions > 0
    template = doc_text.parse_cached("{title}\n{text}")
    assert doc_text.parse_cached("{title}\n{text}") is template  # a hit returns the parsed object
