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
