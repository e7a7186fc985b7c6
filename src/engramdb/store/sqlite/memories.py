"""Memories and triples in SQLite (mixed into :class:`SQLiteStore`)."""

from __future__ import annotations

import heapq
import logging
import math
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import orjson

from ...filters import Filter, tags_to_merge
from ...types import (
    MemoryEvent,
    MemoryRecord,
    MemoryStats,
    MemoryVersion,
    Triple,
    datetime_from_us,
    now_us,
    us_from_datetime,
)
from ..base import (
    TEXT_CANDIDATES,
    Adjacency,
    MemoryChanges,
    NewMemory,
    NewMemoryEvent,
    NewTriple,
    Span,
    TextQuery,
    VectorDelta,
    VectorHit,
    chunk_rows,
    gather_chunks,
)
from ..rows import (
    CONTEXT_SPAN,
    EVENT_COLUMNS,
    MEMORY_COLUMNS,
    TRIPLE_COLUMNS,
    event_record,
    event_rows,
    from_json,
    memory_record,
    new_record,
    to_json,
    triple_record,
)
from . import text as text_layout
from .text import (
    SHARED,
    TEXT_COLUMNS,
    find_text_table,
    index_text,
    instance_vocabulary,
    live_documents,
    namespace_match,
    park_text,
    promote,
    table_totals,
    term_vocabulary,
    text_sizes,
    unpark_text,
)

# bm25 column weights: content, tags, metadata values, neighbouring memories' text (LoCoMo:
# context at 0.3 lifted BM25 R@10 from 0.63 to 0.72; more weight made it worse)
_COLUMN_WEIGHTS = {"content": 1.0, "tags": 0.6, "meta": 0.3, "ctx": 0.3}
_BM25_WEIGHTS = ", ".join(str(_COLUMN_WEIGHTS[c]) for c in TEXT_COLUMNS)
_K1, _B = 1.2, 0.75  # FTS5's bm25() constants
_WEIGHT_SQL = (
    "CASE i.col "
    + " ".join(f"WHEN '{c}' THEN {w}" for c, w in _COLUMN_WEIGHTS.items())
    + " ELSE 0.0 END"
)


class TextStats:
    """Statistics of one namespace's full-text index as of one ``key`` (the namespace's
    ``text_versions`` row, which triggers bump on every change to its memories that can
    change them, and its memory count): its live memories, the document count of terms and,
    in the shared table, each live memory's token count and each searched term's BM25 share
    in each memory holding it. Filled as recalls ask; dropped when the key moves, so they are
    re-read only after writes. Each namespace's own: nothing here mixes data of two
    namespaces."""

    MAX_ENTRIES = 200_000
    """Entries kept at most per namespace (past that, read each time)."""

    __slots__ = ("df", "documents", "kept", "key", "postings", "sizes")

    def __init__(self, key: tuple[int, int] | None) -> None:
        self.key = key
        self.documents: int | None = None  # rows of the namespace's text table
        self.df: dict[str, int] = {}  # stem -> documents
        self.sizes: dict[int, int] | None = None  # shared table: rowid -> tokens
        # shared table: word -> {rowid: the word's BM25 term in that memory's score}
        self.postings: dict[str, dict[int, float]] = {}
        self.kept = 0  # entries of postings

    def keep(self, term: str, documents: int) -> None:
        if self.key is not None and len(self.df) < self.MAX_ENTRIES:
            self.df[term] = documents

    def keep_postings(self, stem: str, scores: dict[int, float]) -> None:
        if self.key is not None and self.entries() + len(scores) < self.MAX_ENTRIES:
            self.postings[stem] = scores
            self.kept += len(scores)

    def entries(self) -> int:
        return len(self.df) + len(self.sizes or ()) + self.kept


TEXT_STATS_NAMESPACES = 1_024
"""Namespaces whose statistics a store keeps (the least recently used go first)..."""
TEXT_STATS_ENTRIES = 1_000_000
"""... and entries they keep in all (about 100 bytes each)."""
_TEXT_STATS_LOCK = threading.Lock()


def _idf(documents: int, holding: int) -> float:
    """A term's inverse document frequency as FTS5's bm25() computes it."""
    value = math.log((documents - holding + 0.5) / (holding + 0.5))
    return value if value > 0 else 1e-6


def _fts_match(words: Sequence[str]) -> str | None:
    """An FTS5 MATCH expression for words: each a quoted literal (never query syntax), OR-ed;
    None without words."""
    quoted = ['"' + w.replace('"', '""') + '"' for w in dict.fromkeys(words) if w]
    return " OR ".join(quoted) if quoted else None


def filter_sql(flt: Filter, alias: str = "m", *, live: bool = True) -> tuple[str, list[Any]]:
    """SQL conditions (joined with AND, each starting with ' AND ') and their parameters.
    ``live``: invalidated memories do not match (every search; ``list`` by default)."""
    sql: list[str] = [f"{alias}.invalidated_at IS NULL"] if live else []
    params: list[Any] = []
    for name in ("user_id", "agent_id", "session_id"):
        value = getattr(flt, name)
        if value is not None:
            sql.append(f"{alias}.{name} = ?")
            params.append(value)
    for tag in flt.tags:
        sql.append(
            f"EXISTS (SELECT 1 FROM memory_tags t WHERE t.namespace = {alias}.namespace "
            f"AND t.tag = ? AND t.memory_rowid = {alias}.rowid)"
        )
        params.append(tag)
    for key, value in flt.metadata.items():
        # json_each matches the key as a literal: a JSON path cannot quote every key (")
        sql.append(f"(SELECT value FROM json_each({alias}.metadata) WHERE key = ?) = ?")
        params += [key, value]
    if flt.since is not None:
        sql.append(f"coalesce({alias}.occurred_at, {alias}.created_at) >= ?")
        params.append(us_from_datetime(flt.since))
    if flt.until is not None:
        sql.append(f"coalesce({alias}.occurred_at, {alias}.created_at) < ?")
        params.append(us_from_datetime(flt.until))
    return "".join(" AND " + s for s in sql), params


def _session_neighbors(conn: sqlite3.Connection, rowid: int) -> list[tuple[int, str]]:
    """(rowid, content) of up to CONTEXT_SPAN live (not invalidated) memories before and after
    ``rowid`` in its session, in order; none if it has no session."""
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT rowid, content FROM (SELECT n.rowid, n.content FROM memories m "
            "JOIN memories n ON n.namespace = m.namespace AND n.session_id = m.session_id "
            "AND n.rowid < m.rowid AND n.invalidated_at IS NULL WHERE m.rowid = ?1 "
            "ORDER BY n.rowid DESC LIMIT ?2) "
            "UNION ALL SELECT rowid, content FROM (SELECT n.rowid, n.content FROM memories m "
            "JOIN memories n ON n.namespace = m.namespace AND n.session_id = m.session_id "
            "AND n.rowid > m.rowid AND n.invalidated_at IS NULL WHERE m.rowid = ?1 "
            "ORDER BY n.rowid LIMIT ?2) "
            "ORDER BY rowid",
            (rowid, CONTEXT_SPAN),
        )
    ]


def _count(conn: sqlite3.Connection, namespace: str, *, memories: int = 0, facts: int = 0) -> None:
    """Adjust the namespace's stored counts (quotas read them) in the caller's transaction.

    Every statement that inserts or deletes memories or triples calls this with the number of
    rows it changed (negative for deletes), so the counts stay exact without ``COUNT(*)``.
    """
    if memories or facts:
        conn.execute(
            "INSERT INTO namespace_counts (namespace, memories, facts) VALUES (?, ?, ?) "
            "ON CONFLICT (namespace) DO UPDATE SET memories = memories + excluded.memories, "
            "facts = facts + excluded.facts",
            (namespace, memories, facts),
        )


# Forget's scrub (README "Forget means gone"): merging the FTS5 index rewrites all of it
# (about 0.4 s at 100,000 memories and 2 s at 300,000 on 2 cores), so larger stores batch it.
SCRUB_AT_ONCE_ROWS = 100_000
"""Up to this many memories a forget merges the text index before it returns."""
SCRUB_MIN_INTERVAL = 30.0
"""Above that, batched merges run at most this often (seconds)..."""
SCRUB_DUTY = 0.05
"""...and take at most this share of the time (a merge of t seconds waits t / SCRUB_DUTY)."""

