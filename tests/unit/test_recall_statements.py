"""SQL a recall runs on SQLite (issue 14): bounded, whatever the number of candidates."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engramdb import Memory, open_store
from engramdb.search.recall import RecallSettings
from engramdb.store.sqlite import SQLiteStore


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


def test_issue14_recall_statements_do_not_grow_with_candidates(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    assert isinstance(store, SQLiteStore)
    # the neighbour lane on (off by default): its adjacency must be one statement too
    mem = Memory(store, embedder=None, settings=RecallSettings(neighbor_weight=0.2))
    for namespace, matching in (("few", 3), ("many", 150)):
        mem.remember_many(
            [
                {
                    "content": f"turn {i} about {'gardening' if i % 2 == 0 else 'the weather'}",
                    "session_id": f"s{i // 20}",
                    "user_id": "ann" if i % 3 else "bob",
                }
                for i in range(matching * 2)
            ],
            namespace=namespace,
        )
    counts = {}
    for namespace in ("few", "many"):
        mem.recall("gardening", namespace=namespace, mode="text")  # warm the statistics
        with statements(store) as seen:
            hits = mem.recall("gardening", namespace=namespace, mode="text", limit=10)
        assert len(hits) == 10 if namespace == "many" else len(hits) >= 3
        # neighbours (and their users) of every candidate: one statement
        assert sum("p.session_id = m.session_id" in s for s in seen) == 1
        # (not FTS5's own statements, "-- " nested ones: bm25() reads each match's size)
        counts[namespace] = sum(not s.startswith("-- ") for s in seen)
    assert counts["many"] == counts["few"]
