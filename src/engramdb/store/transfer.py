"""Moving data from a SQLite store to a PostgreSQL one (``engramdb migrate``).

Copies every namespace's sessions (items byte for byte, in sequence order, with their times),
memories (with their ids, times, versions, embeddings and version history), knowledge triples
(with their validity history) and the server's API keys (ids, secret hashes, revocations).
Sessions, memories and triples are read and written with the stores' full-copy methods
(``memory_export_full``/``memory_import``, ``triple_export``/``triple_import``,
``session_export_items``/``session_import``): the same ones ``engramdb export`` and
``engramdb import`` use (:mod:`engramdb.transfer`). Leases, usage counters and idempotency
records are not moved: they are short-lived.

Resumable: anything already in the target is skipped (memories, history rows, triples and
keys by id; a session's items when the target holds a prefix of the source's), so an
interrupted run is simply started again. A key revoked in the source since an earlier run is
revoked in the target too. At the end both sides are counted and checksummed (order-independent
sums of per-record SHA-256 digests; a session's items are hashed in order), and the report
says whether they agree.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConflictError, InvalidInputError
from ..types import us_from_datetime
from .base import ExportedMemory, ImportedMemory, NewMemory, Store
from .rows import event_key, new_event

Progress = Callable[[str, int], None]
"""Called as ``progress(kind, count)`` after each copied batch; kinds as in :data:`KINDS`."""

KINDS = ("session_items", "memories", "history", "triples", "api_keys")
_MOD = 2**256
_KEY_FIELDS = "id, name, purpose, prefix, secret_hash, limits, created_at, revoked_at, created_by"


@dataclass
class TransferReport:
    """What a transfer copied and how the two sides compare afterwards."""

    namespaces: list[str]
    copied: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    source_counts: dict[str, int] = field(default_factory=dict)
    target_counts: dict[str, int] = field(default_factory=dict)
    source_checksums: dict[str, str] = field(default_factory=dict)
    target_checksums: dict[str, str] = field(default_factory=dict)

    @property
    def mismatches(self) -> list[str]:
        """Kinds whose counts or checksums differ between source and target."""
        return [
            kind
            for kind in self.source_counts
            if self.source_counts[kind] != self.target_counts.get(kind)
            or self.source_checksums.get(kind) != self.target_checksums.get(kind)
        ]

    @property
    def ok(self) -> bool:
        return not self.mismatches


# -- reading a SQLite store ----------------------------------------------------------------


class SQLiteSource:
    """Reads everything of a SQLite store's file, read-only."""

    def __init__(self, store: Store) -> None:
        from .sqlite import SQLiteStore

        if not isinstance(store, SQLiteStore):
            raise InvalidInputError("the source of a migration must be a SQLite store")
        self.conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)

    def close(self) -> None:
        self.conn.close()

    def namespaces(self) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT namespace FROM sessions UNION SELECT namespace FROM memories "
                "UNION SELECT namespace FROM triples UNION SELECT namespace FROM api_keys "
                "ORDER BY 1"
            )
        ]

    def counts(self, namespace: str) -> dict[str, int]:
        def one(query: str) -> int:
            return int(self.conn.execute(query, (namespace,)).fetchone()[0])

        return {
            "sessions": one("SELECT count(*) FROM sessions WHERE namespace = ?"),
            "session_items": one("SELECT count(*) FROM session_items WHERE namespace = ?"),
            "memories": one("SELECT count(*) FROM memories WHERE namespace = ?"),
            "embeddings": one(
                "SELECT count(*) FROM memories m WHERE m.namespace = ? AND EXISTS "
                "(SELECT 1 FROM memory_vectors v WHERE v.memory_rowid = m.rowid)"
            ),
            "history": one(
                "SELECT count(*) FROM memory_history h JOIN memories m ON m.id = h.memory_id "
                "WHERE m.namespace = ?"
            ),
            "triples": one("SELECT count(*) FROM triples WHERE namespace = ?"),
            "api_keys": one("SELECT count(*) FROM api_keys WHERE namespace = ?"),
        }

    def sessions(self, namespace: str) -> list[tuple[str, int, int]]:
        """``(session_id, created_at, updated_at)`` of every session."""
        return [
            (r[0], r[1], r[2])
            for r in self.conn.execute(
                "SELECT session_id, created_at, updated_at FROM sessions WHERE namespace = ? "
                "ORDER BY session_id",
                (namespace,),
            )
        ]

    def session_items(self, namespace: str, session_id: str) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT data FROM session_items WHERE namespace = ? AND session_id = ? "
                "ORDER BY seq",
                (namespace, session_id),
            )
        ]

    def memories(self, namespace: str, batch: int) -> Iterator[list[tuple[Any, ...]]]:
        """Batches of memory rows as checksummed (the columns PostgreSQL's checksum reads)."""
        from .sqlite.text import find_text_table

        after = 0
        table = find_text_table(self.conn, namespace)
        while True:
            rows = self.conn.execute(
                "SELECT m.rowid, m.id, m.user_id, m.agent_id, m.session_id, m.content, "
                "m.content_hash, m.tags, m.metadata, coalesce(f.meta, p.meta, ''), m.importance, "
                "m.occurred_at, m.created_at, m.updated_at, m.version FROM memories m "
                f"LEFT JOIN {table} f ON f.rowid = m.rowid "
                "LEFT JOIN text_parked p ON p.memory_rowid = m.rowid WHERE m.namespace = ? "
                "AND m.rowid > ? ORDER BY m.rowid LIMIT ?",
                (namespace, after, batch),
            ).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            vectors = _embeddings(
                self.conn.execute(
                    "SELECT memory_rowid, model, vector FROM memory_vectors WHERE memory_rowid "
                    "IN (SELECT value FROM json_each(?)) ORDER BY memory_rowid, chunk",
                    (json.dumps([r[0] for r in rows]),),
                ).fetchall()
            )
            yield [(*r[1:], *vectors.get(r[0], (None, None))) for r in rows]

    def triples(self, namespace: str) -> list[tuple[Any, ...]]:
        return [
            tuple(r)
            for r in self.conn.execute(
                "SELECT id, subject, predicate, object, confidence, source, valid_from, "
                "valid_to, created_at, memory_id FROM triples WHERE namespace = ? ORDER BY rowid",
                (namespace,),
            )
        ]

    def api_keys(self, namespace: str) -> list[tuple[Any, ...]]:
        """Key rows in :data:`_KEY_FIELDS` order, oldest first."""
        return [
            tuple(r)
            for r in self.conn.execute(
                f"SELECT {_KEY_FIELDS} FROM api_keys WHERE namespace = ? ORDER BY rowid",
                (namespace,),
            )
        ]

    def checksums(self, namespace: str) -> dict[str, str]:
        return _checksums(
            sessions=(
                (sid, self.session_items(namespace, sid)) for sid, _, _ in self.sessions(namespace)
            ),
            memories=(row for batch in self.memories(namespace, 1000) for row in batch),
            history=self.conn.execute(
                "SELECT h.memory_id, h.version, h.content, h.tags, h.metadata, h.importance, "
                "h.replaced_at FROM memory_history h JOIN memories m ON m.id = h.memory_id "
                "WHERE m.namespace = ?",
                (namespace,),
            ),
            triples=self.triples(namespace),
            api_keys=self.api_keys(namespace),
        )