log = logging.getLogger("engramdb")


def _made_for(metadata: str) -> str | None:
    """The fact id a memory was made for (``learn`` writes it as metadata ``triple_id``)."""
    try:
        value = orjson.loads(metadata).get("triple_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


REPLAY_SLACK_US = 600 * 1_000_000
"""A recorded response is claimed before its request writes (and the request may wait for the
write lock): one may start up to this long before the row it quotes was stored."""


def _drop_replays(
    conn: sqlite3.Connection, namespace: str, ids: Sequence[str], created: Sequence[int]
) -> None:
    """Drop recorded ``Idempotency-Key`` responses that mention removed memories or facts:
    every response quoting a memory or fact carries its id. Only responses recorded after the
    oldest of them was stored (less a slack) are read."""
    if not ids:
        return
    conn.execute(
        "DELETE FROM idempotency WHERE namespace = ? AND created_at >= ? AND status IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM json_each(?) j WHERE instr(body, CAST(j.value AS BLOB)))",
        (namespace, min(created, default=0) - REPLAY_SLACK_US, to_json(list(ids))),
    )


def next_vector_seq(conn: sqlite3.Connection) -> int:
    """The next unused sequence number of memory_vectors."""
    (seq,) = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM memory_vectors").fetchone()
    return int(seq)


def write_vectors(
    conn: sqlite3.Connection, items: Sequence[tuple[int, str, bytes, Sequence[Span], int]]
) -> None:
    """Store ``(rowid, model, embedding, spans, content length)`` embeddings: each memory's
    chunks replace any it had, numbered in chunk order after every sequence number taken."""
    if not items:
        return
    seq = next_vector_seq(conn)
    rows = []
    for rowid, model, embedding, spans, length in items:
        for chunk, vector, (start, end) in chunk_rows(embedding, spans, length):
            rows.append((rowid, chunk, model, vector, start, end, seq))
            seq += 1
    conn.executemany(
        "DELETE FROM memory_vectors WHERE memory_rowid = ?", [(item[0],) for item in items]
    )
    conn.executemany(
        "INSERT INTO memory_vectors (memory_rowid, chunk, model, vector, span_start, span_end, "
        "seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


class MemoriesMixin:
    """SQL for memories and triples; needs ``_read``/``_write`` from the store core."""

    _read: Any
    _write: Any
    _busy_timeout: float
    _closed: bool
    _connect: Callable[[], sqlite3.Connection]
    _data_version: Callable[[], int]
    scrub_at_once_rows: int = SCRUB_AT_ONCE_ROWS
    """Up to this many memories, forget merges the text index before it returns."""
    index_neighbors: bool = True
    """Index each session memory with its neighbours' text (the ``ctx`` column); off, the
    column is written empty (see :attr:`engramdb.store.base.Store.index_neighbors`)."""
    # one lock for every store of the process is enough: merges are rare (once per forget)
    _scrub_lock = threading.Lock()
    _scrub_state_lock = threading.Lock()
    _scrub_wanted = 0
    _scrub_done = 0
    _scrub_timer: threading.Timer | None = None
    _scrub_cost = 0.0
    _scrub_ended = 0.0

    def _reader(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._read()  # type: ignore[no-any-return]

    def _writer(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._write()  # type: ignore[no-any-return]

    def _text_table(self, conn: sqlite3.Connection, namespace: str) -> str:
        """The table holding the namespace's text: its own or the shared one (see .text). Own
        tables are kept once read outside a transaction (committed: a namespace never leaves
        its own table)."""
        tables: dict[str, str] = self.__dict__.setdefault("_text_tables", {})
        table = tables.get(namespace)
        if table is None:
            table = find_text_table(conn, namespace)
            if table != SHARED and not conn.in_transaction:
                tables[namespace] = table
        return table

    def _promote_if_large(self, conn: sqlite3.Connection, namespace: str) -> None:
        """Give the namespace a table of its own once it holds OWN_TABLE_AT live memories (in
        the write transaction that adds them)."""
        (stored,) = conn.execute(
            "SELECT coalesce((SELECT memories FROM namespace_counts WHERE namespace = ?), 0)",
            (namespace,),
        ).fetchone()
        if stored < text_layout.OWN_TABLE_AT or self._text_table(conn, namespace) != SHARED:
            return
        (live,) = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM memories INDEXED BY memories_live "
            "WHERE namespace = ? AND invalidated_at IS NULL LIMIT ?)",
            (namespace, text_layout.OWN_TABLE_AT),
        ).fetchone()
        if live >= text_layout.OWN_TABLE_AT:
            promote(conn, namespace)

    def _text_stats(
        self, conn: sqlite3.Connection, namespace: str, *, snapshot: bool = False
    ) -> TextStats:
        """The namespace's cached full-text statistics, valid for its data as of now (read
        on ``conn``). Inside a write transaction (whose writes may yet roll back) a fresh,
        unkept object; ``snapshot``: ``conn`` is in a read-only transaction."""
        if conn.in_transaction and not snapshot:
            return TextStats(None)
        version, memories = conn.execute(
            "SELECT (SELECT version FROM text_versions WHERE namespace = ?1), "
            "(SELECT memories FROM namespace_counts WHERE namespace = ?1)",
            (namespace,),
        ).fetchone()
        key = (int(version or 0), int(memories or 0))
        with _TEXT_STATS_LOCK:
            cache: OrderedDict[str, TextStats] | None = self.__dict__.get("_text_stats_cache")
            if cache is None:
                cache = self.__dict__["_text_stats_cache"] = OrderedDict()
            stats = cache.get(namespace)
            if stats is None or stats.key != key:
                stats = cache[namespace] = TextStats(key)
            cache.move_to_end(namespace)
            total = sum(kept.entries() for kept in cache.values())
            while len(cache) > 1 and (
                len(cache) > TEXT_STATS_NAMESPACES or total > TEXT_STATS_ENTRIES
            ):
                total -= cache.popitem(last=False)[1].entries()
        return stats

    # -- secrets ---------------------------------------------------------------------------
    def secret(self, name: str) -> bytes:
        with self._reader() as conn:
            row = conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return bytes(row[0])
        with self._writer() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)",
                (name, os.urandom(32)),
            )
            row = conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        return bytes(row[0])

    # -- writes ----------------------------------------------------------------------------
    def memory_insert(
        self, namespace: str, memories: Sequence[NewMemory]
    ) -> list[tuple[MemoryRecord, bool]]:
        if not memories:
            return []
        now = now_us()
        with self._writer() as conn:
            rows = []
            for m in memories:
                rows.append(
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
                        m.created_at or now,
                        now,
                    )
                )
            ids = to_json([m.id for m in memories])
            # ids stored before this call: a memory given the id of one of them (a re-sent
            # entry) is not new even though its id is found below
            before = {
                row[0]
                for row in conn.execute(
                    "SELECT id FROM memories WHERE id IN (SELECT value FROM json_each(?))", (ids,)
                )
            }
            # OR IGNORE skips memories identical to a stored one (the identity index) - they
            # are looked up below - and lets executemany insert the rest in one call.
            conn.executemany(
                "INSERT OR IGNORE INTO memories (id, namespace, user_id, agent_id, session_id, "
                "content, content_hash, tags, metadata, importance, occurred_at, created_at, "
                "updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                rows,
            )
            found = dict(
                conn.execute(
                    # unary + keeps SQLite on the id index instead of scanning the namespace
                    "SELECT id, rowid FROM memories WHERE id IN (SELECT value FROM json_each(?)) "
                    "AND +namespace = ?",
                    (ids, namespace),
                ).fetchall()
            )
            # the first entry with a new id is the one inserted (executemany runs in order)
            inserted: dict[str, int] = {}
            fresh: list[tuple[NewMemory, int]] = []
            for m in memories:
                if m.id in found and m.id not in before and m.id not in inserted:
                    inserted[m.id] = found[m.id]
                    fresh.append((m, found[m.id]))
            created = {id(m) for m, _ in fresh}
            _count(conn, namespace, memories=len(fresh))
            write_vectors(
                conn,
                [
                    (rowid, m.embedding_model, m.embedding, m.embedding_spans, len(m.content))
                    for m, rowid in fresh
                    if m.embedding is not None and m.embedding_model is not None
                ],
            )
            index_text(
                conn,
                self._text_table(conn, namespace),
                namespace,
                [(rowid, m.content, " ".join(m.tags), m.search_text) for m, rowid in fresh],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO memory_tags (namespace, tag, memory_rowid) VALUES (?, ?, ?)",
                [(namespace, tag, rowid) for m, rowid in fresh for tag in m.tags],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO memory_users (namespace, user_id) VALUES (?, ?)",
                {(namespace, m.user_id) for m, _ in fresh if m.user_id is not None},
            )
            in_sessions = [rowid for m, rowid in fresh if m.session_id is not None]
            self._refresh_context(conn, namespace, in_sessions, with_neighbors=True)
            self._promote_if_large(conn, namespace)
            out: list[tuple[MemoryRecord, bool]] = []
            for m in memories:
                if id(m) in created:
                    out.append((new_record(namespace, m, now), True))
                    continue
                existing = conn.execute(
                    f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = ? AND "
                    "coalesce(m.user_id, '') = ? AND coalesce(m.agent_id, '') = ? AND "
                    "coalesce(m.session_id, '') = ? AND m.content_hash = ?",
                    (
                        namespace,
                        m.user_id or "",
                        m.agent_id or "",
                        m.session_id or "",
                        m.content_hash,
                    ),
                ).fetchone()
                if existing is None:
                    from ...errors import ConflictError

                    raise ConflictError(f"a memory with id {m.id!r} already exists")
                record = memory_record(existing)
                self._merge_tags(conn, namespace, existing[0], record, m.tags, now)
                out.append((record, False))
        return out

    def _merge_tags(
        self,
        conn: sqlite3.Connection,
        namespace: str,
        rowid: int,
        old: MemoryRecord,
        tags: Sequence[str],
        now: int,
    ) -> None:
        """Add the tags ``old`` lacks (a new version; the prior one goes to history)."""
        added = tags_to_merge(old.tags, tags)
        if not added:
            return
        merged = [*old.tags, *added]
        conn.execute(
            "INSERT INTO memory_history (memory_id, version, content, tags, metadata, "
            "importance, replaced_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                old.id,
                old.version,
                old.content,
                to_json(list(old.tags)),
                to_json(old.metadata),
                old.importance,
                now,
            ),
        )
        conn.execute(
            "UPDATE memories SET tags = ?, version = version + 1, updated_at = ? WHERE rowid = ?",
            (to_json(merged), now, rowid),
        )
        conn.execute(
            f"UPDATE {self._text_table(conn, namespace)} SET tags = ? WHERE rowid = ?",
            (" ".join(merged), rowid),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO memory_tags (namespace, tag, memory_rowid) VALUES (?, ?, ?)",
            [(namespace, tag, rowid) for tag in added],
        )

    def _unindex_text(self, conn: sqlite3.Connection, namespace: str, rowid: int) -> None:
        conn.execute(f"DELETE FROM {self._text_table(conn, namespace)} WHERE rowid = ?", (rowid,))
        conn.execute("DELETE FROM text_parked WHERE memory_rowid = ?", (rowid,))
        conn.execute("DELETE FROM memory_tags WHERE memory_rowid = ?", (rowid,))

    @staticmethod
    def _next_embedding_seq(conn: sqlite3.Connection) -> int:
        return next_vector_seq(conn)

    def memory_update(
        self, namespace: str, memory_id: str, changes: MemoryChanges
    ) -> MemoryRecord | None:
        with self._writer() as conn:
            row = conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = ? AND m.id = ?",
                (namespace, memory_id),
            ).fetchone()
            if row is None:
                return None
            old = memory_record(row)
            now = now_us()
            conn.execute(
                "INSERT INTO memory_history (memory_id, version, content, tags, metadata, "
                "importance, replaced_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    old.id,
                    old.version,
                    old.content,
                    to_json(list(old.tags)),
                    to_json(old.metadata),
                    old.importance,
                    now,
                ),
            )
            content = changes.content if changes.content is not None else old.content
            tags = changes.tags if changes.tags is not None else old.tags
            sets = ["version = version + 1", "updated_at = ?"]
            params: list[Any] = [now]
            if changes.content is not None:
                sets += ["content = ?", "content_hash = ?"]
                params += [changes.content, changes.content_hash]
                # the old vectors describe the old text: they go (new ones replace them)
                conn.execute("DELETE FROM memory_vectors WHERE memory_rowid = ?", (row[0],))
                if changes.embedding is not None and changes.embedding_model is not None:
                    write_vectors(
                        conn,
                        [
                            (
                                row[0],
                                changes.embedding_model,
                                changes.embedding,
                                changes.embedding_spans,
                                len(changes.content),
                            )
                        ],
                    )
                conn.execute("INSERT INTO vector_removals (memory_rowid) VALUES (?)", (row[0],))
            if changes.tags is not None:
                sets.append("tags = ?")
                params.append(to_json(list(changes.tags)))
            if changes.metadata is not None:
                sets.append("metadata = ?")
                params.append(to_json(changes.metadata))
            if changes.importance is not None:
                sets.append("importance = ?")
                params.append(changes.importance)
            try:
                new = conn.execute(
                    f"UPDATE memories SET {', '.join(sets)} WHERE rowid = ? "
                    f"RETURNING {MEMORY_COLUMNS.replace('m.', '')}",
                    [*params, row[0]],
                ).fetchone()
            except sqlite3.IntegrityError:
                from ...errors import ConflictError

                raise ConflictError(
                    "an identical memory already exists in this scope; forget one of them "
                    "instead of updating this one to the same content"
                ) from None
            fts_sets, fts_params = ["content = ?", "tags = ?"], [content, " ".join(tags)]
            if changes.search_text is not None:
                fts_sets.append("meta = ?")
                fts_params.append(changes.search_text)
            conn.execute(  # (no row while invalidated: restore makes it again)
                f"UPDATE {self._text_table(conn, namespace)} "
                f"SET {', '.join(fts_sets)} WHERE rowid = ?",
                [*fts_params, row[0]],
            )
            if changes.search_text is not None:
                conn.execute(
                    "UPDATE text_parked SET meta = ? WHERE memory_rowid = ?",
                    (changes.search_text, row[0]),
                )
            if changes.tags is not None:
                conn.execute("DELETE FROM memory_tags WHERE memory_rowid = ?", (row[0],))
                conn.executemany(
                    "INSERT OR IGNORE INTO memory_tags (namespace, tag, memory_rowid) "
                    "VALUES (?, ?, ?)",
                    [(namespace, tag, row[0]) for tag in tags],
                )
            if changes.content is not None:  # the neighbours' context quotes this text
                self._refresh_context(conn, namespace, self._neighbor_rowids(conn, row[0]))
            return memory_record(new)

    def memory_reindex(self, namespace: str, search_texts: Mapping[str, str]) -> int:
        if not search_texts:
            return 0
        with self._writer() as conn:
            rows = conn.execute(
                "SELECT rowid, id FROM memories WHERE id IN (SELECT value FROM json_each(?)) "
                "AND +namespace = ?",
                (to_json(list(search_texts)), namespace),
            ).fetchall()
            if rows:
                metas = [(search_texts[memory_id], rowid) for rowid, memory_id in rows]
                table = self._text_table(conn, namespace)
                conn.executemany(f"UPDATE {table} SET meta = ? WHERE rowid = ?", metas)
                conn.executemany("UPDATE text_parked SET meta = ? WHERE memory_rowid = ?", metas)
            self._refresh_context(conn, namespace, [rowid for rowid, _ in rows])
            # the namespace's cached text statistics are stale now
            conn.execute(
                "INSERT INTO text_versions (namespace, version) VALUES (?, 1) "
                "ON CONFLICT (namespace) DO UPDATE SET version = version + 1",
                (namespace,),
            )
        return len(rows)

    @staticmethod
    def _neighbor_rowids(conn: sqlite3.Connection, rowid: int) -> list[int]:
        """Rowids of the memories within CONTEXT_SPAN of ``rowid`` in its session."""
        return [r for r, _ in _session_neighbors(conn, rowid)]

    def _refresh_context(
        self,
        conn: sqlite3.Connection,
        namespace: str,
        rowids: Sequence[int],
        *,
        with_neighbors: bool = False,
    ) -> None:
        """Rewrite the context column of ``rowids`` (and, if asked, of their neighbours):
        memories of ``namespace``, as their sessions are."""
        if not rowids:
            return
        todo: dict[int, None] = dict.fromkeys(rowids)
        updates: list[tuple[str, int]] = []
        done: set[int] = set()
        for rowid in list(todo):
            neighbors = _session_neighbors(conn, rowid)
            updates.append(("\n".join(text for _, text in neighbors), rowid))
            done.add(rowid)
            if with_neighbors:
                todo.update(dict.fromkeys(r for r, _ in neighbors if r not in todo))
        for rowid in todo:
            if rowid not in done:
                text = "\n".join(t for _, t in _session_neighbors(conn, rowid))
                updates.append((text, rowid))
        if not self.index_neighbors:  # nothing quotes a neighbour (and nothing stale stays)
            updates = [("", rowid) for _, rowid in updates]
        conn.executemany(
            f"UPDATE {self._text_table(conn, namespace)} SET ctx = ? WHERE rowid = ?",
            updates,
        )

    def memory_delete(
        self, namespace: str, memory_ids: Sequence[str], *, scrub: bool = False
    ) -> list[str]:
        with self._writer() as conn:
            created = {
                m: self._delete_memory(conn, namespace, m) for m in dict.fromkeys(memory_ids)
            }
            removed = [m for m, at in created.items() if at is not None]
            _drop_replays(
                conn, namespace, removed, [at for at in created.values() if at is not None]
            )
        if removed:
            self._deleted(namespace)
        if scrub:
            self._scrub()
        return removed

    def _delete_memory(
        self, conn: sqlite3.Connection, namespace: str, memory_id: str
    ) -> int | None:
        """Remove one memory everywhere (inside the caller's transaction). Returns its
        creation time, or ``None`` if there was no such memory."""
        found = conn.execute(
            "SELECT rowid FROM memories WHERE namespace = ? AND id = ?",
            (namespace, memory_id),
        ).fetchone()
        if found is None:
            return None
        neighbors = self._neighbor_rowids(conn, found[0])
        # (a trigger deletes its rows of memory_vectors)
        row = conn.execute(
            "DELETE FROM memories WHERE rowid = ? RETURNING rowid, EXISTS (SELECT 1 FROM "
            "memory_vectors WHERE memory_rowid = memories.rowid), metadata, user_id, created_at",
            (found[0],),
        ).fetchone()
        _count(conn, namespace, memories=-1)
        self._unindex_text(conn, namespace, row[0])
        # neighbours' context quoted this memory's text: it goes from there too
        self._refresh_context(conn, namespace, neighbors)
        conn.execute("DELETE FROM memory_history WHERE memory_id = ?", (memory_id,))
        conn.execute(
            "DELETE FROM memory_events WHERE namespace = ? AND memory_id = ?",
            (namespace, memory_id),
        )
        if row[1]:
            conn.execute("INSERT INTO vector_removals (memory_rowid) VALUES (?)", (row[0],))
        # the current fact this memory was made for goes with it; other links are cleared
        made_for = _made_for(row[2])
        if made_for is not None:
            fact = conn.execute(
                "DELETE FROM triples WHERE namespace = ? AND id = ? AND memory_id = ? "
                "AND valid_to IS NULL RETURNING id, created_at",
                (namespace, made_for, memory_id),
            ).fetchall()
            _drop_replays(conn, namespace, [r[0] for r in fact], [r[1] for r in fact])
            _count(conn, namespace, facts=-len(fact))
        conn.execute(
            "UPDATE triples SET memory_id = NULL WHERE namespace = ? AND memory_id = ?",
            (namespace, memory_id),
        )
        if row[3] is not None:  # a user whose last memory went is no longer a known name
            conn.execute(
                "DELETE FROM memory_users WHERE namespace = ?1 AND user_id = ?2 AND NOT EXISTS "
                "(SELECT 1 FROM memories WHERE namespace = ?1 AND user_id = ?2)",
                (namespace, row[3]),
            )
        return int(row[4])

    def _deleted(self, namespace: str) -> None:
        """Note a committed deletion (in ``namespace``) that the next scrub must cover."""
        with self._scrub_state_lock:
            self._scrub_wanted += 1
            self.__dict__.setdefault("_scrub_namespaces", set()).add(namespace)

    def _scrub(self) -> None:
        """Make deleted text unrecoverable from the files (see README "Forget means gone").

        ``secure_delete`` (set on every connection) zeroes deleted rows and freed pages, but
        an FTS5 index on SQLite < 3.44 only marks deletions: the forgotten words stay in older
        index segments until those are merged. ``optimize`` merges every segment into one,
        dropping them; a TRUNCATE checkpoint then copies the zeroed pages into the database
        and empties the WAL, which held the deleted text in earlier frames.

        The merge rewrites the whole index, so it runs before forget returns only while the
        index is small (``scrub_at_once_rows``); above that the checkpoint still runs at once
        (rows and WAL are clean) and the merge is batched: at most one per
        ``SCRUB_MIN_INTERVAL`` seconds and never more than ``SCRUB_DUTY`` of the time, on a
        timer, and at :meth:`close`. Nothing happens if nothing was deleted since the last
        scrub."""
        with self._scrub_state_lock:
            if self._scrub_done >= self._scrub_wanted:
                return
        with self._reader() as conn:
            (rows,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM memories").fetchone()
        if rows <= self.scrub_at_once_rows:
            self._merge()
            return
        with self._reader() as conn:
            self._checkpoint(conn)
        self._schedule_merge()

    def _merge(self, conn: sqlite3.Connection | None = None) -> None:
        """Merge the text index and checkpoint, on ``conn`` or this thread's connection.

        Concurrent callers share one merge (group commit): a merge that starts after a
        deletion committed covers it, so threads that waited meanwhile need not run another."""
        with self._scrub_state_lock:
            mine = self._scrub_wanted
        with self._scrub_lock:
            if self._scrub_done >= mine:
                return
            with self._scrub_state_lock:
                covers = self._scrub_wanted
                pending: set[str] = self.__dict__.setdefault("_scrub_namespaces", set())
                namespaces = set(pending)
            began = time.monotonic()
            if conn is None:
                with self._writer() as writer:
                    self._optimize(writer, namespaces)
                with self._reader() as reader:
                    self._checkpoint(reader)
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    self._optimize(conn, namespaces)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                self._checkpoint(conn)
            self._scrub_cost = time.monotonic() - began
            self._scrub_ended = time.monotonic()
            self._scrub_done = covers
            with self._scrub_state_lock:
                pending -= namespaces

    def _optimize(self, conn: sqlite3.Connection, namespaces: set[str]) -> None:
        """Merge the text tables of ``namespaces`` (those deleted from) into one segment each.
        The shared table too when one has a table of its own: the rows it had before its
        promotion were deleted from the shared table, whose segments keep their words until
        merged."""
        tables = {self._text_table(conn, namespace) for namespace in namespaces}
        if tables - {SHARED}:
            tables.add(SHARED)
        for table in sorted(tables):
            conn.execute(f"INSERT INTO {table} ({table}) VALUES ('optimize')")

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        # a TRUNCATE checkpoint waits for readers of the WAL and holds writers back meanwhile:
        # wait a second at most (a reader's old snapshot then keeps it from finishing; the
        # next scrub completes it)
        conn.execute("PRAGMA busy_timeout = 1000")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")

    def _schedule_merge(self) -> None:
        with self._scrub_state_lock:
            if self._scrub_timer is not None:
                return
            if not self._scrub_ended:  # the interval counts from the first deferred merge
                self._scrub_ended = time.monotonic()
            wait = max(SCRUB_MIN_INTERVAL, self._scrub_cost / SCRUB_DUTY)
            timer = threading.Timer(
                max(0.0, self._scrub_ended + wait - time.monotonic()), self._merge_due
            )
            timer.daemon = True
            self._scrub_timer = timer
        timer.start()

    def _merge_due(self) -> None:
        """The batched merge, on the timer's thread with a connection of its own."""
        with self._scrub_state_lock:
            self._scrub_timer = None
        if self._closed:
            return
        try:
            conn = self._connect()
            try:
                self._merge(conn)
            finally:
                conn.close()
        except Exception as exc:  # the next forget or close() tries again
            log.warning("merging the text index after forget failed: %s", exc)
            with self._scrub_state_lock:
                self._scrub_ended = time.monotonic()

    def _scrub_at_close(self) -> None:
        """Run a batched merge still waiting (called by ``close``): nothing forgotten lingers
        in the index of a closed store."""
        with self._scrub_state_lock:
            timer, self._scrub_timer = self._scrub_timer, None
            pending = self._scrub_done < self._scrub_wanted
        if timer is not None:
            timer.cancel()
        if pending:
            try:
                self._merge()
            except Exception as exc:  # a store that cannot write any more cannot merge either
                log.warning("merging the text index at close failed: %s", exc)

    def memory_set_embeddings(self, rows: Sequence[tuple[int, str, bytes, Sequence[Span]]]) -> None:
        if not rows:
            return
        with self._writer() as conn:
            lengths = dict(
                conn.execute(
                    "SELECT rowid, length(content) FROM memories WHERE rowid IN "
                    "(SELECT value FROM json_each(?))",
                    (to_json([r[0] for r in rows]),),
                ).fetchall()
            )
            present = [r for r in rows if r[0] in lengths]
            conn.executemany(
                "INSERT INTO vector_removals (memory_rowid) VALUES (?)", [(r[0],) for r in present]
            )
            write_vectors(
                conn,
                [(rowid, model, v, spans, lengths[rowid]) for rowid, model, v, spans in present],
            )

    # -- reads -----------------------------------------------------------------------------
    def memory_get(self, namespace: str, memory_id: str) -> MemoryRecord | None:
        with self._reader() as conn:
            row = conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = ? AND m.id = ?",
                (namespace, memory_id),
            ).fetchone()
        return memory_record(row) if row else None

    def memory_list(
        self,
        namespace: str,
        flt: Filter,
        *,
        after: int | None,
        limit: int,
        include_invalidated: bool = False,
    ) -> tuple[list[MemoryRecord], int | None]:
        where, params = filter_sql(flt, live=not include_invalidated)
        with self._reader() as conn:
            rows = conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = ? "
                f"AND m.rowid > ?{where} ORDER BY m.rowid LIMIT ?",
                [namespace, after or 0, *params, limit + 1],
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [memory_record(r) for r in rows], (rows[-1][0] if more and rows else None)

    def memory_history(self, namespace: str, memory_id: str) -> list[MemoryVersion]:
        with self._reader() as conn:
            if not conn.execute(
                "SELECT 1 FROM memories WHERE namespace = ? AND id = ?", (namespace, memory_id)
            ).fetchone():
                return []
            rows = conn.execute(
                "SELECT memory_id, version, content, tags, metadata, importance, replaced_at "
                "FROM memory_history WHERE memory_id = ? ORDER BY version",
                (memory_id,),
            ).fetchall()
        return [
            MemoryVersion(
                r[0],
                r[1],
                r[2],
                tuple(orjson.loads(r[3])),
                from_json(r[4]),
                r[5],
                datetime_from_us(r[6]),
            )
            for r in rows
        ]

    # -- invalidation and events (the memory manager) ---------------------------------------
    def memory_invalidate(
        self, namespace: str, memory_id: str, *, reason: str | None
    ) -> MemoryRecord | None:
        with self._writer() as conn:
            row = conn.execute(
                "UPDATE memories SET invalidated_at = ?, invalidated_reason = ? "
                "WHERE namespace = ? AND id = ? AND invalidated_at IS NULL RETURNING rowid, "
                "EXISTS (SELECT 1 FROM memory_vectors WHERE memory_rowid = memories.rowid)",
                (now_us(), reason, namespace, memory_id),
            ).fetchone()
            if row is not None:
                if row[1]:
                    # in-process vector indexes drop it (vector_changes skips invalidated rows)
                    conn.execute("INSERT INTO vector_removals (memory_rowid) VALUES (?)", (row[0],))
                park_text(conn, self._text_table(conn, namespace), row[0])
                # the session neighbours' indexed context no longer quotes its text
                self._refresh_context(conn, namespace, self._neighbor_rowids(conn, row[0]))
            found = conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = ? AND m.id = ?",
                (namespace, memory_id),
            ).fetchone()
        return memory_record(found) if found else None

    def memory_restore(self, namespace: str, memory_id: str) -> MemoryRecord | None:
        with self._writer() as conn:
            row = conn.execute(
                "SELECT rowid FROM memories WHERE namespace = ? "
                "AND id = ? AND invalidated_at IS NOT NULL",
                (namespace, memory_id),
            ).fetchone()
            if row is not None:
                conn.execute(
                    "UPDATE memories SET invalidated_at = NULL, invalidated_reason = NULL "
                    "WHERE rowid = ?",
                    (row[0],),
                )
                # fresh sequence numbers (chunk order kept): vector indexes take it back
                conn.execute(
                    "UPDATE memory_vectors SET seq = ? + chunk WHERE memory_rowid = ?",
                    (self._next_embedding_seq(conn), row[0]),
                )
                unpark_text(conn, self._text_table(conn, namespace), namespace, row[0])
                self._refresh_context(conn, namespace, [row[0]], with_neighbors=True)
                self._promote_if_large(conn, namespace)
            found = conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = ? AND m.id = ?",
                (namespace, memory_id),
            ).fetchone()
        return memory_record(found) if found else None

    def memory_event_add(self, namespace: str, events: Sequence[NewMemoryEvent]) -> int:
        if not events:
            return 0
        rows = event_rows(namespace, events, now_us())
        with self._writer() as conn:
            added = 0
            for values in rows:
                added += conn.execute(
                    "INSERT INTO memory_events (namespace, memory_id, at, action, reason, model, "
                    "prompt_version, session_id, item_seqs, details) "
                    "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS "
                    "(SELECT 1 FROM memories WHERE id = ?2 AND namespace = ?1)",
                    values,
                ).rowcount
        return added

    def memory_events(self, namespace: str, memory_id: str) -> list[MemoryEvent]:
        with self._reader() as conn:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM memory_events WHERE namespace = ? "
                "AND memory_id = ? ORDER BY seq",
                (namespace, memory_id),
            ).fetchall()
        return [event_record(r) for r in rows]

    def memory_ids(self, namespace: str, flt: Filter, *, limit: int | None) -> list[str]:
        where, params = filter_sql(flt, live=False)  # forget takes invalidated ones too
        sql = f"SELECT m.id FROM memories m WHERE m.namespace = ?{where} ORDER BY m.rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._reader() as conn:
            return [r[0] for r in conn.execute(sql, [namespace, *params])]

    def memory_text_search(
        self, namespace: str, query: TextQuery, flt: Filter, *, limit: int
    ) -> list[tuple[int, float]]:
        # BM25 over the namespace's own statistics only (never another tenant's): in its own
        # FTS5 table bm25() reads exactly those; in the shared table (small namespaces, see
        # .text) it is computed here from them. Either table holds live memories only, so
        # every match is a candidate.
        #
        # The candidates are bounded as on PostgreSQL: the newest TEXT_CANDIDATES matches
        # (at least ``limit``), found by FTS5 walking the matches newest first; only those
        # are scored. Recall has already dropped the namespace's commonest terms, so a query
        # reaches the bound only when even its rarest word is in thousands of memories;
        # below it every match is ranked.
        pairs = [(w, s) for w, s in zip(query.terms, query.stems, strict=False) if w and s]
        match = _fts_match([w for w, _ in pairs])
        if match is None or limit <= 0:
            return []
        where, params = filter_sql(flt)
        bound = max(limit, TEXT_CANDIDATES)
        with self._reader() as conn, self._text_snapshot(conn, namespace) as t:
            if t == SHARED:
                return self._shared_text_search(conn, namespace, pairs, match, flt, bound, limit)
            if params:  # a filter: each match's row is read to test it
                found = (
                    # CROSS JOIN keeps FTS5's matches, newest first, as the outer loop
                    f"SELECT {t}.rowid AS doc, bm25({t}, {_BM25_WEIGHTS}) AS bm25 FROM {t} "
                    f"CROSS JOIN memories m ON m.rowid = {t}.rowid WHERE {t} MATCH ? "
                    f"AND m.namespace = ?{where} ORDER BY {t}.rowid DESC LIMIT ?"
                )
                args = [match, namespace, *params, bound, limit]
            else:
                found = (
                    f"SELECT rowid AS doc, bm25({t}, {_BM25_WEIGHTS}) AS bm25 FROM {t} "
                    f"WHERE {t} MATCH ? ORDER BY rowid DESC LIMIT ?"
                )
                args = [match, bound, limit]
            rows = conn.execute(
                # bm25() is lower for better matches; ties: newest first
                f"SELECT doc, -bm25 FROM ({found}) ORDER BY bm25, doc DESC LIMIT ?",
                args,
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    @contextmanager
    def _text_snapshot(self, conn: sqlite3.Connection, namespace: str) -> Iterator[str]:
        """A read transaction on ``conn`` and the namespace's text table in it (a promotion
        committed between finding the table and reading it would hide the namespace's rows)."""
        table = self._text_table(conn, namespace)  # (own tables are kept: no query)
        conn.execute("BEGIN")
        try:
            yield find_text_table(conn, namespace) if table == SHARED else table
        finally:
            conn.execute("COMMIT")

    def _shared_text_search(
        self,
        conn: sqlite3.Connection,
        namespace: str,
        pairs: Sequence[tuple[str, str]],
        match: str,
        flt: Filter,
        bound: int,
        limit: int,
    ) -> list[tuple[int, float]]:
        """The text search of a namespace in the shared table: FTS5 finds its matches (the
        namespace's token in each query bounds the walk by the namespace's rows), BM25 is
        computed as FTS5's bm25() would in a table of the namespace's live memories alone."""
        stats = self._text_stats(conn, namespace, snapshot=True)
        # bm25() per phrase: each distinct query word (as the MATCH lists them), in order
        stem_of: dict[str, str] = {}
        for word, stem in pairs:
            stem_of.setdefault(word, stem)
        # each word's term of the score in each memory holding it: a function of the
        # namespace's data alone, so kept until it changes (a recall then reads only the
        # query's new words). Keyed by word: FTS5's tokenizer may not give a word the stem
        # recall computed ("us" -> "u"), so two words of one stem can match different rows.
        kept = stats.postings
        missing = [w for w in stem_of if w not in kept]
        fresh = self._shared_postings(conn, namespace, stats, missing) if missing else {}
        found: dict[str, dict[int, float]] = {}
        for word, stem in stem_of.items():  # a stem's rows: its last word's, as bm25() reads
            found[stem] = fresh[word] if word in fresh else kept[word]
            stats.keep(stem, len(found[stem]))
        where, params = filter_sql(flt)
        candidates: set[int] | None = None  # None: every match
        if params:  # a filter: the newest matches that pass it (each match's row is read)
            candidates = {
                r[0]
                for r in conn.execute(
                    f"SELECT f.rowid FROM {SHARED} f CROSS JOIN memories m ON m.rowid = f.rowid "
                    f"WHERE {SHARED} MATCH ? AND m.namespace = ?{where} "
                    "ORDER BY f.rowid DESC LIMIT ?",
                    [namespace_match(namespace, match), namespace, *params, bound],
                )
            }
        else:
            matched = {doc for stem in stem_of.values() for doc in found[stem]}
            if len(matched) > bound:  # the newest matches
                candidates = set(sorted(matched)[-bound:])
        # summed in the query's stem order, as bm25() does (a memory without the stem adds
        # nothing: its term is exactly 0)
        scores: dict[int, float] = {}
        for stem in stem_of.values():
            for doc, term in found[stem].items():
                if candidates is None or doc in candidates:
                    scores[doc] = scores.get(doc, 0.0) + term
        # best first, ties newest first
        best = heapq.nlargest(limit, zip(scores.values(), scores.keys(), strict=True))
        return [(doc, score) for score, doc in best]

    def _shared_postings(
        self,
        conn: sqlite3.Connection,
        namespace: str,
        stats: TextStats,
        words: Sequence[str],
    ) -> dict[str, dict[int, float]]:
        """Each word's BM25 term in each of the namespace's memories holding it (read with
        one FTS5 query per word), kept in ``stats``."""
        from ...search.query import index_stem

        sizes = self._shared_sizes(conn, namespace, stats)  # (its live rows only)
        # Each word's weighted frequency in each match, read back from FTS5's bm25() of the
        # word alone in the namespace's rows (the token's column weighs 0): that score is a
        # known function of the frequency and of the whole table's statistics (its row and
        # token counts, the word's document count, the row's length), so it inverts exactly.
        # Each query walks the namespace's matches of the word only (the AND with its
        # token); their number is the word's document count in the namespace.
        table_rows, table_tokens = table_totals(conn, SHARED)
        global_df = dict(
            conn.execute(
                f"SELECT term, doc FROM {term_vocabulary(conn, SHARED)} WHERE term IN "
                "(SELECT value FROM json_each(?))",
                (to_json(list({index_stem(w) for w in words})),),
            ).fetchall()
        )
        avgdl_all = table_tokens / table_rows if table_rows else 1.0
        documents = len(sizes)
        avgdl = sum(sizes.values()) / documents if documents else 1.0
        token = namespace_match(namespace)
        out: dict[str, dict[int, float]] = {}
        for word in words:
            rows = [
                (doc, score)
                for doc, score in conn.execute(
                    f"SELECT rowid, -bm25({SHARED}, {_BM25_WEIGHTS}, 0.0) FROM {SHARED} "
                    f"WHERE {SHARED} MATCH ?",
                    (f"{token} AND {_fts_match([word])}",),
                )
                if doc in sizes
            ]
            idf_all = _idf(table_rows, int(global_df.get(index_stem(word), 0)))
            idf = _idf(documents, len(rows))
            terms: dict[int, float] = {}
            for doc, score in rows:
                # the row's length there counts the token (one word) too
                norm = _K1 * (1 - _B + _B * (sizes[doc] + 1) / avgdl_all)
                share = score / (idf_all * (_K1 + 1.0))
                # (rounded: column weights have few decimals, and the last bits of the
                # inversion must not depend on other tenants' statistics)
                f = round(share * norm / (1 - share), 6)
                terms[doc] = idf * (
                    (f * (_K1 + 1.0)) / (f + _K1 * (1 - _B + _B * sizes[doc] / avgdl))
                )
            out[word] = terms
            stats.keep_postings(word, terms)
        return out

    def _shared_sizes(
        self, conn: sqlite3.Connection, namespace: str, stats: TextStats
    ) -> dict[int, int]:
        """A namespace of the shared table: its live memories' token counts (cached until it
        changes; ``stats``: its statistics as of ``conn``'s transaction)."""
        sizes = stats.sizes
        if sizes is None:
            sizes = {
                r[0]: text_sizes(r[1])
                for r in conn.execute(
                    f"SELECT d.id, d.sz FROM {SHARED}_docsize d WHERE d.id IN (SELECT rowid "
                    "FROM memories INDEXED BY memories_live WHERE namespace = ? "
                    "AND invalidated_at IS NULL)",
                    (namespace,),
                )
            }
            if stats.key is not None and stats.entries() + len(sizes) < stats.MAX_ENTRIES:
                stats.sizes = sizes
        return sizes

    def _shared_stats(
        self, conn: sqlite3.Connection, namespace: str, stems: Sequence[str]
    ) -> tuple[dict[int, int], dict[str, int]]:
        """A namespace of the shared table: its live memories' token counts and the number
        of them holding each of ``stems`` (cached until it changes)."""
        from ...search.query import index_stem

        stats = self._text_stats(conn, namespace, snapshot=True)
        sizes = self._shared_sizes(conn, namespace, stats)
        df = {t: stats.df[t] for t in stems if t in stats.df}
        unknown = [t for t in stems if t not in df]
        token = namespace_match(namespace)
        walk = []
        for term in unknown:
            if index_stem(term) == term:  # the tokenizer leaves it as it is: FTS5 counts
                (df[term],) = conn.execute(
                    f"SELECT count(*) FROM {SHARED} WHERE {SHARED} MATCH ?",
                    (f"{token} AND {_fts_match([term])}",),
                ).fetchone()
            else:  # (a stem the stemmer would change again: its postings are walked)
                walk.append(term)
        if walk and sizes:
            docs = sorted(sizes)
            read = dict(
                conn.execute(
                    f"SELECT i.term, count(DISTINCT i.doc) FROM {instance_vocabulary(conn)} i "
                    "WHERE i.term IN (SELECT value FROM json_each(?1)) AND i.col <> 'ns' "
                    "AND i.doc >= ?2 AND i.doc <= ?3 "
                    "AND i.doc IN (SELECT value FROM json_each(?4)) GROUP BY i.term",
                    (to_json(walk), docs[0], docs[-1], to_json(docs)),
                ).fetchall()
            )
            for term in walk:
                df[term] = int(read.get(term, 0))
        for term in unknown:
            df[term] = int(df.get(term, 0))
            stats.keep(term, df[term])
        return sizes, df

    def memory_tag_search(self, namespace: str, tag: str, flt: Filter, *, limit: int) -> list[int]:
        where, params = filter_sql(flt)
        with self._reader() as conn:
            rows = conn.execute(
                # the tag's entries drive (newest first, in its primary key's order): never a
                # walk of the namespace's memories probing each for the tag
                "SELECT m.rowid FROM memory_tags t CROSS JOIN memories m "
                f"ON m.rowid = t.memory_rowid WHERE t.namespace = ? AND t.tag = ? "
                f"AND m.namespace = ?{where} ORDER BY t.memory_rowid DESC LIMIT ?",
                [namespace, tag, namespace, *params, limit],
            ).fetchall()
        return [r[0] for r in rows]

    def memory_term_docs(
        self, namespace: str, stems: Sequence[str], *, at_most: int | None = None
    ) -> tuple[int, dict[str, int]]:
        terms = [t for t in dict.fromkeys(stems) if t]
        if not terms:
            return 0, {}
        with self._reader() as conn, self._text_snapshot(conn, namespace) as table:
            if table == SHARED:
                sizes, counts = self._shared_stats(conn, namespace, terms)
                documents = len(sizes)
            else:
                stats = self._text_stats(conn, namespace, snapshot=True)
                counts = {t: stats.df[t] for t in terms if t in stats.df}
                unknown = [t for t in terms if t not in counts]
                if unknown:
                    # the namespace's own table holds its memories only: its vocabulary's
                    # document counts are exactly the namespace's
                    read = dict(
                        conn.execute(
                            f"SELECT term, doc FROM {term_vocabulary(conn, table)} WHERE term "
                            "IN (SELECT value FROM json_each(?))",
                            (to_json(unknown),),
                        ).fetchall()
                    )
                    for term in unknown:
                        counts[term] = int(read.get(term, 0))
                        stats.keep(term, counts[term])
                if stats.documents is None:
                    stats.documents = live_documents(conn, table)
                documents = stats.documents
        cap = None if at_most is None else at_most + 1
        return documents, {t: n if cap is None else min(n, cap) for t, n in counts.items() if n}

    def memory_filter_rowids(self, namespace: str, flt: Filter, *, limit: int) -> list[int] | None:
        where, params = filter_sql(flt)
        with self._reader() as conn:
            rows = conn.execute(
                f"SELECT m.rowid FROM memories m WHERE m.namespace = ?{where} "
                "AND EXISTS (SELECT 1 FROM memory_vectors v WHERE v.memory_rowid = m.rowid) "
                "LIMIT ?",
                [namespace, *params, limit + 1],
            ).fetchall()
        return None if len(rows) > limit else [r[0] for r in rows]

    def memory_records(self, namespace: str, rowids: Sequence[int]) -> dict[int, MemoryRecord]:
        if not rowids:
            return {}
        rows = self._memory_rows(namespace, rowids, MEMORY_COLUMNS)
        return {r[0]: memory_record(r) for r in rows}

    def _memory_rows(
        self, namespace: str, rowids: Sequence[int], columns: str, *, live: bool = True
    ) -> list[Any]:
        """``columns`` (of ``memories m``) of the namespace's memories among ``rowids``, the
        invalidated ones too unless ``live``."""
        with self._reader() as conn:
            return conn.execute(
                # "+" keeps SQLite from scanning the namespace index instead of looking the
                # rowids up one by one
                f"SELECT {columns} FROM memories m WHERE +m.namespace = ? AND m.rowid IN "
                "(SELECT value FROM json_each(?))"
                + (" AND m.invalidated_at IS NULL" if live else ""),
                (namespace, to_json(list(rowids))),
            ).fetchall()

    def memory_times(self, namespace: str, rowids: Sequence[int]) -> dict[int, datetime]:
        if not rowids:
            return {}
        rows = self._memory_rows(
            namespace, rowids, "m.rowid, coalesce(m.occurred_at, m.created_at)"
        )
        return {r[0]: datetime_from_us(r[1]) for r in rows}

    def memory_vectors(self, namespace: str, rowids: Sequence[int]) -> dict[int, bytes]:
        if not rowids:
            return {}
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT v.memory_rowid, v.vector FROM memories m JOIN memory_vectors v "
                "ON v.memory_rowid = m.rowid WHERE +m.namespace = ? AND m.rowid IN "
                "(SELECT value FROM json_each(?)) ORDER BY v.memory_rowid, v.chunk",
                (namespace, to_json(list(rowids))),
            ).fetchall()
        out: dict[int, bytes] = {}
        for rowid, vector in rows:
            out[rowid] = out.get(rowid, b"") + vector
        return out

    def memory_adjacency(
        self, namespace: str, rowids: Sequence[int], *, neighbors: bool = True
    ) -> dict[int, Adjacency]:
        if not rowids:
            return {}
        if not neighbors:
            users = self._memory_rows(namespace, rowids, "m.rowid, m.user_id", live=False)
            return {r[0]: (r[1], None, None, None, None) for r in users}
        with self._reader() as conn:
            # one statement: each candidate's neighbours are index seeks on
            # (namespace, session_id, rowid), and their users come along (MATERIALIZED: else
            # SQLite runs each neighbour's subquery again for its join, twice the seeks)
            rows = conn.execute(
                "WITH a AS MATERIALIZED (SELECT m.rowid, m.user_id, "
                "(SELECT max(p.rowid) FROM memories p WHERE p.namespace = m.namespace AND "
                "p.session_id = m.session_id AND p.rowid < m.rowid) AS prev, "
                "(SELECT min(n.rowid) FROM memories n WHERE n.namespace = m.namespace AND "
                "n.session_id = m.session_id AND n.rowid > m.rowid) AS next "
                "FROM memories m WHERE +m.namespace = ? AND m.rowid IN "
                "(SELECT value FROM json_each(?))) "
                "SELECT a.rowid, a.user_id, a.prev, a.next, p.user_id, n.user_id FROM a "
                "LEFT JOIN memories p ON p.rowid = a.prev "
                "LEFT JOIN memories n ON n.rowid = a.next",
                (namespace, to_json(list(rowids))),
            ).fetchall()
        return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}

    def memory_users(self, namespace: str) -> list[str]:
        with self._reader() as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT user_id FROM memory_users WHERE namespace = ? LIMIT 10000", (namespace,)
                )
            ]

    def embedding_cache(
        self, model: str, hashes: Sequence[str]
    ) -> dict[str, tuple[bytes, tuple[Span, ...]]]:
        if not hashes:
            return {}
        with self._reader() as conn:
            # one memory per content hash (the lowest rowid embedded with the model), then
            # its chunks in order
            rows = conn.execute(
                "WITH pick AS (SELECT m.content_hash, min(m.rowid) AS rowid FROM memories m "
                "WHERE m.content_hash IN (SELECT value FROM json_each(?)) AND EXISTS "
                "(SELECT 1 FROM memory_vectors v WHERE v.memory_rowid = m.rowid AND "
                "v.model = ?) GROUP BY m.content_hash) "
                "SELECT p.content_hash, v.vector, v.span_start, v.span_end FROM pick p "
                "JOIN memory_vectors v ON v.memory_rowid = p.rowid ORDER BY p.rowid, v.chunk",
                (to_json(list(hashes)), model),
            ).fetchall()
        return gather_chunks(rows)

    def memory_without_embedding(
        self, model: str, *, after: int, limit: int
    ) -> list[tuple[int, str]]:
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT m.rowid, m.content FROM memories m WHERE m.rowid > ? AND NOT EXISTS "
                "(SELECT 1 FROM memory_vectors v WHERE v.memory_rowid = m.rowid AND "
                "v.chunk = 0 AND v.model = ?) ORDER BY m.rowid LIMIT ?",
                (after, model, limit),
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def memory_vector_search(
        self, namespace: str, vector: bytes, model: str, flt: Filter, *, limit: int
    ) -> list[VectorHit]:
        raise NotImplementedError("SQLite vectors are searched by engramdb.search.vectors")

    def vector_version(self) -> int:
        return self._data_version()

    def vector_changes(self, embedding_seq: int, removal_seq: int, *, limit: int) -> VectorDelta:
        with self._reader() as conn:
            conn.execute("BEGIN")  # one snapshot for both reads
            try:
                removed = conn.execute(
                    "SELECT seq, memory_rowid FROM vector_removals WHERE seq > ? ORDER BY seq",
                    (removal_seq,),
                ).fetchall()
                added = conn.execute(
                    "SELECT v.memory_rowid, m.namespace, v.model, v.vector, v.seq, m.session_id, "
                    "v.chunk, v.span_start, v.span_end FROM memory_vectors v "
                    "JOIN memories m ON m.rowid = v.memory_rowid WHERE v.seq > ? "
                    "AND m.invalidated_at IS NULL ORDER BY v.seq LIMIT ?",
                    (embedding_seq, limit),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        return VectorDelta(
            rowids=[r[0] for r in added],
            namespaces=[r[1] for r in added],
            models=[r[2] for r in added],
            vectors=[r[3] for r in added],
            sessions=[r[5] for r in added],
            chunks=[r[6] for r in added],
            spans=[(r[7], r[8]) for r in added],
            removed=[r[1] for r in removed],
            embedding_seq=added[-1][4] if added else embedding_seq,
            removal_seq=removed[-1][0] if removed else removal_seq,
        )

    def memory_stats(self, namespace: str) -> MemoryStats:
        with self._reader() as conn:
            memories, embedded = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM memory_vectors v "
                "WHERE v.memory_rowid = m.rowid)) FROM memories m WHERE m.namespace = ?",
                (namespace,),
            ).fetchone()
            triples, current = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE valid_to IS NULL) FROM triples "
                "WHERE namespace = ?",
                (namespace,),
            ).fetchone()
            sessions, items = conn.execute(
                "SELECT count(*), coalesce(sum(item_count), 0) FROM sessions WHERE namespace = ?",
                (namespace,),
            ).fetchone()
        return MemoryStats(namespace, memories, embedded, triples, current, sessions, items)

    # -- triples ---------------------------------------------------------------------------
    def triple_insert(self, namespace: str, triple: NewTriple) -> tuple[Triple, list[Triple], bool]:
        now = now_us()
        with self._writer() as conn:
            # the same fact already there: the current one, or the same closed interval
            if triple.valid_to is None:
                same = conn.execute(
                    f"SELECT {TRIPLE_COLUMNS} FROM triples WHERE namespace = ? AND subject = ? "
                    "AND predicate = ? AND object = ? AND valid_to IS NULL",
                    (namespace, triple.subject, triple.predicate, triple.object),
                ).fetchone()
            else:
                same = conn.execute(
                    f"SELECT {TRIPLE_COLUMNS} FROM triples WHERE namespace = ? AND subject = ? "
                    "AND predicate = ? AND object = ? AND valid_from = ? AND valid_to = ?",
                    (
                        namespace,
                        triple.subject,
                        triple.predicate,
                        triple.object,
                        triple.valid_from,
                        triple.valid_to,
                    ),
                ).fetchone()
            if same is not None:
                return triple_record(same), [], False
            superseded: list[Triple] = []
            if triple.single_valued:
                rows = conn.execute(
                    f"UPDATE triples SET valid_to = max(?, valid_from) WHERE namespace = ? AND "
                    "subject = ? AND predicate = ? AND valid_to IS NULL "
                    f"RETURNING {TRIPLE_COLUMNS}",
                    (triple.valid_from, namespace, triple.subject, triple.predicate),
                ).fetchall()
                superseded = [triple_record(r) for r in rows]
            row = conn.execute(
                "INSERT INTO triples (id, namespace, subject, predicate, object, confidence, "
                "source, valid_from, valid_to, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                f"RETURNING {TRIPLE_COLUMNS}",
                (
                    triple.id,
                    namespace,
                    triple.subject,
                    triple.predicate,
                    triple.object,
                    triple.confidence,
                    triple.source,
                    triple.valid_from,
                    triple.valid_to,
                    now,
                ),
            ).fetchone()
            _count(conn, namespace, facts=1)
        return triple_record(row), superseded, True

    def triple_query(
        self,
        namespace: str,
        *,
        subject: str | None,
        predicate: str | None,
        object: str | None,
        as_of: int | None,
        include_history: bool,
        limit: int,
    ) -> list[Triple]:
        sql = f"SELECT {TRIPLE_COLUMNS} FROM triples WHERE namespace = ?"
        params: list[Any] = [namespace]
        for column, value in (("subject", subject), ("predicate", predicate), ("object", object)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        if as_of is not None:
            sql += " AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)"
            params += [as_of, as_of]
        elif not include_history:
            sql += " AND valid_to IS NULL"
        sql += " ORDER BY valid_from, rowid LIMIT ?"
        params.append(limit)
        with self._reader() as conn:
            return [triple_record(r) for r in conn.execute(sql, params)]

    def triple_set_memory(self, namespace: str, triple_id: str, memory_id: str | None) -> None:
        with self._writer() as conn:
            conn.execute(
                "UPDATE triples SET memory_id = ? WHERE namespace = ? AND id = ?",
                (memory_id, namespace, triple_id),
            )

    def triple_ids(
        self, namespace: str, *, subject: str | None, predicate: str | None, object: str | None
    ) -> list[str]:
        sql = "SELECT id FROM triples WHERE namespace = ?"
        params: list[Any] = [namespace]
        for column, value in (("subject", subject), ("predicate", predicate), ("object", object)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        with self._reader() as conn:
            return [r[0] for r in conn.execute(sql + " ORDER BY valid_from, rowid", params)]

    def triple_delete(
        self, namespace: str, triple_ids: Sequence[str], *, scrub: bool = False
    ) -> list[str]:
        with self._writer() as conn:
            rows = conn.execute(
                "DELETE FROM triples WHERE namespace = ? AND id IN "
                "(SELECT value FROM json_each(?)) RETURNING id, memory_id, created_at",
                (namespace, to_json(list(triple_ids))),
            ).fetchall()
            _count(conn, namespace, facts=-len(rows))
            gone = [r[0] for r in rows]
            since = [r[2] for r in rows]
            for triple_id, memory_id, _ in rows:
                if memory_id is None:
                    continue
                meta = conn.execute(
                    "SELECT metadata FROM memories WHERE namespace = ? AND id = ?",
                    (namespace, memory_id),
                ).fetchone()
                if meta is not None and _made_for(meta[0]) == triple_id:
                    created = self._delete_memory(conn, namespace, memory_id)
                    if created is not None:
                        gone.append(memory_id)
                        since.append(created)
            _drop_replays(conn, namespace, gone, since)
        if rows:
            self._deleted(namespace)
        if scrub:
            self._scrub()
        removed = {r[0] for r in rows}
        return [t for t in dict.fromkeys(triple_ids) if t in removed]

    def triple_memory_ids(self, namespace: str, triple_ids: Sequence[str]) -> list[str]:
        if not triple_ids:
            return []
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT memory_id FROM triples WHERE namespace = ? AND memory_id IS NOT NULL "
                "AND id IN (SELECT value FROM json_each(?))",
                (namespace, to_json(list(triple_ids))),
            ).fetchall()
        return [r[0] for r in rows]
