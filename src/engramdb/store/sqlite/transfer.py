"""Full copies in SQLite: paged readers and exact writers for export, import and ``migrate``
(mixed into :class:`SQLiteStore`). Ids, times, versions and history are kept as given; what
the store assigns itself (rowids, session sequence numbers, embedding sequence numbers) is
assigned afresh."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import orjson

from ...errors import ConflictError
from ...types import MemoryEvent, MemoryVersion, SessionInfo, datetime_from_us, us_from_datetime
from ...validation import plain_items
from ..base import (
    ExportedMemory,
    ImportedMemory,
    SessionItemRow,
    TripleRow,
    gather_chunks,
    imported_vectors,
)
from ..rows import (
    EVENT_COLUMNS,
    MEMORY_COLUMNS,
    TRIPLE_COLUMNS,
    event_record,
    memory_record,
    to_json,
    triple_record,
)
from .memories import _count, write_vectors
from .text import index_text


def _versions(rows: Sequence[Sequence[Any]]) -> dict[str, list[MemoryVersion]]:
    out: dict[str, list[MemoryVersion]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(
            MemoryVersion(
                r[0],
                r[1],
                r[2],
                tuple(orjson.loads(r[3])),
                orjson.loads(r[4]),
                r[5],
                datetime_from_us(r[6]),
            )
        )
    return out


class TransferMixin:
    """Needs ``_read``/``_write``, ``_next_embedding_seq`` and ``_refresh_context``."""

    _read: Any
    _write: Any
    _next_embedding_seq: Any
    _refresh_context: Any
    _text_table: Any
    _promote_if_large: Any
    index_neighbors: bool

    def _reader(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._read()  # type: ignore[no-any-return]

    def _writer(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._write()  # type: ignore[no-any-return]

    def export_namespaces(self) -> list[str]:
        with self._reader() as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT namespace FROM sessions UNION SELECT namespace FROM memories "
                    "UNION SELECT namespace FROM triples ORDER BY 1"
                )
            ]

    # -- memories --------------------------------------------------------------------------
    def memory_export_full(
        self, namespace: str, *, after: int, limit: int, with_vectors: bool
    ) -> list[ExportedMemory]:
        with self._reader() as conn:
            conn.execute("BEGIN")  # one snapshot for the page and its history
            try:
                table = self._text_table(conn, namespace)
                rows = conn.execute(
                    f"SELECT {MEMORY_COLUMNS}, coalesce(f.meta, p.meta, ''), (SELECT v.model "
                    "FROM memory_vectors v WHERE v.memory_rowid = m.rowid AND v.chunk = 0) "
                    f"FROM memories m LEFT JOIN {table} f ON f.rowid = m.rowid "
                    "LEFT JOIN text_parked p ON p.memory_rowid = m.rowid "
                    "WHERE m.namespace = ? AND m.rowid > ? ORDER BY m.rowid LIMIT ?",
                    (namespace, after, limit),
                ).fetchall()
                vectors = (
                    gather_chunks(
                        conn.execute(
                            "SELECT memory_rowid, vector, span_start, span_end FROM "
                            "memory_vectors WHERE memory_rowid IN (SELECT value FROM "
                            "json_each(?)) ORDER BY memory_rowid, chunk",
                            (to_json([r[0] for r in rows]),),
                        ).fetchall()
                    )
                    if with_vectors
                    else {}
                )
                history = _versions(
                    conn.execute(
                        "SELECT memory_id, version, content, tags, metadata, importance, "
                        "replaced_at FROM memory_history WHERE memory_id IN "
                        "(SELECT value FROM json_each(?)) ORDER BY memory_id, version",
                        (to_json([r[1] for r in rows]),),
                    ).fetchall()
                )
            finally:
                conn.execute("COMMIT")
        n = len(MEMORY_COLUMNS.split(","))
        return [
            ExportedMemory(
                rowid=r[0],
                record=memory_record(r),
                search_text=r[n],
                embedding_model=r[n + 1],
                embedding=vectors[r[0]][0] if r[0] in vectors else None,
                embedding_spans=vectors[r[0]][1] if r[0] in vectors else (),
                history=tuple(history.get(r[1], ())),
            )
            for r in rows
        ]

    def memory_import(self, namespace: str, memories: Sequence[ImportedMemory]) -> list[bool]:
        if not memories:
            return []
        with self._writer() as conn:
            taken = dict(
                conn.execute(
                    "SELECT id, namespace FROM memories WHERE id IN "
                    "(SELECT value FROM json_each(?))",
                    (to_json([i.memory.id for i in memories]),),
                ).fetchall()
            )
            elsewhere = [mid for mid, ns in taken.items() if ns != namespace]
            if elsewhere:
                raise ConflictError(
                    f"memory id {elsewhere[0]!r} is already used in another namespace"
                )
            created: list[bool] = []
            fresh: list[tuple[ImportedMemory, int]] = []
            for item in memories:
                m = item.memory
                if m.id in taken:
                    created.append(False)
                    continue
                row = conn.execute(
                    "INSERT OR IGNORE INTO memories (id, namespace, user_id, agent_id, "
                    "session_id, content, content_hash, tags, metadata, importance, occurred_at, "
                    "created_at, updated_at, version, invalidated_at, invalidated_reason) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "RETURNING rowid",
                    (
                        m.id,
                        namespace,
                        m.user_id,
                        m.agent_id,
                        m.session_id,
                        m.content,
                        m.content_hash,
                        to_json(list(m.tags)),
                        to_json(m.metadata),
                        m.importance,
                        m.occurred_at,
                        m.created_at,
                        item.updated_at,
                        item.version,
                        item.invalidated_at,
                        item.invalidated_reason if item.invalidated_at is not None else None,
                    ),
                ).fetchone()
                created.append(row is not None)  # None: identical content in this scope
                taken[m.id] = namespace
                if row is not None:
                    fresh.append((item, row[0]))
            live = [(i, rowid) for i, rowid in fresh if i.invalidated_at is None]
            parked = [
                (rowid, i.memory.search_text) for i, rowid in fresh if i.invalidated_at is not None
            ]
            index_text(
                conn,
                self._text_table(conn, namespace),
                namespace,
                [
                    (rowid, i.memory.content, " ".join(i.memory.tags), i.memory.search_text)
                    for i, rowid in live
                ],
            )
            conn.executemany(  # an invalidated one is indexed again when restored
                "INSERT OR REPLACE INTO text_parked (memory_rowid, meta) VALUES (?, ?)",
                parked,
            )
            conn.executemany(
                "INSERT OR IGNORE INTO memory_tags (namespace, tag, memory_rowid) VALUES (?, ?, ?)",
                [(namespace, tag, rowid) for i, rowid in fresh for tag in i.memory.tags],
            )
            write_vectors(
                conn,
                imported_vectors(fresh),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO memory_users (namespace, user_id) VALUES (?, ?)",
                {(namespace, i.memory.user_id) for i, _ in fresh if i.memory.user_id is not None},
            )
            conn.executemany(
                "INSERT OR IGNORE INTO memory_history (memory_id, version, content, tags, "
                "metadata, importance, replaced_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i.memory.id,
                        v.version,
                        v.content,
                        to_json(list(v.tags)),
                        to_json(v.metadata),
                        v.importance,
                        us_from_datetime(v.replaced_at),
                    )
                    for i, _ in fresh
                    for v in i.history
                ],
            )
            in_sessions = [rowid for i, rowid in fresh if i.memory.session_id is not None]
            self._refresh_context(conn, namespace, in_sessions, with_neighbors=True)
            _count(conn, namespace, memories=len(fresh))
            self._promote_if_large(conn, namespace)
        return created

    # -- triples ---------------------------------------------------------------------------
    def triple_export(self, namespace: str, *, after: int, limit: int) -> list[TripleRow]:
        with self._reader() as conn:
            rows = conn.execute(
                f"SELECT rowid, memory_id, {TRIPLE_COLUMNS} FROM triples WHERE namespace = ? "
                "AND rowid > ? ORDER BY rowid LIMIT ?",
                (namespace, after, limit),
            ).fetchall()
        return [TripleRow(r[0], triple_record(r[2:]), r[1]) for r in rows]

    def triple_import(self, namespace: str, triples: Sequence[TripleRow]) -> list[bool]:
        if not triples:
            return []
        with self._writer() as conn:
            taken = dict(
                conn.execute(
                    "SELECT id, namespace FROM triples WHERE id IN "
                    "(SELECT value FROM json_each(?))",
                    (to_json([t.triple.id for t in triples]),),
                ).fetchall()
            )
            elsewhere = [tid for tid, ns in taken.items() if ns != namespace]
            if elsewhere:
                raise ConflictError(
                    f"fact id {elsewhere[0]!r} is already used in another namespace"
                )
            out: list[bool] = []
            for row in triples:
                t = row.triple
                if t.id in taken:
                    out.append(False)
                    continue
                conn.execute(
                    "INSERT INTO triples (id, namespace, subject, predicate, object, confidence, "
                    "source, valid_from, valid_to, created_at, memory_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        t.id,
                        namespace,
                        t.subject,
                        t.predicate,
                        t.object,
                        t.confidence,
                        t.source,
                        us_from_datetime(t.valid_from),
                        us_from_datetime(t.valid_to) if t.valid_to is not None else None,
                        us_from_datetime(t.created_at),
                        row.memory_id,
                    ),
                )
                taken[t.id] = namespace
                out.append(True)
            _count(conn, namespace, facts=sum(out))
        return out

    # -- sessions --------------------------------------------------------------------------
    def memory_event_export(self, namespace: str, *, after: int, limit: int) -> list[MemoryEvent]:
        with self._reader() as conn:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM memory_events WHERE namespace = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (namespace, after, limit),
            ).fetchall()
        return [event_record(r) for r in rows]

    def session_export(self, namespace: str, *, after: str | None, limit: int) -> list[SessionInfo]:
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT namespace, session_id, created_at, updated_at, item_count FROM sessions "
                "WHERE namespace = ? AND session_id > ? ORDER BY session_id LIMIT ?",
                (namespace, after if after is not None else "", limit),
            ).fetchall()
        return [
            SessionInfo(r[0], r[1], datetime_from_us(r[2]), datetime_from_us(r[3]), int(r[4]))
            for r in rows
        ]

    def session_export_items(
        self, namespace: str, session_id: str, *, after: int, limit: int
    ) -> list[SessionItemRow]:
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT seq, data, created_at FROM session_items WHERE namespace = ? "
                "AND session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (namespace, session_id, after, limit),
            ).fetchall()
        return [SessionItemRow(r[0], r[1], r[2]) for r in rows]

    def session_import(
        self,
        namespace: str,
        session_id: str,
        items: Sequence[tuple[str, int]],
        *,
        created_at: int,
        updated_at: int,
    ) -> None:
        count = len(items)
        with self._writer() as conn:
            (next_seq,) = conn.execute(
                "INSERT INTO sessions (namespace, session_id, created_at, updated_at, item_count, "
                "next_seq) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, session_id) DO UPDATE "
                "SET created_at = excluded.created_at, updated_at = excluded.updated_at, "
                "item_count = item_count + excluded.item_count, "
                "next_seq = next_seq + excluded.next_seq RETURNING next_seq",
                (namespace, session_id, created_at, updated_at, count, count),
            ).fetchone()
            first = next_seq - count
            conn.executemany(
                "INSERT INTO session_items (namespace, session_id, seq, data, created_at, plain) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (namespace, session_id, first + n, data, at, plain)
                    for n, ((data, at), plain) in enumerate(
                        zip(items, plain_items([d for d, _ in items]), strict=True)
                    )
                ],
            )
