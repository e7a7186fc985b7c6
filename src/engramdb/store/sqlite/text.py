"""The full-text index: one shared FTS5 table for small namespaces, one table of its own for
each large one (migration 16).

FTS5's bm25() weighs terms by statistics of the whole table it searches, so over a table that
holds several tenants it would tell one tenant how common a word is in the others'. A large
namespace (``OWN_TABLE_AT`` live memories or more) therefore has an FTS5 table of its own
(``fts_<number>``, registered in ``text_tables``): bm25() there reads the namespace's
statistics only, and the text search is one FTS5 query. Small namespaces share
``memories_fts``, whose ``ns`` column holds a token naming the namespace: a search runs one
``ns : <token> AND "<word>"`` query per word, so FTS5 walks the namespace's matches only, reads
each word's frequency in each match back from that query's bm25(), and computes BM25 in Python
from the namespace's own statistics (see ``SQLiteStore.memory_text_search``): the same formula
and column weights as bm25(). Both layouts give a namespace the same scores (to 1e-9).

Why not a table for every namespace: each FTS5 table is six schema entries. With thousands of
small tenants every new connection parses them all, and each new table bumps the schema cookie
so every other connection parses them again (measured with 1,000 namespaces of 50 memories and
one of 20,000: a new connection's first query 259 ms with a table each, 1.2 ms in this layout;
another connection's next query after the first write to a new namespace: 411 ms against
0.03 ms).

A namespace is promoted, in the write transaction whose rows make it reach ``OWN_TABLE_AT``
(insert, import, restore): its rows move to its own table. It is never demoted (a namespace
that shrank keeps its table: no second move back and forth around the threshold). Numbers are
never reused, so a registered name names the same namespace's table for good.

Either table holds the namespace's live memories only: invalidating a memory takes its row out
(so a search needs no check of each match, and the statistics are those of what recall can
find) and keeps its indexed metadata text in ``text_parked`` until it is restored or deleted
(the rest of the row is made again from the memory).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence

import orjson

TEXT_COLUMNS = ("content", "tags", "meta", "ctx")
"""The indexed columns: the memory's text, its tags, the indexed metadata values, and the text
of the memories around it in its session."""

TOKENIZE = "porter unicode61 remove_diacritics 2"

SHARED = "memories_fts"
"""The table of every namespace below ``OWN_TABLE_AT`` live memories."""

OWN_TABLE_AT = 1_000
"""Live memories at which a namespace gets a table of its own. Measured (``python -m
bench.scale --layout``, results/scale_layout.md; text recall p50 of one namespace among 200
small tenants, 2 cores): its own table is faster at every size (600 memories: 2.5 against
6.2 ms in the shared table; 1,000: 3.1 against 8.0 ms; 2,000: 3.8 against 11.3 ms), while
each own table adds six schema entries that every new connection parses, and creating one makes
every other connection parse the schema again (1,000 small tenants with a table each: a new
connection's first query 259 ms against 1.2 ms in the shared table). 1,000 keeps the shared
table's cost within about 5 ms and 2.6x of the own table's, and a store at most one own
table per 1,000 memories."""

SHARED_TABLE = f"""CREATE VIRTUAL TABLE IF NOT EXISTS {SHARED} USING fts5(
    {", ".join(TEXT_COLUMNS)}, ns, tokenize = '{TOKENIZE}')"""
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


def namespace_token(namespace: str) -> str:
    """The word that names ``namespace`` in the shared table's ``ns`` column: a hash, so it is
    one plain token whatever the name (a collision only adds candidates, which the search
    checks against the namespace)."""
    digest = hashlib.blake2b(namespace.encode("utf-8", "surrogatepass"), digest_size=8)
    return "n" + digest.hexdigest()


def namespace_match(namespace: str, terms: str = "") -> str:
    """A MATCH expression for the ``terms`` expression in the namespace's shared rows (the
    namespace's rows only without terms). (A term equal to a token would match the token's
    column too: such a row weighs nothing there.)"""
    only = f'ns : "{namespace_token(namespace)}"'
    return f"{only} AND ({terms})" if terms else only


def own_text_table(conn: sqlite3.Connection, namespace: str) -> str | None:
    """The namespace's own full-text table, or None while it is in the shared one."""
    row = conn.execute("SELECT id FROM text_tables WHERE namespace = ?", (namespace,)).fetchone()
    return None if row is None else text_table_name(row[0])


def find_text_table(conn: sqlite3.Connection, namespace: str) -> str:
    """The table holding the namespace's text: its own, or the shared one."""
    return own_text_table(conn, namespace) or SHARED


def ensure_text_table(conn: sqlite3.Connection, namespace: str) -> str:
    """The namespace's own full-text table, made now if it has none (in the caller's write
    transaction: a rollback takes the table back too)."""
    found = own_text_table(conn, namespace)
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


