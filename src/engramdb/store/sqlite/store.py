"""SQLite implementation of the Store protocol.

One database file, WAL mode. Each thread gets its own connection (SQLite releases the GIL
while it works, so readers run in parallel); a forked child opens fresh connections. Writes
run in ``BEGIN IMMEDIATE`` transactions so concurrent writers - threads or processes - queue
on SQLite's write lock (``busy_timeout``) instead of failing.

Durability: ``synchronous=NORMAL`` by default. In WAL mode a committed transaction survives
the process being killed (``kill -9``); only an OS crash or power loss can drop the last
commits. Pass ``durability="full"`` to fsync on every commit and survive power loss too.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from ...errors import StoreError, StoreUnavailableError
from ...types import SessionInfo, datetime_from_us, now_us
from ...validation import decode_item, decode_items
from .access import AccessMixin
from .memories import MemoriesMixin
from .migrations import migrate

Durability = Literal["normal", "full"]


class SQLiteStore(MemoriesMixin, AccessMixin):
    """Store backed by one SQLite database file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        durability: Durability = "normal",
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        # WAL readers never wait for writers, so a bounded read is cheaper to run in place than
        # to hand to a worker thread; async faces may call bounded reads on the event loop.
        self.inline_reads = True
        self.native_vector_search = False  # engramdb.search.vectors indexes SQLite's vectors
        if durability not in ("normal", "full"):
            raise StoreError(f"durability must be 'normal' or 'full', got {durability!r}")
        self._synchronous = durability.upper()
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        if not create and not self.path.exists():
            raise StoreUnavailableError(
                f"no engramdb database at {self.path}; check the path (--data-dir) or create one "
                "by writing to it first"
            )
        with self._translate_errors():
            migrate(self._conn())

    # -- connections -----------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            return conn
        if self._closed:
            raise StoreError("this store has been closed")
        conn = self._connect()
        local.conn, local.pid = conn, os.getpid()
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        with self._translate_errors():
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # close() may run on another thread
            )
            try:
                self._set_wal(conn)
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not left
                conn.execute("PRAGMA cache_size=-16000")
            except BaseException:
                conn.close()
                raise
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs a moment of exclusive access; a process opening the same new
        # file at the same time can make it fail with "locked" without calling the busy handler.
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def close(self) -> None:
        self._scrub_at_close()  # a batched forget merge still waiting runs now
        self._closed = True
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            # Another thread may be mid-statement; its connection then dies with it.
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise self._store_error(exc) from exc

    def _store_error(self, exc: sqlite3.DatabaseError) -> StoreError:
        message = str(exc)
        if "file is not a database" in message or "malformed" in message:
            return StoreUnavailableError(
                f"{self.path} is not an engramdb database (SQLite said: {message}); "
                "point --data-dir at an engramdb data directory"
            )
        if "readonly" in message or "unable to open" in message or "read-only" in message:
            return StoreUnavailableError(
                f"cannot open {self.path} for writing (SQLite said: {message}); check that the "
                "directory exists and is writable by this user"
            )
        if "locked" in message or "busy" in message:
            return StoreError(
                f"the database {self.path} stayed locked by another writer for more than "
                f"{self._busy_timeout:g}s; retry, or raise busy_timeout"
            )
        return StoreError(f"SQLite error on {self.path}: {message}")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._translate_errors():
            yield self._conn()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._translate_errors():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- sessions --------------------------------------------------------------------------
    def session_add(self, namespace: str, session_id: str, encoded_items: Sequence[str]) -> None:
        if not encoded_items:
            return
        now, count = now_us(), len(encoded_items)
        with self._write() as conn:
            (next_seq,) = conn.execute(
                "INSERT INTO sessions (namespace, session_id, created_at, updated_at, item_count, "
                "next_seq) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, session_id) DO UPDATE "
                "SET updated_at = excluded.updated_at, "
                "item_count = item_count + excluded.item_count, "
                "next_seq = next_seq + excluded.next_seq RETURNING next_seq",
                (namespace, session_id, now, now, count, count),
            ).fetchone()
            first = next_seq - count
            conn.executemany(
                "INSERT INTO session_items (namespace, session_id, seq, data, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (namespace, session_id, first + n, text, now)
                    for n, text in enumerate(encoded_items)
                ],
            )

    def session_get(
        self, namespace: str, session_id: str, limit: int | None
    ) -> list[dict[str, Any]]:
        if limit == 0:
            return []
        with self._read() as conn:
            if limit is None:
                rows = conn.execute(
                    "SELECT seq, data FROM session_items WHERE namespace = ? AND session_id = ? "
                    "ORDER BY seq",
                    (namespace, session_id),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT seq, data FROM session_items WHERE namespace = ? AND session_id = ? "
                    "ORDER BY seq DESC LIMIT ?",
                    (namespace, session_id, limit),
                ).fetchall()
                rows.reverse()
        return decode_items(rows, where=f"session {session_id!r}")

    def session_pop(self, namespace: str, session_id: str) -> dict[str, Any] | None:
        with self._write() as conn:
            row = conn.execute(
                "DELETE FROM session_items WHERE namespace = ?1 AND session_id = ?2 AND seq = "
                "(SELECT max(seq) FROM session_items WHERE namespace = ?1 AND session_id = ?2) "
                "RETURNING seq, data",
                (namespace, session_id),
            ).fetchone()
            if row is None:
                return None
            # A corrupt item raises here, inside the transaction: the rollback keeps it.
            item = decode_item(row[1], record_id=row[0], where=f"session {session_id!r}")
            conn.execute(
                "UPDATE sessions SET item_count = item_count - 1, updated_at = ? "
                "WHERE namespace = ? AND session_id = ?",
                (now_us(), namespace, session_id),
            )
            return item

    def session_clear(self, namespace: str, session_id: str) -> int:
        with self._write() as conn:
            removed = conn.execute(
                "DELETE FROM session_items WHERE namespace = ? AND session_id = ?",
                (namespace, session_id),
            ).rowcount
            conn.execute(
                "UPDATE sessions SET item_count = 0, updated_at = ? "
                "WHERE namespace = ? AND session_id = ?",
                (now_us(), namespace, session_id),
            )
            return int(removed)

    def session_delete(self, namespace: str, session_id: str) -> bool:
        with self._write() as conn:
            conn.execute(
                "DELETE FROM session_items WHERE namespace = ? AND session_id = ?",
                (namespace, session_id),
            )
            existed = conn.execute(
                "DELETE FROM sessions WHERE namespace = ? AND session_id = ?",
                (namespace, session_id),
            ).rowcount
            return bool(existed)

    def session_info(self, namespace: str, session_id: str) -> SessionInfo | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT namespace, session_id, created_at, updated_at, item_count FROM sessions "
                "WHERE namespace = ? AND session_id = ?",
                (namespace, session_id),
            ).fetchone()
        return _session_info(row) if row else None

    def session_list(
        self, namespace: str, *, limit: int = 100, before: tuple[int, str] | None = None
    ) -> list[SessionInfo]:
        query = (
            "SELECT namespace, session_id, created_at, updated_at, item_count FROM sessions "
            "WHERE namespace = ?"
        )
        params: list[Any] = [namespace]
        if before is not None:
            query += " AND (updated_at, session_id) < (?, ?)"
            params += [before[0], before[1]]
        query += " ORDER BY updated_at DESC, session_id DESC LIMIT ?"
        params.append(limit)
        with self._read() as conn:
            rows = conn.execute(query, params).fetchall()
        return [_session_info(row) for row in rows]

    # -- leases ----------------------------------------------------------------------------
    def lease_acquire(self, namespace: str, name: str, owner: str, ttl: float) -> bool:
        now = now_us()
        with self._write() as conn:
            changed = conn.execute(
                "INSERT INTO leases (namespace, name, owner, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (namespace, name) DO UPDATE SET owner = excluded.owner, "
                "expires_at = excluded.expires_at "
                "WHERE leases.owner = excluded.owner OR leases.expires_at <= ?",
                (namespace, name, owner, now + int(ttl * 1_000_000), now),
            ).rowcount
        return bool(changed)

    def lease_release(self, namespace: str, name: str, owner: str) -> bool:
        with self._write() as conn:
            removed = conn.execute(
                "DELETE FROM leases WHERE namespace = ? AND name = ? AND owner = ?",
                (namespace, name, owner),
            ).rowcount
        return bool(removed)


def _session_info(row: Sequence[Any]) -> SessionInfo:
    return SessionInfo(
        namespace=row[0],
        session_id=row[1],
        created_at=datetime_from_us(row[2]),
        updated_at=datetime_from_us(row[3]),
        item_count=int(row[4]),
    )
