"""Forward-only schema migrations for the SQLite store.

``MIGRATIONS[i]`` upgrades a database from version ``i`` to ``i + 1``; the version lives in
``PRAGMA user_version``. Released migrations are never edited: add a new one instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ...errors import SchemaVersionError
from . import text as text_layout
from .text import (
    PARKED,
    REGISTRY,
    SHARED,
    SHARED_TABLE,
    TEXT_COLUMNS,
    ensure_text_table,
    namespace_token,
    own_text_table,
)

Step = str | Callable[[sqlite3.Connection], None]
"""A statement, or a function for what SQL cannot say conditionally (adding a column)."""


def add_column(table: str, column: str, declaration: str) -> Callable[[sqlite3.Connection], None]:
    """A step adding a column unless the table has it already (a step may meet a schema that
    a newer engramdb wrote and an older version number claims: it must not fail there)."""

    def step(conn: sqlite3.Connection) -> None:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    return step


MIGRATIONS: list[list[Step]] = [
    # 1: sessions and their items. A session's items are clustered by (namespace, session_id,
    # seq), so reading the last N or popping the newest touches only the pages at its end.
    # seq comes from sessions.next_seq, which only grows: a number is never reused, even after
    # the newest item is popped or the session cleared. Times are integer microseconds since
    # the epoch: exact both ways through datetime, so they can serve as page cursors.
    [
        """CREATE TABLE sessions (
            namespace  TEXT NOT NULL,
            session_id TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            item_count INTEGER NOT NULL DEFAULT 0,
            next_seq   INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (namespace, session_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE session_items (
            namespace  TEXT NOT NULL,
            session_id TEXT NOT NULL,
            seq        INTEGER NOT NULL,
            data       TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (namespace, session_id, seq)
        ) WITHOUT ROWID""",
    ],
    # 2: leases (session run leases; later, background job claims) and the session listing
    # index (most recently updated first).
    [
        """CREATE TABLE leases (
            namespace  TEXT NOT NULL,
            name       TEXT NOT NULL,
            owner      TEXT NOT NULL,
            expires_at INTEGER NOT NULL,
            PRIMARY KEY (namespace, name)
        ) WITHOUT ROWID""",
        "CREATE INDEX sessions_by_update ON sessions (namespace, updated_at, session_id)",
    ],
    # 3: long-term memories, their tags, version history, full-text index and embeddings;
    # knowledge triples. rowid is internal (FTS and vector keys); id is the public id.
    [
        """CREATE TABLE memories (
            rowid           INTEGER PRIMARY KEY,
            id              TEXT NOT NULL UNIQUE,
            namespace       TEXT NOT NULL,
            user_id         TEXT,
            agent_id        TEXT,
            session_id      TEXT,
            content         TEXT NOT NULL,
            content_hash    TEXT NOT NULL,
            tags            TEXT NOT NULL,
            metadata        TEXT NOT NULL,
            importance      REAL NOT NULL,
            occurred_at     INTEGER,
            created_at      INTEGER NOT NULL,
            updated_at      INTEGER NOT NULL,
            version         INTEGER NOT NULL,
            embedding       BLOB,
            embedding_model TEXT,
            embedding_seq   INTEGER
        )""",
        # identical content in the same scope is stored once
        """CREATE UNIQUE INDEX memories_identity ON memories (namespace, coalesce(user_id, ''),
            coalesce(agent_id, ''), coalesce(session_id, ''), content_hash)""",
        "CREATE INDEX memories_by_hash ON memories (content_hash)",
        "CREATE INDEX memories_by_user ON memories (namespace, user_id)",
        "CREATE INDEX memories_by_session ON memories (namespace, session_id)",
        "CREATE INDEX memories_by_agent ON memories (namespace, agent_id)",
        "CREATE UNIQUE INDEX memories_by_embedding_seq ON memories (embedding_seq)",
        """CREATE TABLE memory_tags (
            namespace    TEXT NOT NULL,
            tag          TEXT NOT NULL COLLATE NOCASE,
            memory_rowid INTEGER NOT NULL,
            PRIMARY KEY (namespace, tag, memory_rowid)
        ) WITHOUT ROWID""",
        "CREATE INDEX memory_tags_by_memory ON memory_tags (memory_rowid)",
        """CREATE TABLE memory_history (
            memory_id   TEXT NOT NULL,
            version     INTEGER NOT NULL,
            content     TEXT NOT NULL,
            tags        TEXT NOT NULL,
            metadata    TEXT NOT NULL,
            importance  REAL NOT NULL,
            replaced_at INTEGER NOT NULL,
            PRIMARY KEY (memory_id, version)
        ) WITHOUT ROWID""",
        # ctx: the text of the memories stored just before and after in the same session
        """CREATE VIRTUAL TABLE memories_fts USING fts5(
            content, tags, meta, ctx, tokenize = 'porter unicode61 remove_diacritics 2'
        )""",
        # the users a namespace has had: recall recognises their names in queries
        """CREATE TABLE memory_users (
            namespace TEXT NOT NULL,
            user_id   TEXT NOT NULL,
            PRIMARY KEY (namespace, user_id)
        ) WITHOUT ROWID""",
        # rowids whose embeddings were removed, so in-memory vector indexes can drop them
        """CREATE TABLE vector_removals (
            seq          INTEGER PRIMARY KEY AUTOINCREMENT,
            memory_rowid INTEGER NOT NULL
        )""",
        """CREATE TABLE triples (
            rowid      INTEGER PRIMARY KEY,
            id         TEXT NOT NULL UNIQUE,
            namespace  TEXT NOT NULL,
            subject    TEXT NOT NULL COLLATE NOCASE,
            predicate  TEXT NOT NULL COLLATE NOCASE,
            object     TEXT NOT NULL COLLATE NOCASE,
            confidence REAL NOT NULL,
            source     TEXT,
            valid_from INTEGER NOT NULL,
            valid_to   INTEGER,
            created_at INTEGER NOT NULL,
            memory_id  TEXT
        )""",
        "CREATE INDEX triples_by_subject ON triples (namespace, subject, predicate)",
        "CREATE INDEX triples_by_object ON triples (namespace, object)",
        "CREATE INDEX triples_by_predicate ON triples (namespace, predicate)",
    ],
    # 4: per-term document counts of the full-text index, so queries can skip terms so
    # common that they cost much and rank nothing (their BM25 weight is near zero).
    [
        "CREATE VIRTUAL TABLE memories_fts_terms USING fts5vocab(memories_fts, 'row')",
    ],
    # 5: the server's bookkeeping. API keys (only the SHA-256 of a secret is stored; limits
    # is JSON text), usage counters per subject, counter and window (e.g. a day), and the
    # responses of requests sent with an Idempotency-Key (status NULL while the first
    # attempt runs).
    [
        """CREATE TABLE api_keys (
            id          TEXT PRIMARY KEY,
            namespace   TEXT NOT NULL,
            name        TEXT NOT NULL,
            purpose     TEXT,
            prefix      TEXT NOT NULL,
            secret_hash TEXT NOT NULL UNIQUE,
            limits      TEXT NOT NULL,
            created_at  INTEGER NOT NULL,
            revoked_at  INTEGER
        )""",
        "CREATE INDEX api_keys_by_namespace ON api_keys (namespace, created_at)",
        """CREATE TABLE usage (
            namespace TEXT NOT NULL,
            subject   TEXT NOT NULL,
            counter   TEXT NOT NULL,
            "window"  TEXT NOT NULL,
            value     INTEGER NOT NULL,
            PRIMARY KEY (namespace, subject, counter, "window")
        ) WITHOUT ROWID""",
        """CREATE TABLE idempotency (
            namespace    TEXT NOT NULL,
            key          TEXT NOT NULL,
            request_hash TEXT NOT NULL,
            status       INTEGER,
            body         BLOB,
            created_at   INTEGER NOT NULL,
            PRIMARY KEY (namespace, key)
        )""",  # a rowid table: bodies can be large, WITHOUT ROWID suits small rows
        "CREATE INDEX idempotency_by_age ON idempotency (created_at)",
    ],
    # 6: quotas enforced in the write transaction. namespace_counts holds what each namespace
    # stores (memories; facts = triples, history included), updated by the same transaction
    # as every insert and delete, so a quota check never counts rows; backfilled here.
    # api_keys.created_by: the namespace key that created a key (NULL: admin/registration),
    # so a namespace key can revoke only the keys it created.
    [
        """CREATE TABLE namespace_counts (
            namespace TEXT PRIMARY KEY,
            memories  INTEGER NOT NULL DEFAULT 0,
            facts     INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID""",
        """INSERT INTO namespace_counts (namespace, memories, facts)
            SELECT namespace, sum(m), sum(f) FROM (
                SELECT namespace, 1 AS m, 0 AS f FROM memories
                UNION ALL SELECT namespace, 0, 1 FROM triples
            ) GROUP BY namespace""",
        "ALTER TABLE api_keys ADD COLUMN created_by TEXT",
        "CREATE INDEX api_keys_by_creator ON api_keys (created_by)",
    ],
    # 7: random secrets of this store, shared by every process and replica using it (the key
    # that seals page cursors)
    [
        """CREATE TABLE IF NOT EXISTS secrets (
            name  TEXT PRIMARY KEY,
            value BLOB NOT NULL
        ) WITHOUT ROWID""",
    ],
    # 8: the memory manager. A memory can be invalidated (excluded from recall, kept and
    # restorable); memory_events records each decision about a memory (why it exists: action,
    # reason, model, prompt version, the session items it came from); extraction_marks holds,
    # per session, the last item sequence number extraction processed (compare-and-set).
    [
        add_column("memories", "invalidated_at", "INTEGER"),
        add_column("memories", "invalidated_reason", "TEXT"),
        """CREATE TABLE IF NOT EXISTS memory_events (
            seq            INTEGER PRIMARY KEY AUTOINCREMENT,
            namespace      TEXT NOT NULL,
            memory_id      TEXT NOT NULL,
            at             INTEGER NOT NULL,
            action         TEXT NOT NULL,
            reason         TEXT,
            model          TEXT,
            prompt_version TEXT,
            session_id     TEXT,
            item_seqs      TEXT NOT NULL,
            details        TEXT NOT NULL
        )""",
        """CREATE INDEX IF NOT EXISTS memory_events_by_memory
            ON memory_events (namespace, memory_id, seq)""",
        """CREATE TABLE IF NOT EXISTS extraction_marks (
            namespace  TEXT NOT NULL,
            session_id TEXT NOT NULL,
            last_seq   INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (namespace, session_id)
        ) WITHOUT ROWID""",
    ],
    # 9: lease-locked background jobs (trace consolidation), one row per (namespace, kind,
    # job_key): the ownership token of the current run, its lease expiry and heartbeat, the
    # retry budget and time, the last error and the input watermark of the last completed
    # run. Times are microseconds. Operational state: not exported.
    [
        """CREATE TABLE IF NOT EXISTS jobs (
            namespace        TEXT NOT NULL,
            kind             TEXT NOT NULL,
            job_key          TEXT NOT NULL,
            status           TEXT NOT NULL,
            owner            TEXT,
            token            TEXT,
            lease_expires_at INTEGER,
            heartbeat_at     INTEGER,
            input_watermark  TEXT,
            attempts         INTEGER NOT NULL DEFAULT 0,
            max_attempts     INTEGER NOT NULL,
            retry_at         INTEGER,
            last_error       TEXT,
            created_at       INTEGER NOT NULL,
            updated_at       INTEGER NOT NULL,
            PRIMARY KEY (namespace, kind, job_key)
        ) WITHOUT ROWID""",
        """CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (namespace, status, kind, job_key)""",
    ],
    # 10: what consolidation spends and who configured it: the spend of each job (added to by
    # every run), a per-day ledger per (namespace, scope) that the daily cost caps read, and
    # the per-scope settings (opt-out, which sessions belong to the scope). Operational
    # state: not exported.
    [
        add_column("jobs", "sessions", "INTEGER NOT NULL DEFAULT 0"),
        add_column("jobs", "llm_calls", "INTEGER NOT NULL DEFAULT 0"),
        add_column("jobs", "input_tokens", "INTEGER NOT NULL DEFAULT 0"),
        add_column("jobs", "output_tokens", "INTEGER NOT NULL DEFAULT 0"),
        """CREATE TABLE IF NOT EXISTS spend_days (
            namespace     TEXT NOT NULL,
            day           TEXT NOT NULL,
            scope         TEXT NOT NULL,
            sessions      INTEGER NOT NULL DEFAULT 0,
            llm_calls     INTEGER NOT NULL DEFAULT 0,
            input_tokens  INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (namespace, day, scope)
        ) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS consolidation_scopes (
            namespace      TEXT NOT NULL,
            scope          TEXT NOT NULL,
            enabled        INTEGER NOT NULL,
            session_prefix TEXT,
            created_at     INTEGER NOT NULL,
            updated_at     INTEGER NOT NULL,
            PRIMARY KEY (namespace, scope)
        ) WITHOUT ROWID""",
    ],
    # 11: text_versions counts, per
    # namespace, the changes to its memories that can change full-text statistics or filters
    # (every insert and delete, every update of anything but the embedding), so a store can
    # cache a namespace's term statistics until it changes — in every process, since
    # triggers keep the counter, whatever writes. Operational state: not exported.
    [
        """CREATE TABLE IF NOT EXISTS text_versions (
            namespace TEXT PRIMARY KEY,
            version   INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TRIGGER IF NOT EXISTS memories_text_version_insert AFTER INSERT ON memories
        BEGIN
            INSERT INTO text_versions (namespace, version) VALUES (NEW.namespace, 1)
            ON CONFLICT (namespace) DO UPDATE SET version = version + 1;
        END""",
        """CREATE TRIGGER IF NOT EXISTS memories_text_version_delete AFTER DELETE ON memories
        BEGIN
            INSERT INTO text_versions (namespace, version) VALUES (OLD.namespace, 1)
            ON CONFLICT (namespace) DO UPDATE SET version = version + 1;
        END""",
        """CREATE TRIGGER IF NOT EXISTS memories_text_version_update
        AFTER UPDATE OF id, namespace, user_id, agent_id, session_id, content, content_hash, tags,
            metadata, importance, occurred_at, created_at, updated_at, version, invalidated_at,
            invalidated_reason ON memories
        BEGIN
            INSERT INTO text_versions (namespace, version) VALUES (NEW.namespace, 1)
            ON CONFLICT (namespace) DO UPDATE SET version = version + 1;
            UPDATE text_versions SET version = version + 1
            WHERE namespace = OLD.namespace AND OLD.namespace IS NOT NEW.namespace;
        END""",
    ],
    # 12: session_items.plain, decided when an item is written (validation.plain_item): 1 if
    # its text reads back exactly with orjson alone (one object, no integer beyond 64 bits,
    # nesting within the limit), so get_items parses a page in one call; 0 or NULL (a row
    # written before this version) takes the careful path.
    [
        add_column("session_items", "plain", "INTEGER"),
    ],
    # 13: embeddings leave the memories table (1.5 KB a row that every scan of it read) for
    # memory_vectors, one row per (memory, chunk): a long memory is embedded in overlapping
    # chunks, each with its character span. seq (the rowid: the table is stored in its order)
    # orders the rows for in-memory vector indexes, which read it as one range scan; a
    # memory's chunks have consecutive numbers in chunk order. Rows go with their memory (the
    # trigger covers every way a memory is deleted).
    [
        """CREATE TABLE IF NOT EXISTS memory_vectors (
            seq          INTEGER PRIMARY KEY,
            memory_rowid INTEGER NOT NULL,
            chunk        INTEGER NOT NULL,
            model        TEXT NOT NULL,
            vector       BLOB NOT NULL,
            span_start   INTEGER NOT NULL,
            span_end     INTEGER NOT NULL
        )""",
        """CREATE UNIQUE INDEX IF NOT EXISTS memory_vectors_by_memory
            ON memory_vectors (memory_rowid, chunk)""",
        """CREATE TRIGGER IF NOT EXISTS memories_vectors_delete AFTER DELETE ON memories
        BEGIN
            DELETE FROM memory_vectors WHERE memory_rowid = OLD.rowid;
        END""",
        lambda conn: _move_embeddings(conn),
    ],
    # 14 (issue 15, "what is indexed"): metadata values are no longer
    # full-text indexed unless the Memory names their keys (index_metadata, none by default),
    # so the indexed metadata text of existing rows is rewritten under that default (empty).
    # Memory.reindex() indexes the keys a Memory names. The text statistics of every
    # namespace are invalidated (their cache key moves). Re-runnable.
    [
        "UPDATE memories_fts SET meta = '' WHERE meta <> ''",
        "UPDATE text_versions SET version = version + 1",
    ],
    # 15: the live memories of a namespace by rowid, in a narrow index: the text search
    # checks each full-text match against it (namespace and not invalidated) without reading
    # the memory's row, so finding the newest matches of a namespace costs index seeks only.
    [
        "CREATE INDEX IF NOT EXISTS memories_live ON memories (namespace, rowid) "
        "WHERE invalidated_at IS NULL",
    ],
    # 16 (issue 14): the full-text index split by namespace size (see store/sqlite/text.py):
    # a namespace of OWN_TABLE_AT live memories or more gets an FTS5 table of its own (FTS5's
    # bm25() then reads its statistics alone); the others stay in memories_fts, made again
    # with an ``ns`` column holding a token of the namespace. Live rows only: invalidated ones
    # keep their metadata text in text_parked. Re-runnable (over the new layout too).
    [
        REGISTRY,
        PARKED,
        lambda conn: _split_text_index(conn),
    ],
]


def _split_text_index(conn: sqlite3.Connection) -> None:
    """Move each namespace's rows of memories_fts to its table (own or shared), as above."""
    columns = ", ".join(TEXT_COLUMNS)
    moved = ", ".join(f"f.{c}" for c in TEXT_COLUMNS)
    source = SHARED
    if "ns" not in [r[1] for r in conn.execute(f"PRAGMA table_info({SHARED})")]:
        source = f"{SHARED}_v15"  # the table before: rows move out of it, then it is dropped
        conn.execute(f"ALTER TABLE {SHARED} RENAME TO {source}")
        conn.execute(SHARED_TABLE)
    invalidated = "SELECT rowid FROM memories WHERE invalidated_at IS NOT NULL"
    conn.execute(
        f"INSERT OR REPLACE INTO text_parked (memory_rowid, meta) SELECT f.rowid, f.meta "
        f"FROM {source} f WHERE f.rowid IN ({invalidated})"
    )
    conn.execute(f"DELETE FROM {source} WHERE rowid IN ({invalidated})")
    live = "SELECT rowid FROM memories WHERE namespace = ? AND invalidated_at IS NULL"
    for namespace, count in conn.execute(
        "SELECT namespace, count(*) FROM memories WHERE invalidated_at IS NULL GROUP BY namespace"
    ).fetchall():
        if count >= text_layout.OWN_TABLE_AT or own_text_table(conn, namespace) is not None:
            table = ensure_text_table(conn, namespace)
            conn.execute(
                f"INSERT OR REPLACE INTO {table} (rowid, {columns}) SELECT f.rowid, {moved} "
                f"FROM {source} f WHERE f.rowid IN ({live}) ORDER BY f.rowid",
                (namespace,),
            )
            conn.execute(f"DELETE FROM {source} WHERE rowid IN ({live})", (namespace,))
        elif source != SHARED:
            conn.execute(
                f"INSERT INTO {SHARED} (rowid, {columns}, ns) SELECT f.rowid, {moved}, ? "
                f"FROM {source} f WHERE f.rowid IN ({live}) ORDER BY f.rowid",
                (namespace_token(namespace), namespace),
            )
        else:  # rows put back without their token (or with another): named again
            conn.execute(
                f"UPDATE {SHARED} SET ns = ?1 WHERE rowid IN ({live.replace('?', '?2')}) "
                "AND ns IS NOT ?1",
                (namespace_token(namespace), namespace),
            )
    if source != SHARED:
        conn.execute(f"DROP TABLE {source}")


def _move_embeddings(conn: sqlite3.Connection) -> None:
    """Copy the inline embeddings into memory_vectors (as chunk 0, spanning the content) and
    drop the old columns; a no-op once they are gone."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(memories)")}
    if "embedding" not in have:
        return
    conn.execute(
        "INSERT OR IGNORE INTO memory_vectors (memory_rowid, chunk, model, vector, span_start, "
        "span_end, seq) SELECT rowid, 0, embedding_model, embedding, 0, length(content), "
        "embedding_seq FROM memories WHERE embedding IS NOT NULL AND embedding_model IS NOT NULL "
        "AND embedding_seq IS NOT NULL"
    )
    conn.execute("DROP INDEX IF EXISTS memories_by_embedding_seq")
    if sqlite3.sqlite_version_info < (3, 35):  # no DROP COLUMN: empty the columns instead
        conn.execute(
            "UPDATE memories SET embedding = NULL, embedding_model = NULL, embedding_seq = NULL"
        )
        return
    for column in ("embedding", "embedding_model", "embedding_seq"):
        conn.execute(f"ALTER TABLE memories DROP COLUMN {column}")


LATEST_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, *, target: int = LATEST_VERSION) -> int:
    """Bring the schema up to ``target`` inside one write transaction. Returns the version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > LATEST_VERSION:
            raise SchemaVersionError(
                f"this database has schema version {version}, newer than this engramdb "
                f"supports ({LATEST_VERSION}); upgrade engramdb to open it"
            )
        for step in range(version, target):
            for statement in MIGRATIONS[step]:
                if callable(statement):
                    statement(conn)
                else:
                    conn.execute(statement)
        if target > version:
            conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(version, target)