def index_text(
    conn: sqlite3.Connection,
    table: str,
    namespace: str,
    rows: Sequence[tuple[int, str, str, str]],
    *,
    replace: bool = False,
) -> None:
    """Index ``(rowid, content, tags, meta)`` rows of ``namespace`` in ``table`` (context
    empty: the caller refreshes it); in the shared table with the namespace's token."""
    if not rows:
        return
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    if table == SHARED:
        token = namespace_token(namespace)
        conn.executemany(
            f"{verb} INTO {SHARED} (rowid, content, tags, meta, ctx, ns) "
            "VALUES (?, ?, ?, ?, '', ?)",
            [(*row, token) for row in rows],
        )
    else:
        conn.executemany(
            f"{verb} INTO {table} (rowid, content, tags, meta, ctx) VALUES (?, ?, ?, ?, '')",
            rows,
        )


def promote(conn: sqlite3.Connection, namespace: str) -> str:
    """Move the namespace's rows from the shared table to a table of its own (in the caller's
    write transaction); its own table."""
    table = ensure_text_table(conn, namespace)
    columns = ", ".join(TEXT_COLUMNS)
    moved = ", ".join(f"f.{c}" for c in TEXT_COLUMNS)
    match = f'ns : "{namespace_token(namespace)}"'
    conn.execute(
        f"INSERT INTO {table} (rowid, {columns}) SELECT f.rowid, {moved} FROM {SHARED} f "
        f"JOIN memories m ON m.rowid = f.rowid WHERE {SHARED} MATCH ? AND m.namespace = ? "
        "ORDER BY f.rowid",
        (match, namespace),
    )
    conn.execute(f"DELETE FROM {SHARED} WHERE rowid IN (SELECT rowid FROM {table})")
    return table


def park_text(conn: sqlite3.Connection, table: str, rowid: int) -> None:
    """Take an invalidated memory's row out of its namespace's ``table``, keeping its indexed
    metadata text."""
    conn.execute(
        f"INSERT OR REPLACE INTO text_parked (memory_rowid, meta) SELECT rowid, meta FROM {table} "
        "WHERE rowid = ?",
        (rowid,),
    )
    conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))


def unpark_text(conn: sqlite3.Connection, table: str, namespace: str, rowid: int) -> None:
    """Index a restored memory again in ``table`` (its context column empty: the caller
    refreshes it)."""
    row = conn.execute(
        "SELECT m.content, m.tags, coalesce(p.meta, '') FROM memories m LEFT JOIN text_parked p "
        "ON p.memory_rowid = m.rowid WHERE m.rowid = ?",
        (rowid,),
    ).fetchone()
    conn.execute("DELETE FROM text_parked WHERE memory_rowid = ?", (rowid,))
    if row is not None:
        tags = " ".join(orjson.loads(row[1]))
        index_text(conn, table, namespace, [(rowid, row[0], tags, row[2])], replace=True)


def text_sizes(blob: bytes) -> int:
    """Tokens in a document's indexed columns (``TEXT_COLUMNS``, not the shared table's
    ``ns``): the sum of the first of FTS5's per-column sizes (SQLite varints)."""
    total, value, used, columns = 0, 0, 0, 0
    for byte in blob:
        used += 1
        if used == 9:  # the ninth byte of a varint carries 8 bits
            total, value, used, columns = total + ((value << 8) | byte), 0, 0, columns + 1
        elif byte & 0x80:
            value = (value << 7) | (byte & 0x7F)
            continue
        else:
            total, value, used, columns = total + ((value << 7) | byte), 0, 0, columns + 1
        if columns == len(TEXT_COLUMNS):
            break
    return total


def term_vocabulary(conn: sqlite3.Connection, table: str) -> str:
    """A per-connection fts5vocab 'row' table over ``table`` (each term's document count):
    temporary, so making one changes no schema other connections see."""
    vocab = f"temp.{table}_terms"
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {vocab} USING fts5vocab(main, {table}, row)")
    return vocab


def instance_vocabulary(conn: sqlite3.Connection) -> str:
    """A per-connection fts5vocab 'instance' table over the shared table (term, doc, column,
    offset of every token)."""
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{SHARED}_instance "
        f"USING fts5vocab(main, {SHARED}, instance)"
    )
    return f"temp.{SHARED}_instance"


def table_totals(conn: sqlite3.Connection, table: str) -> tuple[int, int]:
    """The rows of ``table`` and their tokens over every column, as bm25() reads them: FTS5's
    "averages" record (row 1 of its data table: varints, the row count then each column's
    token count), which every write keeps current."""
    row = conn.execute(f"SELECT block FROM {table}_data WHERE id = 1").fetchone()
    values: list[int] = []
    value, used = 0, 0
    for byte in bytes(row[0]) if row else b"":
        used += 1
        if used == 9:  # the ninth byte of a SQLite varint carries 8 bits
            values.append((value << 8) | byte)
            value, used = 0, 0
        elif byte & 0x80:
            value = (value << 7) | (byte & 0x7F)
        else:
            values.append((value << 7) | byte)
            value, used = 0, 0
    return (values[0], sum(values[1:])) if values else (0, 0)


def live_documents(conn: sqlite3.Connection, table: str) -> int:
    """The rows of ``table``, as bm25() counts them."""
    return table_totals(conn, table)[0]
