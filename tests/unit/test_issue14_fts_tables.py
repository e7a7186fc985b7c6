"""One FTS5 table per namespace on SQLite (issue 14, migration 16): BM25 with the namespace's
own statistics, live memories only in the table, the move of an existing index."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from engramdb import Memory
from engramdb.filters import Filter
from engramdb.memory import content_hash
from engramdb.search.query import text_query
from engramdb.store.sqlite import SQLiteStore, migrate


def _bm25(docs: list[list[tuple[str, float]]], sizes: list[int], terms: list[str]) -> list[float]:
    """FTS5's bm25() (k1 = 1.2, b = 0.75) from scratch: ``docs`` as (word, column weight) per
    token, ``sizes`` their token counts over every column."""
    n, avgdl = len(docs), sum(sizes) / len(docs)
    scores = []
    for doc, size in zip(docs, sizes, strict=True):
        score = 0.0
        for term in terms:
            df = sum(any(w == term for w, _ in d) for d in docs)
            idf = max(math.log((n - df + 0.5) / (df + 0.5)), 1e-6)
            f = sum(weight for w, weight in doc if w == term)
            score += idf * f * 2.2 / (f + 1.2 * (1 - 0.75 + 0.75 * size / avgdl))
        scores.append(score)
    return scores


def test_issue14_fts_scores_are_the_namespaces_bm25(tmp_path: Path) -> None:
    """Scores are exactly BM25 over the namespace's live memories: its document count and
    average length (matching or not), tags at weight 0.6; other namespaces and invalidated
    memories count for nothing."""
    contents = [
        "kiwi mango",
        "kiwi kiwi plum fig date lime",
        "mango plum",
        "fig date lime plum fig date lime plum",
        "lime",
    ]
    store = SQLiteStore(tmp_path / "engram.db")
    try:
        mem = Memory(store, embedder=None)
        ids = [r.id for r in mem.remember_many([{"content": c} for c in contents], namespace="a")]
        tagged = mem.remember("plum date", tags=["kiwi"], namespace="a")
        gone = mem.remember("kiwi kiwi kiwi kiwi", namespace="a")
        mem.invalidate(gone.id, namespace="a")
        mem.remember_many([{"content": f"kiwi mango {i} x y z"} for i in range(30)], namespace="b")

        docs = [[(w, 1.0) for w in c.split()] for c in [*contents, "plum date"]]
        docs[-1].append(("kiwi", 0.6))
        sizes = [len(d) for d in docs]
        expected = dict(zip([*ids, tagged.id], _bm25(docs, sizes, ["kiwi", "mango"]), strict=True))
        found = store.memory_text_search("a", text_query(["kiwi", "mango"]), Filter(), limit=10)
        records = store.memory_records("a", [r for r, _ in found])
        got = {records[r].id: score for r, score in found}
        assert set(got) == {k for k, v in expected.items() if v > 0}
        for memory_id, score in got.items():
            assert score == pytest.approx(expected[memory_id], rel=1e-9)
        assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
        # a filter selects among the same scores
        only = store.memory_text_search(
            "a", text_query(["kiwi", "mango"]), Filter(tags=("kiwi",)), limit=10
        )
        assert [(records[r].id, s) for r, s in only] == [(tagged.id, got[tagged.id])]
    finally:
        store.close()


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_issue14_fts_invalidated_memories_leave_the_table_and_come_back(tmp_path: Path) -> None:
    path = tmp_path / "engram.db"
    store = SQLiteStore(path)
    try:
        mem = Memory(store, embedder=None, index_metadata=["place"])
        mem.remember("before", session_id="s", namespace="a")
        kept = mem.remember(
            "a walk by the river",
            metadata={"place": "Lisbon"},
            namespace="a",
            session_id="s",
            tags=["outdoors"],
        )
        mem.remember("after", session_id="s", namespace="a")
        (table,) = _rows(path, "SELECT 'fts_' || id FROM text_tables WHERE namespace = 'a'")[0]
        assert _rows(path, f"SELECT count(*) FROM {table}") == [(3,)]

        mem.invalidate(kept.id, namespace="a")
        assert _rows(path, f"SELECT count(*) FROM {table}") == [(2,)]
        assert _rows(path, f"SELECT count(*) FROM {table} WHERE {table} MATCH 'river'") == [(0,)]
        assert _rows(path, "SELECT meta FROM text_parked") == [("Lisbon",)]
        # changed while invalidated: the parked text follows
        mem.update(kept.id, metadata={"place": "Porto"}, namespace="a")
        mem.restore(kept.id, namespace="a")
        assert _rows(path, "SELECT count(*) FROM text_parked") == [(0,)]
        row = _rows(
            path,
            f"SELECT content, tags, meta, ctx FROM {table} WHERE rowid = "
            f"(SELECT rowid FROM memories WHERE id = '{kept.id}')",
        )
        assert row == [("a walk by the river", "outdoors", "Porto", "before\nafter")]
        assert [h.memory.id for h in mem.recall("porto", mode="text", namespace="a")] == [kept.id]

        mem.invalidate(kept.id, namespace="a")
        mem.forget(kept.id, namespace="a")  # forgotten while invalidated: nothing stays
        assert _rows(path, "SELECT count(*) FROM text_parked") == [(0,)]
        assert _rows(path, f"SELECT count(*) FROM {table}") == [(2,)]
    finally:
        store.close()


def test_issue14_fts_migration_16_splits_the_index_per_namespace(tmp_path: Path) -> None:
    path = tmp_path / "engram.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=15)  # one shared memories_fts
    rows = [
        ("m1", "a", "red kite", None),
        ("m2", "b", "red fox", None),
        ("m3", "a", "red herring", 5),
        ("m4", "a", "blue kite", None),
    ]
    for n, (mid, ns, text, invalidated) in enumerate(rows, start=1):
        conn.execute(
            "INSERT INTO memories (rowid, id, namespace, content, content_hash, tags, metadata, "
            "importance, created_at, updated_at, version, invalidated_at) "
            "VALUES (?, ?, ?, ?, ?, '[]', '{}', 0.5, ?, ?, 1, ?)",
            (n, mid, ns, text, content_hash(text), n, n, invalidated),
        )
        conn.execute(
            "INSERT INTO memories_fts (rowid, content, tags, meta, ctx) VALUES (?, ?, '', ?, '')",
            (n, text, f"meta{n}"),
        )
    conn.execute("INSERT INTO namespace_counts VALUES ('a', 3, 0), ('b', 1, 0)")
    conn.close()

    store = SQLiteStore(path)  # migrates
    try:
        tables = dict(_rows(path, "SELECT namespace, 'fts_' || id FROM text_tables"))
        assert set(tables) == {"a", "b"}
        assert _rows(path, f"SELECT rowid, content, meta FROM {tables['a']} ORDER BY rowid") == [
            (1, "red kite", "meta1"),
            (4, "blue kite", "meta4"),
        ]
        assert _rows(path, f"SELECT rowid, content FROM {tables['b']}") == [(2, "red fox")]
        assert _rows(path, "SELECT * FROM text_parked") == [(3, "meta3")]
        assert _rows(path, "SELECT count(*) FROM memories_fts") == [(0,)]
        found = store.memory_text_search("a", text_query(["red"]), Filter(), limit=10)
        assert [r for r, _ in found] == [1]
        mem = Memory(store, embedder=None)
        mem.restore("m3", namespace="a")
        assert _rows(path, f"SELECT meta FROM {tables['a']} WHERE rowid = 3") == [("meta3",)]
    finally:
        store.close()
    # re-runnable: every step since 13 again, over the new layout
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA user_version = 13")
    conn.close()
    store = SQLiteStore(path)
    try:
        found = store.memory_text_search("a", text_query(["red"]), Filter(), limit=10)
        assert sorted(r for r, _ in found) == [1, 3]
    finally:
        store.close()
