"""SQLite full-text statistics cached per namespace (issue 14): recomputed only after a write
to the namespace (any process), and scores identical to computing them afresh."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from engramdb import Memory, open_store
from engramdb.filters import Filter
from engramdb.search.query import index_stem, text_query
from engramdb.store.base import TextQuery
from engramdb.store.sqlite import SQLiteStore, text

WORDS = "apple banana pear cinnamon sweet story river stone music garden light winter".split()
QUERIES = ["apple banana", "sweet pear story", "winter light", "music", "stone river garden"]
FILTERS = [Filter.parse(None), Filter.parse({"user_id": "ann"}), Filter.parse({"tags": ["x"]})]


def fill(mem: Memory, namespace: str, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    entries = [
        {
            "content": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + f" {i}",
            "user_id": rng.choice(["ann", "bob"]),
            "session_id": f"s{i % 4}",
            "tags": ["x"] if i % 3 == 0 else [],
        }
        for i in range(n)
    ]
    return [r.id for r in mem.remember_many(entries, namespace=namespace)]


def answers(store: Any, namespace: str) -> list[Any]:
    """Every statistic and score recall reads, for each query and filter."""
    out: list[Any] = []
    for query in QUERIES:
        stems = [index_stem(w) for w in query.split()]
        out.append(store.memory_term_docs(namespace, stems, at_most=20))
        out.append(store.memory_term_docs(namespace, stems))
        for flt in FILTERS:
            out.append(
                store.memory_text_search(namespace, text_query(query.split()), flt, limit=50)
            )
    return out


def fresh(path: Path, namespace: str) -> list[Any]:
    store = open_store(path)  # a new store object: nothing cached
    try:
        return answers(store, namespace)
    finally:
        store.close()


def test_issue14_stats_cached_scores_match_uncached_after_writes_and_deletes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data"
    store = open_store(path)
    other_process = open_store(path)  # another store object: writes it makes are not ours
    mem, other = Memory(store, embedder=None), Memory(other_process, embedder=None)
    try:
        fill(mem, "a", 60, seed=1)
        fill(mem, "b", 80, seed=2)
        # the bob-forget below leaves ann's memories
        ids = [r.id for r in mem.list(namespace="a", filters={"user_id": "ann"}, limit=20).items]
        first = answers(store, "a")
        assert any(first[2::5])  # the queries find something
        assert answers(store, "a") == first == fresh(path, "a")  # cached, then the same

        changes = [
            lambda: fill(mem, "a", 7, seed=3),  # inserts (and neighbours' context)
            lambda: mem.update(ids[0], content="apple apple apple winter", namespace="a"),
            lambda: mem.update(ids[1], tags=["x", "y"], namespace="a"),
            lambda: mem.invalidate(ids[2], reason="wrong", namespace="a"),
            lambda: mem.forget(ids[3], namespace="a"),
            lambda: mem.forget(filters={"user_id": "bob"}, namespace="a"),
            lambda: other.remember("banana pear story winter", namespace="a"),
            lambda: other.forget(ids[4], namespace="a"),
            lambda: other.update(ids[5], content="music music stone", namespace="a"),
        ]
        for change in changes:
            before = answers(store, "a")
            change()
            after = answers(store, "a")
            assert after == fresh(path, "a")
            assert after != before  # every change moved some statistic or score
        # another namespace's writes change nothing here, cached or not
        fill(other, "b", 30, seed=4)
        assert answers(store, "a") == fresh(path, "a")
    finally:
        other_process.close()
        store.close()


@contextmanager
def statements(store: SQLiteStore) -> Iterator[list[str]]:
    """The SQL this thread's connection runs meanwhile."""
    conn: sqlite3.Connection = store._conn()  # type: ignore[attr-defined]
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


@pytest.mark.parametrize("own", [True, False])
def test_issue14_stats_are_recomputed_only_after_a_write_to_the_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own: bool
) -> None:
    """In a table of its own or in the shared table (issue 14, migration 16)."""
    monkeypatch.setattr(text, "OWN_TABLE_AT", 1 if own else 10**9)
    store = open_store(tmp_path / "data")
    assert isinstance(store, SQLiteStore)
    mem = Memory(store, embedder=None)
    try:
        fill(mem, "a", 40, seed=1)
        fill(mem, "b", 40, seed=2)
        stems = [index_stem(w) for w in ("apple", "banana", "pear")]

        def counting_queries() -> list[str]:
            with statements(store) as seen:
                store.memory_term_docs("a", stems, at_most=20)
                store.memory_text_search(
                    "a", TextQuery((), tuple(stems)), Filter.parse(None), limit=10
                )
            # the namespace's document counts: its vocabulary and its row count (own table),
            # its rows' sizes and the counts of its matches (shared table)
            marks = ("_terms", "_data WHERE id = 1", "_docsize", "count(*) FROM memories_fts")
            return [s for s in seen if any(mark in s for mark in marks)]

        assert counting_queries()  # the first time: counted
        assert counting_queries() == []  # unchanged: nothing counted again
        fill(mem, "b", 5, seed=3)
        assert counting_queries() == []  # another namespace changed, not this one
        fill(mem, "a", 1, seed=4)
        assert counting_queries()  # this one changed: counted afresh
    finally:
        store.close()


def test_issue14_stats_cache_is_bounded(tmp_path: Path, monkeypatch: Any) -> None:
    from engramdb.store.sqlite import memories

    monkeypatch.setattr(memories, "TEXT_STATS_NAMESPACES", 2)
    store = open_store(tmp_path / "data")
    mem = Memory(store, embedder=None)
    try:
        for n, ns in enumerate(["a", "b", "c"]):
            fill(mem, ns, 20, seed=n)
        expected = {ns: answers(store, ns) for ns in ("a", "b", "c")}
        cache = store.__dict__["_text_stats_cache"]
        assert list(cache) == ["b", "c"]  # the least recently used went first
        monkeypatch.setattr(memories, "TEXT_STATS_ENTRIES", 1)
        assert answers(store, "a") == expected["a"]
        assert list(cache) == ["a"]  # over the entry budget: only the namespace in use
    finally:
        store.close()


def test_issue14_own_table_counts_are_the_exact_counts_capped_whatever_came_before(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """An own table's term counts under any sequence of caps (each kept for the next call)
    equal the exact counts capped at ``at_most + 1``."""
    monkeypatch.setattr(text, "OWN_TABLE_AT", 1)
    path = tmp_path / "data"
    store = open_store(path)
    fill(Memory(store, embedder=None), "a", 150, seed=5)
    stems = [index_stem(w) for w in WORDS] + ["absentword"]
    documents, exact = store.memory_term_docs("a", stems)  # no cap: exact
    store.close()
    assert documents == 150 and max(exact.values()) > 40  # common words, well past the caps
    for caps in ([5, 60, 3, None, 200], [None, 5], [40, 40, 80]):
        fresh_store = open_store(path)  # nothing cached
        try:
            for cap in caps:
                got = fresh_store.memory_term_docs("a", stems, at_most=cap)
                want = exact if cap is None else {t: min(n, cap + 1) for t, n in exact.items()}
                assert got == (150, want), (caps, cap)
        finally:
            fresh_store.close()
