"""Issue 10, item 12: export/import keeps everything and is idempotent, across backends.

SQLite → file → PostgreSQL → file → SQLite. The two files must be byte-identical, and every
table that export covers must hold the same content in all three databases. Compared, per
table (values store-assigned in each database are left out, as noted):

- ``sessions``: namespace, id, created/updated times, item count (``next_seq`` is a sequence).
- ``session_items``: each session's items in order, with their text and time (``seq`` values
  are store-assigned; the order they give is compared).
- ``memories``: every column except ``rowid`` and the embedding sequence, with the order of
  insertion (memories listed by rowid).
- the text index: content, tags, metadata text and session context of each memory (the
  columns of SQLite's FTS5 tables, shared and per namespace; PostgreSQL's ``tag_text``/
  ``search_text``/``context_text``).
- ``memory_tags`` (by memory id, not rowid), ``memory_users``, ``memory_history``.
- ``triples``: every column except ``rowid``, in insertion order.

Not exported, by design: API keys, usage counters, idempotency records and leases (server
bookkeeping; ``engramdb migrate`` copies keys), and ``vector_removals`` (a change log).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engramdb import Memory, Session
from engramdb.errors import ConflictError
from engramdb.store import Store, open_store
from tests.pg_server import PgServer
from tests.postgres.test_transfer import populate


def dump_sqlite(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:

        def rows(query: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in conn.execute(query)]

        return _normalise(
            sessions=rows(
                "SELECT namespace, session_id, created_at, updated_at, item_count FROM sessions"
            ),
            items=rows(
                "SELECT namespace, session_id, data, created_at FROM session_items "
                "ORDER BY namespace, session_id, seq"
            ),
            memories=rows(
                "SELECT id, namespace, user_id, agent_id, session_id, content, content_hash, "
                "tags, metadata, importance, occurred_at, created_at, updated_at, version "
                "FROM memories ORDER BY rowid"
            ),
            vectors=rows(
                "SELECT m.id, v.chunk, v.model, v.vector, v.span_start, v.span_end "
                "FROM memory_vectors v JOIN memories m ON m.rowid = v.memory_rowid "
                "ORDER BY m.rowid, v.chunk"
            ),
            text=[  # the shared full-text table, and each large namespace's own
                row
                for table in [
                    "memories_fts",
                    *(f"fts_{n}" for (n,) in rows("SELECT id FROM text_tables")),
                ]
                for row in rows(
                    "SELECT m.id, f.content, f.tags, f.meta, f.ctx FROM memories m "
                    f"JOIN {table} f ON f.rowid = m.rowid"
                )
            ],
            tags=rows(
                "SELECT t.namespace, lower(t.tag), m.id FROM memory_tags t "
                "JOIN memories m ON m.rowid = t.memory_rowid"
            ),
            users=rows("SELECT namespace, user_id FROM memory_users"),
            history=rows("SELECT * FROM memory_history"),
            triples=rows(
                "SELECT id, namespace, subject, predicate, object, confidence, source, "
                "valid_from, valid_to, created_at, memory_id FROM triples ORDER BY rowid"
            ),
        )
    finally:
        conn.close()


def dump_postgres(store: Store) -> dict[str, Any]:
    def work(conn: Any) -> dict[str, Any]:
        def rows(query: str) -> list[tuple[Any, ...]]:
            with conn.cursor(binary=True) as cur:
                return [tuple(r) for r in cur.execute(query).fetchall()]

        return _normalise(
            sessions=rows(
                "SELECT namespace, session_id, created_at, updated_at, item_count FROM sessions"
            ),
            items=rows(
                "SELECT namespace, session_id, data, created_at FROM session_items "
                "ORDER BY namespace, session_id, seq"
            ),
            memories=rows(
                "SELECT id, namespace, user_id, agent_id, session_id, content, content_hash, "
                "tags, metadata, importance, occurred_at, created_at, updated_at, version "
                "FROM memories ORDER BY rowid"
            ),
            vectors=rows(
                "SELECT m.id, v.chunk, v.model, v.embedding, v.span_start, v.span_end "
                "FROM memory_vectors v JOIN memories m ON m.rowid = v.memory_rowid "
                "ORDER BY m.rowid, v.chunk"
            ),
            text=rows("SELECT id, content, tag_text, search_text, context_text FROM memories"),
            tags=rows(
                "SELECT t.namespace, t.tag, m.id FROM memory_tags t "
                "JOIN memories m ON m.rowid = t.memory_rowid"
            ),
            users=rows("SELECT namespace, user_id FROM memory_users"),
            history=rows("SELECT * FROM memory_history"),
            triples=rows(
                "SELECT id, namespace, subject, predicate, object, confidence, source, "
                "valid_from, valid_to, created_at, memory_id FROM triples ORDER BY rowid"
            ),
        )

    return store.read(work)  # type: ignore[attr-defined,no-any-return]


def _normalise(**tables: list[tuple[Any, ...]]) -> dict[str, Any]:
    def value(v: Any) -> Any:
        if isinstance(v, memoryview | bytearray):
            return bytes(v)
        return int(v) if isinstance(v, bool) else v

    out: dict[str, Any] = {}
    for name, rows in tables.items():
        clean = [tuple(value(v) for v in r) for r in rows]
        # order matters where the store's order is what a reader sees; elsewhere it is a set
        out[name] = clean if name in ("items", "memories", "triples") else sorted(clean, key=repr)
    return out


def test_item_12_round_trip_sqlite_file_postgres_file_sqlite(
    tmp_path: Path, pg_server: PgServer
) -> None:
    populate(tmp_path / "source")
    source = Memory(tmp_path / "source", embedder=None)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    counts = source.export_file(first, all_namespaces=True, with_vectors=True)
    assert counts["memory"] == 44 and counts["triple"] == 2 and counts["session"] == 3

    pg = Memory(pg_server.new_schema(), embedder=None)
    report = pg.import_file(first, all_namespaces=True)
    assert report.created["memories"] == 44 and report.created["history"] == 1
    assert report.created["triples"] == 2 and report.created["session_items"] == 32
    assert sorted(report.namespaces) == ["default", "tenant-b"]
    pg.export_file(second, all_namespaces=True, with_vectors=True)
    assert first.read_bytes() == second.read_bytes()

    copy = Memory(tmp_path / "copy", embedder=None)
    copy.import_file(second, all_namespaces=True)
    original = dump_sqlite(tmp_path / "source" / "engram.db")
    assert original["memories"] and original["items"] and original["history"]
    assert original["text"] and original["tags"] and original["triples"]
    assert dump_postgres(pg.store) == original
    assert dump_sqlite(tmp_path / "copy" / "engram.db") == original

    # the copy behaves like the original: items, history, facts as of a past time, recall
    for mem in (pg, copy):
        assert (
            Session("chat", mem.store, namespace="tenant-b").get_items()
            == Session("chat", source.store, namespace="tenant-b").get_items()
        )
        assert mem.facts("Ada", include_history=True) == source.facts("Ada", include_history=True)
    source.close()
    pg.close()
    copy.close()


def test_item_12_importing_twice_changes_nothing(tmp_path: Path, pg_server: PgServer) -> None:
    populate(tmp_path / "source")
    source = Memory(tmp_path / "source", embedder=None)
    dump = tmp_path / "dump.jsonl"
    source.export_file(dump, all_namespaces=True, with_vectors=True)
    pg = Memory(pg_server.new_schema(), embedder=None)
    pg.import_file(dump, all_namespaces=True)
    before = dump_postgres(pg.store)
    again = pg.import_file(dump, all_namespaces=True)
    assert sum(again.created.values()) == 0
    assert again.skipped["memories"] == 44 and again.skipped["session_items"] == 32
    assert dump_postgres(pg.store) == before

    # a session cut short by an interrupted import is completed, not duplicated
    Session("chat", pg.store, namespace="tenant-b").pop_item()
    third = pg.import_file(dump, all_namespaces=True)
    assert third.created["session_items"] == 1
    assert dump_postgres(pg.store)["items"] == before["items"]

    # a session holding other items is a conflict, named, and nothing of it is appended
    Session("chat", pg.store).clear_session()
    Session("chat", pg.store).add_items([{"other": True}])
    with pytest.raises(ConflictError, match=r"dump.jsonl:\d+: session 'chat'"):
        pg.import_file(dump, all_namespaces=True)
    assert Session("chat", pg.store).get_items() == [{"other": True}]
    source.close()
    pg.close()


def test_item_12_per_namespace_export_into_another_namespace(
    tmp_path: Path, pg_server: PgServer
) -> None:
    populate(tmp_path / "source")
    source = Memory(tmp_path / "source", embedder=None)
    dump = tmp_path / "b.jsonl"
    source.export_file(dump, namespace="tenant-b")
    store = open_store(pg_server.new_schema())
    pg = Memory(store, embedder=None)
    report = pg.import_file(dump, namespace="restored")
    assert report.namespaces == ["restored"]
    assert pg.stats(namespace="restored").memories == 1
    assert (
        Session("chat", store, namespace="restored").get_items()
        == Session("chat", source.store, namespace="tenant-b").get_items()
    )
    assert pg.stats().memories == 0  # nothing else was touched
    source.close()
    pg.close()
