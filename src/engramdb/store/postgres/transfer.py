"""Full copies in PostgreSQL: paged readers and exact writers for export, import and
``migrate`` (mixed into :class:`PostgresStore`). Ids, times, versions and history are kept as
given; what the store assigns itself (rowids, session sequence numbers) is assigned afresh."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
import psycopg

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
from .memories import (
    _count,
    _dim,
    _neighbor_rowids,
    _refresh_context,
    write_vectors,
)

Conn = psycopg.Connection[tuple[Any, ...]]
_T = TypeVar("_T")


def _memory_row(namespace: str, item: ImportedMemory) -> tuple[Any, ...]:
    m = item.memory
    return (
        m.id,
        namespace,
        m.user_id,
        m.agent_id,
        m.session_id,
        m.content,
        m.content_hash,
        to_json(list(m.tags)),
        " ".join(m.tags),
        to_json(m.metadata),
        m.search_text,
        m.importance,
        m.occurred_at,
        m.created_at,
        item.updated_at,
        item.version,
        item.invalidated_at,
        item.invalidated_reason if item.invalidated_at is not None else None,
    )


class TransferMixin:
    """Needs ``run``/``read`` and ``ensure_vector_index`` from the store."""

    index_neighbors: bool

    def run(self, work: Callable[[Conn], _T], *, write: bool = True) -> _T:
        raise NotImplementedError

    def read(self, work: Callable[[Conn], _T]) -> _T:
        raise NotImplementedError

    def ensure_vector_index(self, dims: set[int]) -> None:
        raise NotImplementedError

    def export_namespaces(self) -> list[str]:
        return self.read(
            lambda conn: [
                str(r[0])
                for r in conn.execute(
                    "SELECT namespace FROM sessions UNION SELECT namespace FROM memories "
                    "UNION SELECT namespace FROM triples ORDER BY 1"
                )
            ]
        )

    # -- memories --------------------------------------------------------------------------
    def memory_export_full(
        self, namespace: str, *, after: int, limit: int, with_vectors: bool
    ) -> list[ExportedMemory]:
        def work(conn: Conn) -> tuple[list[Any], list[Any], list[Any]]:
            with conn.cursor(binary=True) as cur:
                rows = cur.execute(
                    f"SELECT {MEMORY_COLUMNS}, m.search_text, (SELECT v.model FROM "
                    "memory_vectors v WHERE v.memory_rowid = m.rowid AND v.chunk = 0) "
                    "FROM memories m WHERE m.namespace = %s AND m.rowid > %s "
                    "ORDER BY m.rowid LIMIT %s",
                    (namespace, after, limit),
                ).fetchall()
                vectors = (
                    cur.execute(
                        "SELECT memory_rowid, embedding, span_start, span_end FROM "
                        "memory_vectors WHERE memory_rowid = ANY(%s::bigint[]) "
                        "ORDER BY memory_rowid, chunk",
                        ([r[0] for r in rows],),
                    ).fetchall()
                    if with_vectors and rows
                    else []
                )
            history = conn.execute(
                "SELECT memory_id, version, content, tags, metadata, importance, replaced_at "
                "FROM memory_history WHERE memory_id = ANY(%s::text[]) "
                "ORDER BY memory_id, version",
                ([r[1] for r in rows],),
            ).fetchall()
            return rows, history, vectors

        rows, history_rows, vector_rows = self.read(work)
        vectors = gather_chunks([(int(r[0]), r[1], r[2], r[3]) for r in vector_rows])
        history: dict[str, list[MemoryVersion]] = {}
        for h in history_rows:
            history.setdefault(h[0], []).append(
                MemoryVersion(
                    h[0],
                    h[1],
                    h[2],
                    tuple(orjson.loads(h[3])),
                    orjson.loads(h[4]),
                    h[5],
                    datetime_from_us(h[6]),
                )
            )
        n = len(MEMORY_COLUMNS.split(","))
        return [
            ExportedMemory(
                rowid=int(r[0]),
                record=memory_record(r),
                search_text=r[n],
                embedding_model=r[n + 1],
                embedding=vectors[int(r[0])][0] if int(r[0]) in vectors else None,
                embedding_spans=vectors[int(r[0])][1] if int(r[0]) in vectors else (),
                history=tuple(history.get(r[1], ())),
            )
            for r in rows
        ]

    def memory_import(self, namespace: str, memories: Sequence[ImportedMemory]) -> list[bool]:
        if not memories:
            return []
        self.ensure_vector_index(
            {d for i in memories if (d := _dim(i.memory.embedding, i.memory.embedding_spans))}
        )

        def work(conn: Conn) -> list[bool]:
            _count(conn, namespace)  # the namespace's row lock first, as every writer takes it
            taken = {
                str(r[0]): str(r[1])
                for r in conn.execute(
                    "SELECT id, namespace FROM memories WHERE id = ANY(%s::text[])",
                    ([i.memory.id for i in memories],),
                )
            }
            elsewhere = [mid for mid, ns in taken.items() if ns != namespace]
            if elsewhere:
                raise ConflictError(
                    f"memory id {elsewhere[0]!r} is already used in another namespace"
                )
            todo: dict[str, ImportedMemory] = {}
            for item in memories:
                if item.memory.id not in taken:
                    todo.setdefault(item.memory.id, item)
            inserted: dict[str, int] = {}
            if todo:
                with conn.cursor() as cur:
                    # DO NOTHING: identical content already stored in this scope is skipped
                    cur.executemany(
                        "INSERT INTO memories (id, namespace, user_id, agent_id, session_id, "
                        "content, content_hash, tags, tag_text, metadata, search_text, importance, "
                        "occurred_at, created_at, updated_at, version, invalidated_at, "
                        "invalidated_reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                        "%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING "
                        "RETURNING id, rowid",
                        [_memory_row(namespace, item) for item in todo.values()],
                        returning=True,
                    )
                    while True:
                        inserted.update((str(i), int(r)) for i, r in cur.fetchall())
                        if not cur.nextset():
                            break
            created: list[bool] = []
            for item in memories:
                created.append(item.memory.id in inserted and todo.get(item.memory.id) is item)
            fresh = [(item, inserted[mid]) for mid, item in todo.items() if mid in inserted]
            write_vectors(
                conn,
                namespace,
                imported_vectors(fresh),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO memory_tags (namespace, tag, memory_rowid) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    [
                        (namespace, tag.lower(), rowid)
                        for i, rowid in fresh
                        for tag in i.memory.tags
                    ],
                )
                cur.executemany(
                    "INSERT INTO memory_users (namespace, user_id) VALUES (%s, %s) "
                    "ON CONFLICT DO NOTHING",
                    sorted({(namespace, i.memory.user_id) for i, _ in fresh if i.memory.user_id}),
                )
                cur.executemany(
                    "INSERT INTO memory_history (memory_id, version, content, tags, metadata, "
                    "importance, replaced_at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
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
            in_sessions = [rowid for i, rowid in fresh if i.memory.session_id]
            _refresh_context(
                conn,
                [*in_sessions, *_neighbor_rowids(conn, in_sessions)],
                neighbors=self.index_neighbors,
            )
            _count(conn, namespace, memories=len(fresh))
            return created

        return self.run(work)

    # -- triples ---------------------------------------------------------------------------
    def triple_export(self, namespace: str, *, after: int, limit: int) -> list[TripleRow]:
        rows = self.read(
            lambda conn: conn.execute(
                f"SELECT rowid, memory_id, {TRIPLE_COLUMNS} FROM triples WHERE namespace = %s "
                "AND rowid > %s ORDER BY rowid LIMIT %s",
                (namespace, after, limit),
            ).fetchall()
        )
        return [TripleRow(int(r[0]), triple_record(r[2:]), r[1]) for r in rows]

    def triple_import(self, namespace: str, triples: Sequence[TripleRow]) -> list[bool]:
        if not triples:
            return []

        def work(conn: Conn) -> list[bool]:
            _count(conn, namespace)  # the namespace's row lock first, as every writer takes it
            taken = {
                str(r[0]): str(r[1])
                for r in conn.execute(
                    "SELECT id, namespace FROM triples WHERE id = ANY(%s::text[])",
                    ([t.triple.id for t in triples],),
                )
            }
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
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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

        return self.run(work)

    # -- sessions --------------------------------------------------------------------------
    def memory_event_export(self, namespace: str, *, after: int, limit: int) -> list[MemoryEvent]:
        rows = self.read(
            lambda conn: conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM memory_events WHERE namespace = %s AND seq > %s "
                "ORDER BY seq LIMIT %s",
                (namespace, after, limit),
            ).fetchall()
        )
        return [event_record(r) for r in rows]

    def session_export(self, namespace: str, *, after: str | None, limit: int) -> list[SessionInfo]:
        rows = self.read(
            lambda conn: conn.execute(
                "SELECT namespace, session_id, created_at, updated_at, item_count FROM sessions "
                'WHERE namespace = %s AND session_id COLLATE "C" > %s '
                'ORDER BY session_id COLLATE "C" '
                "LIMIT %s",
                (namespace, after if after is not None else "", limit),
            ).fetchall()
        )
        return [
            SessionInfo(r[0], r[1], datetime_from_us(r[2]), datetime_from_us(r[3]), int(r[4]))
            for r in rows
        ]

    def session_export_items(
        self, namespace: str, session_id: str, *, after: int, limit: int
    ) -> list[SessionItemRow]:
        rows = self.read(
            lambda conn: conn.execute(
                "SELECT seq, data, created_at FROM session_items WHERE namespace = %s "
                "AND session_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                (namespace, session_id, after, limit),
            ).fetchall()
        )
        return [SessionItemRow(int(r[0]), str(r[1]), int(r[2])) for r in rows]

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

        def work(conn: Conn) -> None:
            row = conn.execute(
                "INSERT INTO sessions (namespace, session_id, created_at, updated_at, "
                "item_count, next_seq) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (namespace, session_id) DO UPDATE "
                "SET created_at = excluded.created_at, updated_at = excluded.updated_at, "
                "item_count = sessions.item_count + excluded.item_count, "
                "next_seq = sessions.next_seq + excluded.next_seq RETURNING next_seq",
                (namespace, session_id, created_at, updated_at, count, count),
            ).fetchone()
            assert row is not None
            first = int(row[0]) - count
            if items:
                conn.execute(
                    "INSERT INTO session_items (namespace, session_id, seq, data, created_at, "
                    "plain) SELECT %s, %s, %s + n - 1, data, at, plain "
                    "FROM unnest(%s::text[], %s::bigint[], %s::boolean[]) "
                    "WITH ORDINALITY AS t (data, at, plain, n)",
                    (
                        namespace,
                        session_id,
                        first,
                        [d for d, _ in items],
                        [a for _, a in items],
                        plain_items([d for d, _ in items]),
                    ),
                )

        self.run(work)
