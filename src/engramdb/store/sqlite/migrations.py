"""Forward-only schema migrations for the SQLite store.

``MIGRATIONS[i]`` upgrades a database from version ``i`` to ``i + 1``; the version lives in
``PRAGMA user_version``. Released migrations are never edited: add a new one instead.
"""

from __future__ import annotations

import sqlite3

from ...errors import SchemaVersionError

MIGRATIONS: list[list[str]] = [
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
]

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
                conn.execute(statement)
        if target > version:
            conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(version, target)
