"""Each namespace's full-text index: an FTS5 table of its own (migration 16).

FTS5's bm25() weighs terms by statistics of the whole table it searches. With one table per
namespace those statistics are exactly the namespace's, so the text search is one plain FTS5
query and no score depends on another tenant's documents. ``text_tables`` maps a namespace to
its table's number; the table (``fts_<number>``) is made by the first write to the namespace.
Numbers are never reused, so a name, once read, names the same namespace's table for good.

A table holds the namespace's live memories only: invalidating a memory takes its row out (so
a search needs no check of each match, and the statistics are those of what recall can find)
and keeps its indexed metadata text in ``text_parked`` until it is restored or deleted (the
rest of the row is made again from the memory).
"""

from __future__ import annotations

import sqlite3

TEXT_COLUMNS = ("content", "tags", "meta", "ctx")
"""The indexed columns: the memory's text, its tags, the indexed metadata values, and the text
of the memories around it in its session."""

TOKENIZE = "porter unicode61 remove_diacritics 2"

REGISTRY = """CREATE TABLE IF NOT EXISTS text_tables (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL UNIQUE
)"""
PARKED = """CREATE TABLE IF NOT EXISTS text_parked (
    memory_rowid INTEGER PRIMARY KEY,
    meta         TEXT NOT NULL
)"""


def text_table_name(number: int) -> str:
    """A table name made only of a fixed prefix and an integer: safe to put in SQL."""
    return f"fts_{int(number)}"


def find_text_table(conn: sqlite3.Connection, namespace: str) -> str | None:
    """The namespace's full-text table, or None before its first memory."""
    row = conn.execute("SELECT id FROM text_tables WHERE namespace = ?", (namespace,)).fetchone()
    return None if row is None else text_table_name(row[0])


def ensure_text_table(conn: sqlite3.Connection, namespace: str) -> str:
    """The namespace's full-text table, made now if it has none (in the caller's write
    transaction: a rollback takes the table back too)."""
    found = find_text_table(conn, namespace)
    if found is not None:
        return found
    (number,) = conn.execute(
        "INSERT INTO text_tables (namespace) VALUES (?) RETURNING id", (namespace,)
    ).fetchone()
    table = text_table_name(number)
    conn.execute(
        f"CREATE VIRTUAL TABLE {table} USING fts5({', '.join(TEXT_COLUMNS)}, "
        f"tokenize = '{TOKENIZE}')"
    )
    return table


def term_vocabulary(conn: sqlite3.Connection, table: str) -> str:
    """A per-connection fts5vocab 'row' table over ``table`` (each term's document count):
    temporary, so making one changes no schema other connections see."""
    vocab = f"temp.{table}_terms"
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {vocab} USING fts5vocab(main, {table}, row)")
    return vocab


def park_text(conn: sqlite3.Connection, table: str | None, rowid: int) -> None:
    """Take an invalidated memory's row out of its namespace's ``table``, keeping its indexed
    metadata text."""
    if table is None:
        return
    conn.execute(
        f"INSERT OR REPLACE INTO text_parked (memory_rowid, meta) SELECT rowid, meta FROM {table} "
        "WHERE rowid = ?",
        (rowid,),
    )
    conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))


def unpark_text(conn: sqlite3.Connection, table: str, rowid: int) -> None:
    """Index a restored memory again in ``table`` (its context column empty: the caller
    refreshes it)."""
    import orjson

    row = conn.execute(
        "SELECT m.content, m.tags, coalesce(p.meta, '') FROM memories m LEFT JOIN text_parked p "
        "ON p.memory_rowid = m.rowid WHERE m.rowid = ?",
        (rowid,),
    ).fetchone()
    conn.execute("DELETE FROM text_parked WHERE memory_rowid = ?", (rowid,))
    if row is not None:
        conn.execute(
            f"INSERT OR REPLACE INTO {table} (rowid, content, tags, meta, ctx) "
            "VALUES (?, ?, ?, ?, '')",
            (rowid, row[0], " ".join(orjson.loads(row[1])), row[2]),
        )


def live_documents(conn: sqlite3.Connection, table: str) -> int:
    """The rows of ``table``, as bm25() counts them: the first varint of FTS5's "averages"
    record (row 1 of its data table), which every write keeps current."""
    row = conn.execute(f"SELECT block FROM {table}_data WHERE id = 1").fetchone()
    value = 0
    for used, byte in enumerate(bytes(row[0]) if row else b""):
        if used == 8:  # the ninth byte of a SQLite varint carries 8 bits
            return (value << 8) | byte
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return value