# -- writing a PostgreSQL store ------------------------------------------------------------


class PostgresTarget:
    """Writes copied records into a PostgreSQL store, keeping ids, times and versions."""

    def __init__(self, store: Store) -> None:
        from .._extras import require

        require("psycopg", "postgres", "migrating to PostgreSQL")
        require("psycopg_pool", "postgres", "migrating to PostgreSQL")
        from .postgres import PostgresStore

        if not isinstance(store, PostgresStore):
            raise InvalidInputError("the target of a migration must be a PostgreSQL store")
        self.store = store

    def session_items(self, namespace: str, session_id: str) -> list[str]:
        return self.store.read(
            lambda conn: [
                str(r[0])
                for r in conn.execute(
                    "SELECT data FROM session_items WHERE namespace = %s AND session_id = %s "
                    "ORDER BY seq",
                    (namespace, session_id),
                )
            ]
        )

    def insert_keys(self, namespace: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert key rows (:data:`_KEY_FIELDS` order); a key already there is skipped, but a
        revocation in the source is carried over. Returns how many rows were written."""
        if not rows:
            return 0

        def work(conn: Any) -> int:
            return len(
                _insert_returning(
                    conn,
                    f"INSERT INTO api_keys (namespace, {_KEY_FIELDS}) VALUES (%s, %s, %s, %s, "
                    "%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE "
                    "SET revoked_at = excluded.revoked_at WHERE api_keys.revoked_at IS NULL "
                    "AND excluded.revoked_at IS NOT NULL AND api_keys.namespace = "
                    "excluded.namespace AND api_keys.secret_hash = excluded.secret_hash "
                    "RETURNING 1",
                    [(namespace, *r) for r in rows],
                )
            )

        try:
            return self.store.run(work)
        except Exception as exc:
            import psycopg

            if isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                raise ConflictError(
                    "the target already holds an API key with the same secret under another "
                    "id; migrate into an empty database"
                ) from None
            raise

    def counts(self, namespace: str) -> dict[str, int]:
        def work(conn: Any) -> dict[str, int]:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM sessions WHERE namespace = %(ns)s), "
                "(SELECT count(*) FROM session_items WHERE namespace = %(ns)s), "
                "(SELECT count(*) FROM memories WHERE namespace = %(ns)s), "
                "(SELECT count(DISTINCT memory_rowid) FROM memory_vectors "
                "WHERE namespace = %(ns)s), "
                "(SELECT count(*) FROM memory_history h JOIN memories m ON m.id = h.memory_id "
                "WHERE m.namespace = %(ns)s), "
                "(SELECT count(*) FROM triples WHERE namespace = %(ns)s), "
                "(SELECT count(*) FROM api_keys WHERE namespace = %(ns)s)",
                {"ns": namespace},
            ).fetchone()
            keys = (
                "sessions",
                "session_items",
                "memories",
                "embeddings",
                "history",
                "triples",
                "api_keys",
            )
            return {k: int(v) for k, v in zip(keys, row, strict=True)}

        return self.store.read(work)

    def checksums(self, namespace: str) -> dict[str, str]:
        def work(conn: Any) -> dict[str, str]:
            sessions = [
                str(r[0])
                for r in conn.execute(
                    "SELECT session_id FROM sessions WHERE namespace = %s", (namespace,)
                )
            ]
            with conn.cursor(binary=True) as cur:
                cur.execute(
                    "SELECT rowid, id, user_id, agent_id, session_id, content, content_hash, "
                    "tags, metadata, search_text, importance, occurred_at, created_at, "
                    "updated_at, version FROM memories WHERE namespace = %s",
                    (namespace,),
                )
                rows = cur.fetchall()
                cur.execute(
                    "SELECT memory_rowid, model, embedding FROM memory_vectors "
                    "WHERE namespace = %s ORDER BY memory_rowid, chunk",
                    (namespace,),
                )
                vectors = _embeddings(cur.fetchall())
                memories = [(*r[1:], *vectors.get(r[0], (None, None))) for r in rows]
            return _checksums(
                sessions=((sid, self.session_items(namespace, sid)) for sid in sessions),
                memories=memories,
                history=conn.execute(
                    "SELECT h.memory_id, h.version, h.content, h.tags, h.metadata, "
                    "h.importance, h.replaced_at FROM memory_history h JOIN memories m "
                    "ON m.id = h.memory_id WHERE m.namespace = %s",
                    (namespace,),
                ).fetchall(),
                triples=conn.execute(
                    "SELECT id, subject, predicate, object, confidence, source, valid_from, "
                    "valid_to, created_at, memory_id FROM triples WHERE namespace = %s",
                    (namespace,),
                ).fetchall(),
                api_keys=conn.execute(
                    f"SELECT {_KEY_FIELDS} FROM api_keys WHERE namespace = %s", (namespace,)
                ).fetchall(),
            )

        return self.store.read(work)


# -- the transfer --------------------------------------------------------------------------


def source_totals(source: Store) -> dict[str, int]:
    """How many records of each kind a transfer from ``source`` has to look at."""
    reader = SQLiteSource(source)
    try:
        totals = dict.fromkeys(KINDS, 0)
        for ns in reader.namespaces():
            counts = reader.counts(ns)
            for kind in KINDS:
                totals[kind] += counts[kind]
        return totals
    finally:
        reader.close()


def transfer(
    source: Store, target: Store, *, batch_size: int = 500, progress: Progress | None = None
) -> TransferReport:
    """Copy everything from a SQLite ``source`` into a PostgreSQL ``target``, then verify."""
    if batch_size < 1:
        raise InvalidInputError("batch_size must be at least 1")
    reader = SQLiteSource(source)
    writer = PostgresTarget(target)
    tick = progress or (lambda kind, n: None)
    try:
        report = TransferReport(reader.namespaces())
        for ns in report.namespaces:
            _copy_sessions(source, target, writer, ns, report, tick, batch_size)
            after = 0
            while page := source.memory_export_full(
                ns, after=after, limit=batch_size, with_vectors=True
            ):
                created = target.memory_import(ns, [_imported(m) for m in page])
                for m, fresh in zip(page, created, strict=True):
                    tally = report.copied if fresh else report.skipped
                    tally["memories"] += 1
                    tally["history"] += len(m.history)
                tick("memories", len(page))
                tick("history", sum(len(m.history) for m in page))
                after = page[-1].rowid
            after = 0
            while triples := source.triple_export(ns, after=after, limit=batch_size):
                for fresh in target.triple_import(ns, triples):
                    (report.copied if fresh else report.skipped)["triples"] += 1
                tick("triples", len(triples))
                after = triples[-1].rowid
            _copy_events(source, target, ns, batch_size)
            keys = reader.api_keys(ns)
            for start in range(0, len(keys), batch_size):
                chunk = keys[start : start + batch_size]
                new = writer.insert_keys(ns, chunk)
                report.copied["api_keys"] += new
                report.skipped["api_keys"] += len(chunk) - new
                tick("api_keys", len(chunk))
        for ns in report.namespaces:  # verify: counts and checksums, both sides
            for kind, n in reader.counts(ns).items():
                report.source_counts[kind] = report.source_counts.get(kind, 0) + n
            for kind, n in writer.counts(ns).items():
                report.target_counts[kind] = report.target_counts.get(kind, 0) + n
            for kind, digest in reader.checksums(ns).items():
                report.source_checksums[kind] = _combine(report.source_checksums.get(kind), digest)
            for kind, digest in writer.checksums(ns).items():
                report.target_checksums[kind] = _combine(report.target_checksums.get(kind), digest)
        return report
    finally:
        reader.close()


def _copy_sessions(
    source: Store,
    target: Store,
    writer: PostgresTarget,
    namespace: str,
    report: TransferReport,
    tick: Progress,
    batch_size: int,
) -> None:
    """Copy each session's items past those the target already holds (which must be a prefix
    of the source's), with their times."""
    last: str | None = None
    chunk = max(batch_size, 1000)
    while sessions := source.session_export(namespace, after=last, limit=1000):
        for info in sessions:
            session_id = info.session_id
            have = writer.session_items(namespace, session_id)
            items: list[tuple[str, int]] = []
            seq = -1
            while rows := source.session_export_items(
                namespace, session_id, after=seq, limit=chunk
            ):
                items += [(r.data, r.created_at) for r in rows]
                seq = rows[-1].seq
            if have != [data for data, _ in items[: len(have)]]:
                raise ConflictError(
                    f"session {session_id!r} in namespace {namespace!r} already holds different "
                    "items in the target; migrate into an empty database or clear that session"
                )
            report.skipped["session_items"] += len(have)
            tick("session_items", len(have))
            rest = items[len(have) :]
            for start in range(0, max(len(rest), 1), chunk):
                part = rest[start : start + chunk]
                target.session_import(
                    namespace,
                    session_id,
                    part,
                    created_at=us_from_datetime(info.created_at),
                    updated_at=us_from_datetime(info.updated_at),
                )
                report.copied["session_items"] += len(part)
                tick("session_items", len(part))
        last = sessions[-1].session_id


def _copy_events(source: Store, target: Store, namespace: str, batch_size: int) -> None:
    """Copy the memory events the target lacks (a repeated migrate adds none twice)."""
    after = 0
    while events := source.memory_event_export(namespace, after=after, limit=batch_size):
        have: dict[str, set[tuple[Any, ...]]] = {}
        todo = []
        for e in events:
            if e.memory_id not in have:
                have[e.memory_id] = {
                    event_key(x) for x in target.memory_events(namespace, e.memory_id)
                }
            if event_key(e) not in have[e.memory_id]:
                todo.append(new_event(e))
        target.memory_event_add(namespace, todo)
        after = events[-1].id


def _imported(m: ExportedMemory) -> ImportedMemory:
    """A memory as read from one store, ready to be written to another."""
    r = m.record
    return ImportedMemory(
        NewMemory(
            id=r.id,
            content=r.content,
            content_hash=r.content_hash,
            user_id=r.user_id,
            agent_id=r.agent_id,
            session_id=r.session_id,
            tags=r.tags,
            metadata=r.metadata,
            importance=r.importance,
            occurred_at=us_from_datetime(r.occurred_at) if r.occurred_at is not None else None,
            search_text=m.search_text,
            embedding=m.embedding,
            embedding_model=m.embedding_model,
            embedding_spans=m.embedding_spans,
            created_at=us_from_datetime(r.created_at),
        ),
        updated_at=us_from_datetime(r.updated_at),
        version=r.version,
        history=m.history,
        invalidated_at=(
            us_from_datetime(r.invalidated_at) if r.invalidated_at is not None else None
        ),
        invalidated_reason=r.invalidated_reason,
    )


def _digest(value: Any) -> int:
    h = hashlib.sha256()
    for part in value:
        if isinstance(part, bytes | bytearray | memoryview):
            h.update(b"b" + bytes(part))
        elif isinstance(part, float):
            h.update(b"f" + repr(part).encode())
        elif part is None:
            h.update(b"n")
        else:
            h.update(b"s" + str(part).encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return int.from_bytes(h.digest(), "big")


def _embeddings(rows: Sequence[Sequence[Any]]) -> dict[Any, tuple[bytes, str]]:
    """``(rowid, model, vector)`` rows in chunk order → per rowid, ``(vectors, model)``: the
    chunks concatenated, as checksummed on both sides."""
    out: dict[Any, tuple[bytes, str]] = {}
    for rowid, model, vector in rows:
        before = out.get(rowid, (b"", model))[0]
        out[rowid] = (before + bytes(vector), str(model))
    return out


def _checksums(**kinds: Any) -> dict[str, str]:
    """Order-independent checksums: the sum of per-record digests. A session is one record:
    its id and its items in order."""
    out: dict[str, str] = {}
    for kind, rows in kinds.items():
        total = 0
        if kind == "sessions":
            kind = "session_items"
            for session_id, items in rows:
                total += _digest([session_id, *items])
        else:
            for row in rows:
                total += _digest(row)
        out[kind] = f"{total % _MOD:064x}"
    return out


def _combine(previous: str | None, digest: str) -> str:
    return f"{(int(previous or '0', 16) + int(digest, 16)) % _MOD:064x}"


def _insert_returning(conn: Any, query: str, rows: Sequence[Sequence[Any]]) -> list[Any]:
    """Run an ``INSERT ... RETURNING`` for every row; the rows actually inserted come back
    (``ON CONFLICT DO NOTHING`` ones return nothing, which is how a resumed copy skips them)."""
    out: list[Any] = []
    with conn.cursor() as cur:
        cur.executemany(query, rows, returning=True)
        while True:
            out += cur.fetchall()
            if not cur.nextset():
                break
    return out
