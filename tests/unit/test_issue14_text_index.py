"""SQLite text search (issue 14): the narrow index of live memories (migration 15), and the
text search as one query of the namespace's full-text table (migration 16)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engramdb import Memory
from engramdb.filters import Filter
from engramdb.search.query import text_query
from engramdb.store.sqlite import SQLiteStore, migrate, text
from engramdb.store.sqlite.migrations import MIGRATIONS
from engramdb.store.sqlite.text import namespace_token


def test_issue14_text_index_migration_carries_existing_memories_and_reruns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "engram.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=13)  # the schema before the index
    conn.close()
    store = SQLiteStore(path)  # the store itself runs migration 15 on open...
    try:
        mem = Memory(store, embedder=None)
        mem.remember_many([{"content": f"kept note {i}"} for i in range(5)], namespace="a")
        mem.remember_many([{"content": f"kept other {i}"} for i in range(3)], namespace="b")
        gone = mem.remember("kept but invalidated", namespace="a")
        mem.invalidate(gone.id, namespace="a")
    finally:
        store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP INDEX memories_live")  # ...as if the rows predate it
    conn.execute("PRAGMA user_version = 13")
    conn.close()
    store = SQLiteStore(path)
    try:
        with store._read() as c:
            live = c.execute(
                "SELECT namespace, count(*) FROM memories INDEXED BY memories_live "
                "WHERE namespace IN ('a', 'b') AND invalidated_at IS NULL GROUP BY namespace"
            ).fetchall()
        assert live == [("a", 5), ("b", 3)]
        found = store.memory_text_search("a", text_query(["kept"]), Filter(), limit=10)
        assert len(found) == 5
    finally:
        store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[14]:  # re-runnable
        assert isinstance(statement, str)
        conn.execute(statement)
    conn.close()


@pytest.mark.parametrize("own", [True, False])
def test_issue14_fts_text_search_is_one_query_of_the_namespaces_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own: bool
) -> None:
    """Without a filter the search is one FTS5 query of the namespace's table. Its own table:
    the matches are never checked against the memories table (it holds live memories only).
    The shared table: one query per word, naming the namespace's token, so FTS5 walks the
    namespace's matches only."""
    monkeypatch.setattr(text, "OWN_TABLE_AT", 1 if own else 10**9)
    store = SQLiteStore(tmp_path / "engram.db")
    seen: list[str] = []
    try:
        mem = Memory(store, embedder=None)
        mem.remember_many([{"content": f"word {i}"} for i in range(3)])
        mem.remember_many([{"content": f"word elsewhere {i}"} for i in range(5)], namespace="b")
        gone = mem.remember("word but invalidated")
        mem.invalidate(gone.id)
        with store._read() as conn:
            conn.set_trace_callback(seen.append)
        try:
            found = store.memory_text_search("default", text_query(["word"]), Filter(), limit=5)
        finally:
            with store._read() as conn:
                conn.set_trace_callback(None)
        assert len(found) == 3
        searches = [s for s in seen if " MATCH " in s and not s.startswith("-- ")]
        if own:
            assert len(searches) == 1 and "memories" not in searches[0]
        else:  # one query per word, in the namespace's rows
            assert searches == [
                "SELECT rowid, -bm25(memories_fts, 1.0, 0.6, 0.3, 0.3, 0.0) FROM memories_fts "
                f'WHERE memories_fts MATCH \'ns : "{namespace_token("default")}" AND "word"\''
            ]
    finally:
        store.close()


def test_issue14_tag_search_is_driven_by_the_tag_not_the_namespace(tmp_path: Path) -> None:
    """Recall looks every short query up as a tag too: that lookup must seek the tag's
    entries, not walk the namespace's live memories (the narrow index would allow it)."""
    store = SQLiteStore(tmp_path / "engram.db")
    seen: list[str] = []
    try:
        mem = Memory(store, embedder=None)
        mem.remember_many([{"content": f"plain {i}"} for i in range(50)])
        mem.remember_many([{"content": f"tagged {i}", "tags": ["topic"]} for i in range(3)])
        with store._read() as conn:
            conn.set_trace_callback(seen.append)
        try:
            found = store.memory_tag_search("default", "topic", Filter(), limit=10)
        finally:
            with store._read() as conn:
                conn.set_trace_callback(None)
        assert len(found) == 3 and found == sorted(found, reverse=True)
        search = next(s for s in seen if "memory_tags" in s)
        with store._read() as conn:
            plan = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + search)]
        assert plan[0].startswith("SEARCH t USING PRIMARY KEY"), plan
        assert not any("memories_live" in step for step in plan), plan
    finally:
        store.close()
