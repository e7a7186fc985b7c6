"""Forget on PostgreSQL (issue 10, item 10): a DELETE leaves a dead tuple whose bytes stay in
the table file until the page is rewritten; plain VACUUM only marks the space reusable.
VACUUM FULL rewrites the tables and their indexes, after which no file of the schema's
relations holds the forgotten text. README "Forget means gone" documents this."""

from __future__ import annotations

import secrets
from pathlib import Path

import psycopg

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.store.postgres import PostgresStore
from tests.pg_server import PgServer

TABLES = ("memories", "memory_history", "memory_tags", "memory_terms", "triples")


def _relation_bytes(conn: psycopg.Connection[tuple[object, ...]], data: Path) -> bytes:
    """Every data file of every table, index and TOAST relation of the current schema."""
    rows = conn.execute(
        "SELECT pg_relation_filepath(c.oid) FROM pg_class c "
        "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'i', 't') "
        "UNION SELECT pg_relation_filepath(t.oid) FROM pg_class c "
        "JOIN pg_class t ON t.oid = c.reltoastrelid "
        "WHERE c.relnamespace = current_schema()::regnamespace "
        "UNION SELECT pg_relation_filepath(i.indexrelid) FROM pg_class c "
        "JOIN pg_index i ON i.indrelid = c.reltoastrelid "
        "WHERE c.relnamespace = current_schema()::regnamespace"
    ).fetchall()
    out = []
    for (path,) in rows:
        if path is None:
            continue
        base = data / str(path)
        out += [p.read_bytes() for p in sorted(base.parent.glob(base.name + "*"))]
    return b"".join(out)


def _secret(label: str) -> str:
    return f"qx{label}{secrets.token_hex(6)}"


def test_item_10_vacuum_full_leaves_no_forgotten_bytes_in_postgres(pg_server: PgServer) -> None:
    url = pg_server.new_schema()
    store = PostgresStore(url)
    mem = Memory(store, embedder=HashingEmbedder(64))
    kept, body, old, tag, fact = (_secret(x) for x in "kbotf")
    before = mem.remember(f"the day before, {kept} was mentioned", session_id="s")
    gone = mem.remember(f"my bank pin is {old}", session_id="s", tags=[tag])
    mem.update(gone.id, content=f"my bank pin is {body}")
    mem.remember("the day after, nothing special", session_id="s")
    learned = mem.learn("Ada", "password_is", fact)
    mem.forget(gone.id)
    mem.forget_fact(learned.id)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # flush shared buffers: what the files hold now
        dead = _relation_bytes(conn, pg_server.data)
        assert kept.encode() in dead  # the scan sees live rows: the check can fail
        # a deleted row is a dead tuple: its bytes are still in the table file
        assert any(s.encode() in dead for s in (body, old, fact))
        for table in TABLES:
            conn.execute(f"VACUUM FULL {table}")
        conn.execute("CHECKPOINT")
        on_disk = _relation_bytes(conn, pg_server.data)
        assert kept.encode() in on_disk
        for s in (body, old, tag, fact):
            assert s.encode() not in on_disk, s
        # and no live or dead tuple of the schema's tables keeps the text
        for table in TABLES:
            (found,) = conn.execute(
                f"SELECT count(*) FROM {table} t WHERE t::text LIKE %s OR t::text LIKE %s",
                (f"%{body}%", f"%{fact}%"),
            ).fetchone()  # type: ignore[misc]
            assert found == 0, table
    assert kept in mem.get(before.id).content
    store.close()


def test_issue11_vacuum_full_leaves_no_forgotten_event_bytes_in_postgres(
    pg_server: PgServer,
) -> None:
    from engramdb.store.base import NewMemoryEvent

    url = pg_server.new_schema()
    store = PostgresStore(url)
    mem = Memory(store, embedder=None)
    kept, reason, why = (_secret(x) for x in "krw")
    other = mem.remember("a memory that stays")
    gone = mem.remember("a memory the manager wrote")
    mem.record_events(
        [
            NewMemoryEvent(gone.id, "add", reason=f"the user said {reason}"),
            NewMemoryEvent(other.id, "add", reason=f"kept because {kept}"),
        ]
    )
    mem.invalidate(gone.id, reason=f"contradicted by {why}")
    mem.forget(gone.id)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        assert reason.encode() in _relation_bytes(conn, pg_server.data)  # a dead tuple
        for table in ("memories", "memory_events"):
            conn.execute(f"VACUUM FULL {table}")
        conn.execute("CHECKPOINT")
        on_disk = _relation_bytes(conn, pg_server.data)
        assert kept.encode() in on_disk  # the scan sees live rows: the check can fail
        for s in (reason, why):
            assert s.encode() not in on_disk, s
    store.close()
