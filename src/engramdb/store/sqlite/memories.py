"""Memories and triples in SQLite (mixed into :class:`SQLiteStore`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import orjson

from ...filters import Filter
from ...types import (
    MemoryRecord,
    MemoryStats,
    MemoryVersion,
    Triple,
    datetime_from_us,
    now_us,
    us_from_datetime,
)
from ..base import MemoryChanges, NewMemory, NewTriple, VectorDelta
from ..rows import (
    CONTEXT_SPAN,
    MEMORY_COLUMNS,
    TRIPLE_COLUMNS,
    from_json,
    memory_record,
    new_record,
    to_json,
    triple_record,
)

# bm25 column weights: content, tags, metadata values, neighbouring memories' text (LoCoMo:
# context at 0.3 lifted BM25 R@10 from 0.63 to 0.72; more weight made it worse)
_BM25 = "bm25(memories_fts, 1.0, 0.6, 0.3, 0.3)"


def filter_sql(flt: Filter, alias: str = "m") -> tuple[str, list[Any]]:
    """SQL conditions (joined with AND, each starting with ' AND ') and their parameters."""
    sql: list[str] = []
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
    """(rowid, content) of up to CONTEXT_SPAN memories before and after ``rowid`` in its
    session, in order; none if it has no session."""
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT rowid, content FROM (SELECT n.rowid, n.content FROM memories m "
            "JOIN memories n ON n.namespace = m.namespace AND n.session_id = m.session_id "
            "AND n.rowid < m.rowid WHERE m.rowid = ?1 ORDER BY n.rowid DESC LIMIT ?2) "
            "UNION ALL SELECT rowid, content FROM (SELECT n.rowid, n.content FROM memories m "
            "JOIN memories n ON n.namespace = m.namespace AND n.session_id = m.session_id "
            "AND n.rowid > m.rowid WHERE m.rowid = ?1 ORDER BY n.rowid LIMIT ?2) "
            "ORDER BY rowid",
            (rowid, CONTEXT_SPAN),
        )
    ]


class MemoriesMixin:
    """SQL for memories and triples; needs ``_read``/``_write`` from the store core."""

    _read: Any
    _write: Any
    _term_docs_cache: tuple[int, dict[str, int]] | None = None

    def _reader(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._read()  # type: ignore[no-any-return]

    def _writer(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._write()  # type: ignore[no-any-return]

    # -- writes ----------------------------------------------------------------------------
    def memory_insert(
        self, namespace: str, memories: Sequence[NewMemory]
    ) -> list[tuple[MemoryRecord, bool]]:
        if not memories:
            return []
        now = now_us()
        with self._writer() as conn:
            seq = self._next_embedding_seq(conn)
            rows = []
            for n, m in enumerate(memories):
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
                        m.embedding,
                        m.embedding_model,
                        seq + n if m.embedding is not None else None,
                    )
                )
            # OR IGNORE skips memories identical to a stored one (the identity index) - they
            # are looked up below - and lets executemany insert the rest in one call.
            conn.executemany(
                "INSERT OR IGNORE INTO memories (id, namespace, user_id, agent_id, session_id, "
                "content, content_hash, tags, metadata, importance, occurred_at, created_at, "
                "updated_at, version, embedding, embedding_model, embedding_seq) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
                rows,
            )
            inserted = dict(
                conn.execute(
                    # unary + keeps SQLite on the id index instead of scanning the namespace
                    "SELECT id, rowid FROM memories WHERE id IN (SELECT value FROM json_each(?)) "
                    "AND +namespace = ?",
                    (to_json([m.id for m in memories]), namespace),
                ).fetchall()
            )
            fresh = [(m, inserted[m.id]) for m in memories if m.id in inserted]
            conn.executemany(
                "INSERT INTO memories_fts (rowid, content, tags, meta, ctx) "
                "VALUES (?, ?, ?, ?, '')",
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
            self._refresh_context(conn, in_sessions, with_neighbors=True)
            out: list[tuple[MemoryRecord, bool]] = []
            for m in memories:
                if m.id in inserted:
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
                out.append((memory_record(existing), False))
        return out

    def _unindex_text(self, conn: sqlite3.Connection, rowid: int) -> None:
        conn.execute("DELETE FROM memories_fts WHERE rowid = ?", (rowid,))
        conn.execute("DELETE FROM memory_tags WHERE memory_rowid = ?", (rowid,))

    @staticmethod
    def _next_embedding_seq(conn: sqlite3.Connection) -> int:
        (seq,) = conn.execute("SELECT coalesce(max(embedding_seq), 0) + 1 FROM memories").fetchone()
        return int(seq)

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
                if changes.embedding is not None:
                    sets += ["embedding = ?", "embedding_model = ?", "embedding_seq = ?"]
                    params += [
                        changes.embedding,
                        changes.embedding_model,
                        self._next_embedding_seq(conn),
                    ]
                else:  # the old vector describes the old text: drop it
                    sets += ["embedding = NULL", "embedding_model = NULL", "embedding_seq = NULL"]
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
            conn.execute(
                f"UPDATE memories_fts SET {', '.join(fts_sets)} WHERE rowid = ?",
                [*fts_params, row[0]],
            )
            if changes.tags is not None:
                conn.execute("DELETE FROM memory_tags WHERE memory_rowid = ?", (row[0],))
                conn.executemany(
                    "INSERT OR IGNORE INTO memory_tags (namespace, tag, memory_rowid) "
                    "VALUES (?, ?, ?)",
                    [(namespace, tag, row[0]) for tag in tags],
                )
            if changes.content is not None:  # the neighbours' context quotes this text
                self._refresh_context(conn, self._neighbor_rowids(conn, row[0]))
            return memory_record(new)

    @staticmethod
    def _neighbor_rowids(conn: sqlite3.Connection, rowid: int) -> list[int]:
        """Rowids of the memories within CONTEXT_SPAN of ``rowid`` in its session."""
        return [r for r, _ in _session_neighbors(conn, rowid)]

    def _refresh_context(
        self, conn: sqlite3.Connection, rowids: Sequence[int], *, with_neighbors: bool = False
    ) -> None:
        """Rewrite the context column of ``rowids`` (and, if asked, of their neighbours)."""
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
        conn.executemany("UPDATE memories_fts SET ctx = ? WHERE rowid = ?", updates)

    def memory_delete(self, namespace: str, memory_ids: Sequence[str]) -> list[str]:
        removed: list[str] = []
        with self._writer() as conn:
            for memory_id in memory_ids:
                found = conn.execute(
                    "SELECT rowid FROM memories WHERE namespace = ? AND id = ?",
                    (namespace, memory_id),
                ).fetchone()
                if found is None:
                    continue
                neighbors = self._neighbor_rowids(conn, found[0])
                row = conn.execute(
                    "DELETE FROM memories WHERE rowid = ? RETURNING rowid, embedding_seq",
                    (found[0],),
                ).fetchone()
                self._unindex_text(conn, row[0])
                # neighbours' context quoted this memory's text: it goes from there too
                self._refresh_context(conn, neighbors)
                conn.execute("DELETE FROM memory_history WHERE memory_id = ?", (memory_id,))
                if row[1] is not None:
                    conn.execute("INSERT INTO vector_removals (memory_rowid) VALUES (?)", (row[0],))
                conn.execute(
                    "UPDATE triples SET memory_id = NULL WHERE namespace = ? AND memory_id = ?",
                    (namespace, memory_id),
                )
                removed.append(memory_id)
        return removed

    def memory_set_embeddings(self, rows: Sequence[tuple[int, str, bytes]]) -> None:
        with self._writer() as conn:
            seq = self._next_embedding_seq(conn)
            for n, (rowid, model, vector) in enumerate(rows):
                conn.execute(
                    "UPDATE memories SET embedding = ?, embedding_model = ?, embedding_seq = ? "
                    "WHERE rowid = ?",
                    (vector, model, seq + n, rowid),
                )
                conn.execute("INSERT INTO vector_removals (memory_rowid) VALUES (?)", (rowid,))

    # -- reads -----------------------------------------------------------------------------
    def memory_get(self, namespace: str, memory_id: str) -> MemoryRecord | None:
        with self._reader() as conn:
            row = conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = ? AND m.id = ?",
                (namespace, memory_id),
            ).fetchone()
        return memory_record(row) if row else None

    def memory_list(
        self, namespace: str, flt: Filter, *, after: int | None, limit: int
    ) -> tuple[list[MemoryRecord], int | None]:
        where, params = filter_sql(flt)
        with self._reader() as conn:
            rows = conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = ? "
                f"AND m.rowid > ?{where} ORDER BY m.rowid LIMIT ?",
                [namespace, after or 0, *params, limit + 1],
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [memory_record(r) for r in rows], (rows[-1][0] if more and rows else None)

    def memory_export(
        self, namespace: str, *, after: int, limit: int
    ) -> list[tuple[int, MemoryRecord]]:
        with self._reader() as conn:
            rows = conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = ? AND m.rowid > ? "
                "ORDER BY m.rowid LIMIT ?",
                (namespace, after, limit),
            ).fetchall()
        return [(r[0], memory_record(r)) for r in rows]

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

    def memory_ids(self, namespace: str, flt: Filter, *, limit: int | None) -> list[str]:
        where, params = filter_sql(flt)
        sql = f"SELECT m.id FROM memories m WHERE m.namespace = ?{where} ORDER BY m.rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._reader() as conn:
            return [r[0] for r in conn.execute(sql, [namespace, *params])]

    def memory_text_search(
        self, namespace: str, match: str, flt: Filter, *, limit: int
    ) -> list[tuple[int, float]]:
        where, params = filter_sql(flt)
        with self._reader() as conn:
            rows = conn.execute(
                f"SELECT m.rowid, {_BM25} AS score FROM memories_fts "
                "JOIN memories m ON m.rowid = memories_fts.rowid "
                f"WHERE memories_fts MATCH ? AND m.namespace = ?{where} "
                "ORDER BY score LIMIT ?",
                [match, namespace, *params, limit],
            ).fetchall()
        # bm25() is lower-is-better; flip it so every lane's score is higher-is-better
        return [(r[0], -r[1]) for r in rows]

    def memory_tag_search(self, namespace: str, tag: str, flt: Filter, *, limit: int) -> list[int]:
        where, params = filter_sql(flt)
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT m.rowid FROM memory_tags t JOIN memories m ON m.rowid = t.memory_rowid "
                f"WHERE t.namespace = ? AND t.tag = ? AND m.namespace = ?{where} "
                "ORDER BY m.rowid DESC LIMIT ?",
                [namespace, tag, namespace, *params, limit],
            ).fetchall()
        return [r[0] for r in rows]

    def memory_term_docs(self, stems: Sequence[str]) -> tuple[int, dict[str, int]]:
        if not stems:
            return 0, {}
        with self._reader() as conn:
            (total,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM memories_fts").fetchone()
            # counting a term's documents walks its whole posting list: remember the counts
            # while the index has grown by less than 5%
            cache = self._term_docs_cache
            if not cache or not cache[0] <= total <= cache[0] * 1.05:
                cache = self._term_docs_cache = (int(total), {})
            counts = cache[1]
            missing = [s for s in stems if s not in counts]
            if missing:
                found = dict(
                    conn.execute(
                        "SELECT term, doc FROM memories_fts_terms WHERE term IN "
                        "(SELECT value FROM json_each(?))",
                        (to_json(missing),),
                    ).fetchall()
                )
                counts.update({s: int(found.get(s, 0)) for s in missing})
        return int(total), {s: counts[s] for s in stems if counts[s]}

    def memory_filter_rowids(self, namespace: str, flt: Filter, *, limit: int) -> list[int] | None:
        where, params = filter_sql(flt)
        with self._reader() as conn:
            rows = conn.execute(
                f"SELECT m.rowid FROM memories m WHERE m.namespace = ?{where} "
                "AND m.embedding IS NOT NULL LIMIT ?",
                [namespace, *params, limit + 1],
            ).fetchall()
        return None if len(rows) > limit else [r[0] for r in rows]

    def memory_records(self, namespace: str, rowids: Sequence[int]) -> dict[int, MemoryRecord]:
        if not rowids:
            return {}
        with self._reader() as conn:
            rows = conn.execute(
                # "+" keeps SQLite from scanning the namespace index instead of looking the
                # rowids up one by one
                f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE +m.namespace = ? AND m.rowid IN "
                "(SELECT value FROM json_each(?))",
                (namespace, to_json(list(rowids))),
            ).fetchall()
        return {r[0]: memory_record(r) for r in rows}

    def memory_vectors(self, namespace: str, rowids: Sequence[int]) -> dict[int, bytes]:
        if not rowids:
            return {}
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT rowid, embedding FROM memories WHERE +namespace = ? AND rowid IN "
                "(SELECT value FROM json_each(?)) AND embedding IS NOT NULL",
                (namespace, to_json(list(rowids))),
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def memory_adjacency(
        self, namespace: str, rowids: Sequence[int]
    ) -> dict[int, tuple[str | None, int | None, int | None]]:
        if not rowids:
            return {}
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT m.rowid, m.user_id, "
                "(SELECT max(p.rowid) FROM memories p WHERE p.namespace = m.namespace AND "
                "p.session_id = m.session_id AND p.rowid < m.rowid), "
                "(SELECT min(n.rowid) FROM memories n WHERE n.namespace = m.namespace AND "
                "n.session_id = m.session_id AND n.rowid > m.rowid) "
                "FROM memories m WHERE +m.namespace = ? AND m.rowid IN "
                "(SELECT value FROM json_each(?))",
                (namespace, to_json(list(rowids))),
            ).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def memory_users(self, namespace: str) -> list[str]:
        with self._reader() as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT user_id FROM memory_users WHERE namespace = ? LIMIT 10000", (namespace,)
                )
            ]

    def embedding_cache(self, model: str, hashes: Sequence[str]) -> dict[str, bytes]:
        if not hashes:
            return {}
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT content_hash, embedding FROM memories WHERE content_hash IN "
                "(SELECT value FROM json_each(?)) AND embedding_model = ? "
                "AND embedding IS NOT NULL GROUP BY content_hash",
                (to_json(list(hashes)), model),
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def memory_without_embedding(
        self, model: str, *, after: int, limit: int
    ) -> list[tuple[int, str]]:
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT rowid, content FROM memories WHERE rowid > ? AND "
                "(embedding_model IS NULL OR embedding_model != ?) ORDER BY rowid LIMIT ?",
                (after, model, limit),
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def memory_vector_search(
        self, namespace: str, vector: bytes, model: str, flt: Filter, *, limit: int
    ) -> list[tuple[int, float]]:
        raise NotImplementedError("SQLite vectors are searched by engramdb.search.vectors")

    def vector_changes(self, embedding_seq: int, removal_seq: int, *, limit: int) -> VectorDelta:
        with self._reader() as conn:
            conn.execute("BEGIN")  # one snapshot for both reads
            try:
                removed = conn.execute(
                    "SELECT seq, memory_rowid FROM vector_removals WHERE seq > ? ORDER BY seq",
                    (removal_seq,),
                ).fetchall()
                added = conn.execute(
                    "SELECT rowid, namespace, embedding_model, embedding, embedding_seq, "
                    "session_id FROM memories WHERE embedding_seq > ? "
                    "ORDER BY embedding_seq LIMIT ?",
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
            removed=[r[1] for r in removed],
            embedding_seq=added[-1][4] if added else embedding_seq,
            removal_seq=removed[-1][0] if removed else removal_seq,
        )

    def memory_stats(self, namespace: str) -> MemoryStats:
        with self._reader() as conn:
            memories, embedded = conn.execute(
                "SELECT count(*), count(embedding) FROM memories WHERE namespace = ?",
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
            same = conn.execute(
                f"SELECT {TRIPLE_COLUMNS} FROM triples WHERE namespace = ? AND subject = ? AND "
                "predicate = ? AND object = ? AND valid_to IS NULL",
                (namespace, triple.subject, triple.predicate, triple.object),
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
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) "
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
                    now,
                ),
            ).fetchone()
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
