"""Memories and triples in PostgreSQL (mixed into :class:`PostgresStore`).

Full text is a generated ``tsvector`` column with a GIN index; queries are OR-ed
``plainto_tsquery`` lexemes of the words the facade's query builder chose, so no user text is
ever parsed as tsquery syntax. Per-namespace lexeme document counts (``memory_terms``, kept by
triggers) let recall drop a query's commonest words first, and one search ranks at most the
newest :data:`TEXT_CANDIDATES` matches. Vectors are pgvector values in their own table
(``memory_vectors``, one row per memory and chunk), searched through a per-dimension HNSW index
(cosine, over halfvec copies with pgvector >= 0.7: :func:`vector_index`) — or exactly, for a
namespace of at most :data:`EXACT_VECTORS` memories; filters are
part of the same SQL query, and iterative index scans keep a filtered search returning enough
rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
import orjson
import psycopg
from psycopg import sql

from ...errors import ConflictError
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
from .migrations import TEXT_CONFIG
from .vectors import Vector

Conn = psycopg.Connection[tuple[Any, ...]]
_T = TypeVar("_T")

# ts_rank weights {D, C, B, A}: neighbours' context (D) 0.3, metadata values (C) 0.3, tags (B)
# 0.6, content (A) 1.0: the same proportions as SQLite's bm25 column weights
_RANK_WEIGHTS = [0.3, 0.3, 0.6, 1.0]
# a memory's context is the text of its live (not invalidated) session neighbours
_SAME_SESSION = (
    "n.namespace = m.namespace AND n.session_id = m.session_id AND n.invalidated_at IS NULL"
)
_NEAR = (
    f"(SELECT n.rowid, n.content FROM memories n WHERE {_SAME_SESSION} AND n.rowid < m.rowid "
    f"ORDER BY n.rowid DESC LIMIT {CONTEXT_SPAN}) UNION ALL "
    f"(SELECT n.rowid, n.content FROM memories n WHERE {_SAME_SESSION} AND n.rowid > m.rowid "
    f"ORDER BY n.rowid LIMIT {CONTEXT_SPAN})"
)


def _neighbor_rowids(conn: Conn, rowids: Sequence[int]) -> list[int]:
    """Rowids within CONTEXT_SPAN of ``rowids`` in their sessions."""
    if not rowids:
        return []
    return [
        int(r[0])
        for r in conn.execute(
            f"SELECT DISTINCT x.rowid FROM memories m CROSS JOIN LATERAL ({_NEAR}) x "
            "WHERE m.rowid = ANY(%s::bigint[]) AND m.session_id IS NOT NULL",
            (list(rowids),),
        )
    ]


def _refresh_context(conn: Conn, rowids: Sequence[int], *, neighbors: bool = True) -> None:
    """Rewrite the context text of ``rowids`` from their current session neighbours (with
    ``neighbors=False``, the store's ``index_neighbors`` off: make it empty)."""
    if not rowids:
        return
    if not neighbors:
        conn.execute(
            "UPDATE memories SET context_text = '' WHERE rowid = ANY(%s::bigint[]) "
            "AND context_text <> ''",
            (sorted(set(rowids)),),
        )
        return
    conn.execute(
        "UPDATE memories m SET context_text = coalesce((SELECT string_agg(x.content, E'\\n' "
        f"ORDER BY x.rowid) FROM ({_NEAR}) x), '') "
        "WHERE m.rowid = ANY(%s::bigint[]) AND m.session_id IS NOT NULL",
        (sorted(set(rowids)),),
    )


def _merge_tags(
    conn: Conn, namespace: str, rowid: int, old: MemoryRecord, tags: Sequence[str], now: int
) -> None:
    """Add the tags ``old`` lacks (a new version; the prior one goes to history)."""
    added = tags_to_merge(old.tags, tags)
    if not added:
        return
    merged = [*old.tags, *added]
    conn.execute(
        "INSERT INTO memory_history (memory_id, version, content, tags, metadata, importance, "
        "replaced_at) SELECT id, version, content, tags, metadata, importance, %s "
        "FROM memories WHERE rowid = %s",
        (now, rowid),
    )
    conn.execute(
        "UPDATE memories SET tags = %s, tag_text = %s, version = version + 1, updated_at = %s "
        "WHERE rowid = %s",
        (to_json(merged), " ".join(merged), now, rowid),
    )
    conn.cursor().executemany(
        "INSERT INTO memory_tags (namespace, tag, memory_rowid) VALUES (%s, %s, %s) "
        "ON CONFLICT DO NOTHING",
        [(namespace, tag.lower(), rowid) for tag in added],
    )


MAX_EF_SEARCH = 1000
# a namespace of at most this many memories is searched exactly, by its own rows, not by
# the HNSW graph all namespaces share (see memory_vector_search)
EXACT_VECTORS = 5_000
# rows an iterative HNSW scan may visit before it gives up (pgvector's default is 20,000): a
# filter that keeps one row in N needs about N * limit visits to fill the limit
MAX_SCAN_TUPLES = 200_000


def vector_index(dim: int, *, half: bool) -> tuple[str, str] | None:
    """The name of ``dim``'s HNSW index and the type its vectors are cast to, or ``None`` if
    that dimension gets no index. With pgvector >= 0.7 (``half``) the index holds halfvec
    copies (migration 12: half the size, same neighbours; up to 4,000 dimensions), before
    float4 ones (up to 2,000)."""
    if half:
        return (f"memory_vectors_half_{dim}", "halfvec") if 0 < dim <= 4000 else None
    return (f"memory_vectors_hnsw_{dim}", "vector") if 0 < dim <= 2000 else None


def vector_search_settings(limit: int, *, iterative: bool) -> dict[str, str]:
    """The pgvector settings of one HNSW search for ``limit`` rows, set per query.

    ``hnsw.ef_search`` (the candidate list the graph walk keeps) is the limit (at least 40,
    pgvector's default, at most its maximum): a walk returns at most ef_search rows, so it
    must be at least the limit, and the walk's cost grows with it — at 100k vectors, twice the
    limit (the earlier setting) took twice as long (51 → 26 ms for 200 rows, `bench
    vectors`). With iterative scans (pgvector >= 0.8) the walk resumes while filters reject
    rows, so a filtered search still fills its limit; the budget of visited rows scales with
    the limit too. Relaxed order: the rows are sorted by their exact score afterwards anyway
    (strict order would drop a resumed row that comes nearer than one already returned).
    """
    settings = {"hnsw.ef_search": str(min(max(40, limit), MAX_EF_SEARCH))}
    if iterative:
        settings["hnsw.iterative_scan"] = "relaxed_order"
        settings["hnsw.max_scan_tuples"] = str(min(max(20_000, 200 * limit), MAX_SCAN_TUPLES))
    return settings


# the newest-first walk visits about candidates * namespace / matches rows, the GIN bitmap
# the matches themselves at about this many times the cost each (100k memories: a word in
# 4,000 of them took 29 ms walking, 13 ms from the bitmap; one in 16,000, 10 ms and 32 ms)
_BITMAP_ROW_COST = 6


def text_search_sql(words: int, where: str) -> str:
    """The text search for ``words`` words (OR-ed) and a filter (:func:`filter_sql`).

    Parameters: the candidate bound, namespace, the words joined by spaces, namespace; then
    the rank weights, and twice the words, namespace, filter values and candidate bound (one
    set per side); then the limit.

    The candidate set is bounded: the newest ``TEXT_CANDIDATES`` matches (at least the limit)
    are ranked, not every row sharing a word. Recall has already dropped the namespace's
    commonest terms (memory_term_docs), so a query reaches the bound only when even its
    rarest word is in thousands of memories; below it, every match is ranked. The newest
    matches come from one of two sides, whichever is cheaper for the words' document counts
    (``memory_terms``): a walk through the namespace's rows newest first that stops at the
    bound (a word in most rows), or every match from the GIN index, sorted (a rarer word:
    there the walk would pass tens of thousands of rows). Each side sits behind its half of
    that test (a one-time filter: only one runs); the planner alone walked for a word in 4%
    of 100k rows, 2-3x slower.
    """
    # OR of per-word plainto_tsquery: each word becomes lexemes, never tsquery syntax
    tsquery = " || ".join([f"plainto_tsquery('{TEXT_CONFIG}'::regconfig, %s)"] * words)
    side = (
        f"SELECT m.rowid, m.fts, q.q FROM memories m, (SELECT {tsquery} AS q) q "
        f"WHERE m.fts @@ q.q AND m.namespace = %s{where} AND <gate> ORDER BY <order> DESC LIMIT %s"
    )
    return (
        # the documents of the words' lexemes (an upper bound of the matches)
        "WITH walk AS MATERIALIZED (SELECT "
        f"{_BITMAP_ROW_COST} * d.docs * d.docs > %s::bigint * coalesce(max(n.memories), 0) "
        "AS walk FROM (SELECT coalesce(sum(t.docs), 0) AS docs FROM memory_terms t "
        "WHERE t.namespace = %s AND t.lexeme = ANY(tsvector_to_array("
        f"to_tsvector('{TEXT_CONFIG}'::regconfig, %s)))) d "
        "LEFT JOIN namespace_counts n ON n.namespace = %s GROUP BY d.docs) "
        "SELECT c.rowid, ts_rank(%s::real[], c.fts, c.q, 1) AS score FROM (("
        + side.replace("<gate>", "(SELECT walk FROM walk)").replace("<order>", "m.rowid")
        + ") UNION ALL ("
        # rowid + 0: not the rowid index's order, so the matches come from the GIN index
        + side.replace("<gate>", "NOT (SELECT walk FROM walk)").replace("<order>", "m.rowid + 0")
        + ")) c ORDER BY score DESC, c.rowid DESC LIMIT %s"
    )


def _delete_memories(
    conn: Conn, namespace: str, memory_ids: Sequence[str], *, neighbors: bool = True
) -> list[str]:
    """Remove memories everywhere (inside the caller's transaction); the ids removed, in the
    order given. A current fact a memory was made for (metadata ``triple_id``) goes too."""
    # tags go with their memory (ON DELETE CASCADE); the tsvector and the vector are
    # columns of the row itself, so every index forgets it at once
    _count(conn, namespace)  # lock the namespace's counts first
    gone = conn.execute(
        "SELECT rowid FROM memories WHERE namespace = %s AND id = ANY(%s)",
        (namespace, list(memory_ids)),
    ).fetchall()
    near = _neighbor_rowids(conn, [int(r[0]) for r in gone])
    rows = conn.execute(
        "DELETE FROM memories WHERE namespace = %s AND id = ANY(%s) "
        "RETURNING id, metadata, user_id, created_at",
        (namespace, list(memory_ids)),
    ).fetchall()
    removed = [str(r[0]) for r in rows]
    _count(conn, namespace, memories=-len(removed))
    if removed:  # the neighbours' context no longer quotes the removed text
        _refresh_context(conn, near, neighbors=neighbors)
        conn.execute("DELETE FROM memory_history WHERE memory_id = ANY(%s)", (removed,))
        conn.execute(
            "DELETE FROM memory_events WHERE namespace = %s AND memory_id = ANY(%s)",
            (namespace, removed),
        )
        made = [(str(r[0]), t) for r in rows if (t := _made_for(r[1])) is not None]
        if made:
            facts = conn.execute(
                "DELETE FROM triples WHERE namespace = %s AND valid_to IS NULL AND "
                "(memory_id, id) IN (SELECT * FROM unnest(%s::text[], %s::text[])) "
                "RETURNING id, created_at",
                (namespace, [m for m, _ in made], [t for _, t in made]),
            ).fetchall()
            _count(conn, namespace, facts=-len(facts))
            _drop_replays(conn, namespace, [str(r[0]) for r in facts], [int(r[1]) for r in facts])
        conn.execute(
            "UPDATE triples SET memory_id = NULL WHERE namespace = %s AND memory_id = ANY(%s)",
            (namespace, removed),
        )
        users = sorted({str(r[2]) for r in rows if r[2] is not None})
        if users:  # a user whose last memory went is no longer a known name
            conn.execute(
                "DELETE FROM memory_users u WHERE u.namespace = %s AND u.user_id = ANY(%s) "
                "AND NOT EXISTS (SELECT 1 FROM memories m WHERE m.namespace = u.namespace "
                "AND m.user_id = u.user_id)",
                (namespace, users),
            )
        _drop_replays(conn, namespace, removed, [int(r[3]) for r in rows])
    order = {memory_id: n for n, memory_id in enumerate(memory_ids)}
    return sorted(removed, key=order.__getitem__)


REPLAY_SLACK_US = 600 * 1_000_000
"""A recorded response is claimed before its request writes (and the request may wait for a
lock): one may start up to this long before the row it quotes was stored."""


def _drop_replays(conn: Conn, namespace: str, ids: Sequence[str], created: Sequence[int]) -> None:
    """Drop recorded ``Idempotency-Key`` responses that mention removed memories or facts:
    every response quoting a memory or fact carries its id. Only responses recorded after the
    oldest of them was stored (less a slack) are read."""
    if not ids:
        return
    conn.execute(
        "DELETE FROM idempotency WHERE namespace = %s AND created_at >= %s "
        "AND status IS NOT NULL AND EXISTS (SELECT 1 FROM unnest(%s::text[]) i "
        "WHERE position(convert_to(i, 'UTF8') in body) > 0)",
        (namespace, min(created, default=0) - REPLAY_SLACK_US, list(ids)),
    )


def _made_for(metadata: object) -> str | None:
    """The fact id a memory was made for (``learn`` writes it as metadata ``triple_id``)."""
    try:
        value = orjson.loads(metadata) if isinstance(metadata, (str, bytes)) else None
    except orjson.JSONDecodeError:
        return None
    found = value.get("triple_id") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def filter_sql(flt: Filter, alias: str = "m", *, live: bool = True) -> tuple[str, list[Any]]:
    """SQL conditions (each starting with ' AND ') and their parameters. ``live``:
    invalidated memories do not match (every search; ``list`` by default)."""
    conds: list[str] = [f"{alias}.invalidated_at IS NULL"] if live else []
    params: list[Any] = []
    for name in ("user_id", "agent_id", "session_id"):
        value = getattr(flt, name)
        if value is not None:
            conds.append(f"{alias}.{name} = %s")
            params.append(value)
    for tag in flt.tags:
        conds.append(
            f"EXISTS (SELECT 1 FROM memory_tags t WHERE t.memory_rowid = {alias}.rowid "
            "AND t.namespace = " + alias + ".namespace AND t.tag = lower(%s))"
        )
        params.append(tag)
    for key, value in flt.metadata.items():
        text = orjson.dumps(value).decode()
        if "\\u0000" in text or "\x00" in key:
            conds.append("FALSE")  # jsonb cannot hold NUL, so no stored value can equal it
            continue
        # metadata is stored as the JSON text given; rows whose text jsonb cannot read (a NUL
        # escape) are skipped instead of failing the whole query
        conds.append(
            f"(CASE WHEN strpos({alias}.metadata, '\\u0000') = 0 "
            f"THEN {alias}.metadata::jsonb -> %s END) = %s::jsonb"
        )
        params += [key, text]
    if flt.since is not None:
        conds.append(f"coalesce({alias}.occurred_at, {alias}.created_at) >= %s")
        params.append(us_from_datetime(flt.since))
    if flt.until is not None:
        conds.append(f"coalesce({alias}.occurred_at, {alias}.created_at) < %s")
        params.append(us_from_datetime(flt.until))
    return "".join(" AND " + c for c in conds), params


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _dim(vector: bytes | None, spans: Sequence[Span] = ()) -> int | None:
    """The dimension of an embedding's vectors (``spans``: its chunks, see ``chunk_rows``)."""
    return len(vector) // 4 // max(1, len(spans)) if vector is not None else None


def write_vectors(
    conn: Conn,
    namespace: str,
    items: Sequence[tuple[int, str, bytes, Sequence[Span], int]],
) -> None:
    """Store ``(rowid, model, embedding, spans, content length)`` embeddings in
    memory_vectors: each memory's chunks replace any it had."""
    if not items:
        return
    rows = [
        (rowid, chunk, namespace, model, len(vector) // 4, Vector(vector), start, end)
        for rowid, model, embedding, spans, length in items
        for chunk, vector, (start, end) in chunk_rows(embedding, spans, length)
    ]
    conn.execute(
        "DELETE FROM memory_vectors WHERE memory_rowid = ANY(%s::bigint[])",
        ([item[0] for item in items],),
    )
    conn.cursor().executemany(
        "INSERT INTO memory_vectors (memory_rowid, chunk, namespace, model, dim, embedding, "
        "span_start, span_end) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        rows,
    )


def _count(conn: Conn, namespace: str, *, memories: int = 0, facts: int = 0) -> None:
    """Adjust the namespace's stored counts (quotas read them) in the caller's transaction.

    Every statement that inserts or deletes memories or triples calls this with the number of
    rows it changed (negative for deletes), so the counts stay exact without ``COUNT(*)``.
    Called with no change, it only takes the row lock: writers call it first, so writers of
    one namespace queue on this row before touching anything else (no lock-order deadlocks).
    """
    conn.execute(
        "INSERT INTO namespace_counts (namespace, memories, facts) VALUES (%s, %s, %s) "
        "ON CONFLICT (namespace) DO UPDATE SET memories = namespace_counts.memories "
        "+ excluded.memories, facts = namespace_counts.facts + excluded.facts",
        (namespace, memories, facts),
    )


class MemoriesMixin:
    """SQL for memories and triples; needs ``run``/``read`` from the store core."""

    _indexed_dims: set[int]
    _iterative_scan: bool
    _halfvec: bool
    index_neighbors: bool = True
    """Index each session memory with its neighbours' text (``context_text``); off, it is
    written empty (see :attr:`engramdb.store.base.Store.index_neighbors`)."""

    def run(self, work: Callable[[Conn], _T], *, write: bool = True) -> _T:
        raise NotImplementedError

    def read(self, work: Callable[[Conn], _T]) -> _T:
        raise NotImplementedError

    def _unit_conn(self) -> Conn | None:
        raise NotImplementedError

    # -- vector indexes --------------------------------------------------------------------
    def ensure_vector_index(self, dims: set[int]) -> None:
        """Create the HNSW index for each new embedding dimension (once, before writing)."""
        indexes = {d: index for d in dims if (index := vector_index(d, half=self._halfvec))}
        todo = {d for d in indexes if d not in self._indexed_dims}
        if not todo:
            return

        def missing(conn: Conn) -> set[int]:
            # a catalog lookup takes no table lock: the DDL below runs only for a new index
            return {
                dim
                for dim in todo
                if conn.execute("SELECT to_regclass(%s) IS NULL", (indexes[dim][0],)).fetchone()
                == (True,)
            }

        def work(conn: Conn) -> None:
            from .migrations import MIGRATION_LOCK

            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            # again under the lock: CREATE INDEX IF NOT EXISTS would lock the table even when
            # another writer has just created the index (a deadlock with inserting writers)
            for dim in sorted(missing(conn)):
                name, kind = indexes[dim]
                conn.execute(
                    sql.SQL(
                        "CREATE INDEX IF NOT EXISTS {name} ON memory_vectors USING hnsw "
                        "((embedding::{kind}({dim})) {ops}) WHERE dim = {dim}"
                    ).format(
                        name=sql.Identifier(name),
                        kind=sql.SQL(kind),
                        dim=sql.Literal(dim),
                        ops=sql.SQL(f"{kind}_cosine_ops"),
                    )
                )

        in_unit = self._unit_conn() is not None
        if self.read(missing):
            self.run(work)
            if in_unit:  # created inside a unit of work that may still roll back: check again
                return
        self._indexed_dims |= todo

    # -- secrets ---------------------------------------------------------------------------
    def secret(self, name: str) -> bytes:
        def work(conn: Conn) -> bytes:
            conn.execute(
                "INSERT INTO secrets (name, value) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (name, os.urandom(32)),
            )
            row = conn.execute("SELECT value FROM secrets WHERE name = %s", (name,)).fetchone()
            assert row is not None
            return bytes(row[0])

        found = self.read(
            lambda conn: conn.execute(
                "SELECT value FROM secrets WHERE name = %s", (name,)
            ).fetchone()
        )
        return bytes(found[0]) if found is not None else self.run(work)

    # -- writes ----------------------------------------------------------------------------
    def memory_insert(
        self, namespace: str, memories: Sequence[NewMemory]
    ) -> list[tuple[MemoryRecord, bool]]:
        if not memories:
            return []
        now = now_us()
        if self._unit_conn() is not None:
            # in a unit of work, take the namespace's counts row before an index may be created
            # (the DDL locks the table): writers of one namespace then never wait on each other
            # in opposite orders
            self.run(lambda conn: _count(conn, namespace))
        self.ensure_vector_index(
            {d for m in memories if (d := _dim(m.embedding, m.embedding_spans))}
        )
        rows = [
            (
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
                m.created_at or now,
                now,
            )
            for m in memories
        ]

        def work(conn: Conn) -> list[tuple[MemoryRecord, bool]]:
            _count(conn, namespace)  # lock the namespace's counts first
            inserted: dict[str, int] = {}
            with conn.cursor() as cur:
                # DO NOTHING skips memories identical to a stored one (the identity index) and
                # ids already taken; both are looked up below
                cur.executemany(
                    "INSERT INTO memories (id, namespace, user_id, agent_id, session_id, "
                    "content, content_hash, tags, tag_text, metadata, search_text, importance, "
                    "occurred_at, created_at, updated_at, version) VALUES (%s, %s, %s, %s, %s, "
                    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1) ON CONFLICT DO NOTHING "
                    "RETURNING id, rowid",
                    rows,
                    returning=True,
                )
                while True:
                    for memory_id, rowid in cur.fetchall():
                        inserted[memory_id] = rowid
                    if not cur.nextset():
                        break
            _count(conn, namespace, memories=len(inserted))
            write_vectors(
                conn,
                namespace,
                [
                    (
                        inserted[m.id],
                        m.embedding_model,
                        m.embedding,
                        m.embedding_spans,
                        len(m.content),
                    )
                    for m in memories
                    if m.id in inserted and m.embedding is not None and m.embedding_model
                ],
            )
            tag_rows = [
                (namespace, tag.lower(), inserted[m.id])
                for m in memories
                if m.id in inserted
                for tag in m.tags
            ]
            if tag_rows:
                conn.cursor().executemany(
                    "INSERT INTO memory_tags (namespace, tag, memory_rowid) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    tag_rows,
                )
            in_sessions = [inserted[m.id] for m in memories if m.id in inserted and m.session_id]
            _refresh_context(
                conn,
                [*in_sessions, *_neighbor_rowids(conn, in_sessions)],
                neighbors=self.index_neighbors,
            )
            users = sorted({m.user_id for m in memories if m.id in inserted and m.user_id})
            if users:
                conn.execute(
                    "INSERT INTO memory_users (namespace, user_id) SELECT %s, u "
                    "FROM unnest(%s::text[]) AS u ON CONFLICT DO NOTHING",
                    (namespace, users),
                )
            out: list[tuple[MemoryRecord, bool]] = []
            for m in memories:
                if m.id in inserted:
                    out.append((new_record(namespace, m, now), True))
                    continue
                existing = conn.execute(
                    f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = %s AND "
                    "coalesce(m.user_id, '') = %s AND coalesce(m.agent_id, '') = %s AND "
                    "coalesce(m.session_id, '') = %s AND m.content_hash = %s FOR UPDATE",
                    (
                        namespace,
                        m.user_id or "",
                        m.agent_id or "",
                        m.session_id or "",
                        m.content_hash,
                    ),
                ).fetchone()
                if existing is None:
                    raise ConflictError(f"a memory with id {m.id!r} already exists")
                record = memory_record(existing)
                _merge_tags(conn, namespace, int(existing[0]), record, m.tags, now)
                out.append((record, False))
            return out

        return self.run(work)

    def memory_update(
        self, namespace: str, memory_id: str, changes: MemoryChanges
    ) -> MemoryRecord | None:
        if changes.embedding is not None and changes.content is not None:
            self.ensure_vector_index(
                {len(changes.embedding) // 4 // max(1, len(changes.embedding_spans))}
            )

        def work(conn: Conn) -> MemoryRecord | None:
            # the namespace's counts row first, as every writer of its text takes it: the
            # word counts (memory_terms) are then only ever changed by one writer at a time
            _count(conn, namespace)
            row = conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = %s AND m.id = %s "
                "FOR UPDATE",
                (namespace, memory_id),
            ).fetchone()
            if row is None:
                return None
            old = memory_record(row)
            now = now_us()
            conn.execute(
                "INSERT INTO memory_history (memory_id, version, content, tags, metadata, "
                "importance, replaced_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    old.id,
                    old.version,
                    old.content,
                    row[7],
                    row[8],
                    old.importance,
                    now,
                ),
            )
            sets = ["version = version + 1", "updated_at = %s"]
            params: list[Any] = [now]
            if changes.content is not None:
                sets += ["content = %s", "content_hash = %s"]
                params += [changes.content, changes.content_hash]
                # the old vectors describe the old text: they go (new ones replace them)
                conn.execute("DELETE FROM memory_vectors WHERE memory_rowid = %s", (row[0],))
                if changes.embedding is not None and changes.embedding_model is not None:
                    write_vectors(
                        conn,
                        namespace,
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
            if changes.tags is not None:
                sets += ["tags = %s", "tag_text = %s"]
                params += [to_json(list(changes.tags)), " ".join(changes.tags)]
            if changes.metadata is not None:
                sets.append("metadata = %s")
                params.append(to_json(changes.metadata))
            if changes.search_text is not None:
                sets.append("search_text = %s")
                params.append(changes.search_text)
            if changes.importance is not None:
                sets.append("importance = %s")
                params.append(changes.importance)
            try:
                with conn.transaction():
                    new = conn.execute(
                        f"UPDATE memories m SET {', '.join(sets)} WHERE rowid = %s "
                        f"RETURNING {MEMORY_COLUMNS}",
                        [*params, row[0]],
                    ).fetchone()
            except psycopg.errors.UniqueViolation:
                raise ConflictError(
                    "an identical memory already exists in this scope; forget one of them "
                    "instead of updating this one to the same content"
                ) from None
            assert new is not None
            if changes.content is not None:  # the neighbours' context quotes this text
                _refresh_context(
                    conn, _neighbor_rowids(conn, [row[0]]), neighbors=self.index_neighbors
                )
            if changes.tags is not None:
                conn.execute("DELETE FROM memory_tags WHERE memory_rowid = %s", (row[0],))
                conn.cursor().executemany(
                    "INSERT INTO memory_tags (namespace, tag, memory_rowid) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    [(namespace, tag.lower(), row[0]) for tag in changes.tags],
                )
            return memory_record(new)

        return self.run(work)

    def memory_reindex(self, namespace: str, search_texts: Mapping[str, str]) -> int:
        if not search_texts:
            return 0

        def work(conn: Conn) -> int:
            _count(conn, namespace)  # lock the namespace's counts first (neighbours' text)
            rows = conn.execute(
                "UPDATE memories m SET search_text = x.text FROM unnest(%s::text[], %s::text[]) "
                "AS x(id, text) WHERE m.namespace = %s AND m.id = x.id RETURNING m.rowid",
                (list(search_texts), list(search_texts.values()), namespace),
            ).fetchall()
            _refresh_context(conn, [int(r[0]) for r in rows], neighbors=self.index_neighbors)
            return len(rows)

        return self.run(work)

    def memory_delete(
        self, namespace: str, memory_ids: Sequence[str], *, scrub: bool = False
    ) -> list[str]:
        # scrub: nothing to do in-process. A deleted row is a dead tuple until VACUUM makes
        # its space reusable (VACUUM FULL rewrites the table); see README "Forget means gone".
        if not memory_ids:
            return []
        return self.run(
            lambda conn: _delete_memories(
                conn, namespace, memory_ids, neighbors=self.index_neighbors
            )
        )

    def memory_set_embeddings(self, rows: Sequence[tuple[int, str, bytes, Sequence[Span]]]) -> None:
        if not rows:
            return
        self.ensure_vector_index({d for _, _, v, spans in rows if (d := _dim(v, spans))})

        def work(conn: Conn) -> None:
            found = conn.execute(
                "SELECT rowid, namespace, char_length(content) FROM memories "
                "WHERE rowid = ANY(%s::bigint[]) FOR UPDATE",
                ([r[0] for r in rows],),
            ).fetchall()
            where = {int(r[0]): (str(r[1]), int(r[2])) for r in found}
            by_namespace: dict[str, list[tuple[int, str, bytes, Sequence[Span], int]]] = {}
            for rowid, model, vectors, spans in rows:
                if rowid in where:
                    ns, length = where[rowid]
                    by_namespace.setdefault(ns, []).append((rowid, model, vectors, spans, length))
            for ns, items in by_namespace.items():
                write_vectors(conn, ns, items)

        self.run(work)

    # -- reads -----------------------------------------------------------------------------
    def memory_get(self, namespace: str, memory_id: str) -> MemoryRecord | None:
        row = self.read(
            lambda conn: conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = %s AND m.id = %s",
                (namespace, memory_id),
            ).fetchone()
        )
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
        rows = self.read(
            lambda conn: conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = %s "
                f"AND m.rowid > %s{where} ORDER BY m.rowid LIMIT %s",
                [namespace, after or 0, *params, limit + 1],
            ).fetchall()
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return [memory_record(r) for r in rows], (rows[-1][0] if more and rows else None)

    def memory_history(self, namespace: str, memory_id: str) -> list[MemoryVersion]:
        rows = self.read(
            lambda conn: conn.execute(
                "SELECT h.memory_id, h.version, h.content, h.tags, h.metadata, h.importance, "
                "h.replaced_at FROM memory_history h WHERE h.memory_id = %s AND EXISTS "
                "(SELECT 1 FROM memories m WHERE m.namespace = %s AND m.id = h.memory_id) "
                "ORDER BY h.version",
                (memory_id, namespace),
            ).fetchall()
        )
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
        def work(conn: Conn) -> MemoryRecord | None:
            _count(conn, namespace)  # lock the namespace's counts first (neighbours' text)
            # the vector is a column of the row: pgvector searches skip it by the filter
            changed = conn.execute(
                "UPDATE memories SET invalidated_at = %s, invalidated_reason = %s "
                "WHERE namespace = %s AND id = %s AND invalidated_at IS NULL RETURNING rowid",
                (now_us(), reason, namespace, memory_id),
            ).fetchone()
            if changed is not None:  # the neighbours' context no longer quotes its text
                _refresh_context(
                    conn,
                    _neighbor_rowids(conn, [int(changed[0])]),
                    neighbors=self.index_neighbors,
                )
            row = conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = %s AND m.id = %s",
                (namespace, memory_id),
            ).fetchone()
            return memory_record(row) if row else None

        return self.run(work)

    def memory_restore(self, namespace: str, memory_id: str) -> MemoryRecord | None:
        def work(conn: Conn) -> MemoryRecord | None:
            _count(conn, namespace)  # lock the namespace's counts first (neighbours' text)
            changed = conn.execute(
                "UPDATE memories SET invalidated_at = NULL, invalidated_reason = NULL "
                "WHERE namespace = %s AND id = %s AND invalidated_at IS NOT NULL RETURNING rowid",
                (namespace, memory_id),
            ).fetchone()
            if changed is not None:  # it and its neighbours quote each other again
                rowid = int(changed[0])
                _refresh_context(
                    conn,
                    [rowid, *_neighbor_rowids(conn, [rowid])],
                    neighbors=self.index_neighbors,
                )
            row = conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.namespace = %s AND m.id = %s",
                (namespace, memory_id),
            ).fetchone()
            return memory_record(row) if row else None

        return self.run(work)

    def memory_event_add(self, namespace: str, events: Sequence[NewMemoryEvent]) -> int:
        if not events:
            return 0
        rows = event_rows(namespace, events, now_us())

        def work(conn: Conn) -> int:
            added = 0
            for values in rows:
                added += conn.execute(
                    "INSERT INTO memory_events (namespace, memory_id, at, action, reason, model, "
                    "prompt_version, session_id, item_seqs, details) "
                    "SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s WHERE EXISTS "
                    "(SELECT 1 FROM memories WHERE id = %s AND namespace = %s)",
                    (*values, values[1], values[0]),
                ).rowcount
            return added

        return self.run(work)

    def memory_events(self, namespace: str, memory_id: str) -> list[MemoryEvent]:
        rows = self.read(
            lambda conn: conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM memory_events WHERE namespace = %s "
                "AND memory_id = %s ORDER BY seq",
                (namespace, memory_id),
            ).fetchall()
        )
        return [event_record(r) for r in rows]

    def memory_ids(self, namespace: str, flt: Filter, *, limit: int | None) -> list[str]:
        where, params = filter_sql(flt, live=False)  # forget takes invalidated ones too
        query = f"SELECT m.id FROM memories m WHERE m.namespace = %s{where} ORDER BY m.rowid"
        args: list[Any] = [namespace, *params]
        if limit is not None:
            query += " LIMIT %s"
            args.append(limit)
        return self.read(lambda conn: [str(r[0]) for r in conn.execute(query, args)])

    def memory_text_search(
        self, namespace: str, query: TextQuery, flt: Filter, *, limit: int
    ) -> list[tuple[int, float]]:
        # ts_rank scores a document from its own text only (no corpus statistics), so no
        # other namespace's data can move a score
        terms = [t for t in dict.fromkeys(query.terms) if t.strip() and "\x00" not in t]
        if not terms or limit <= 0:
            return []
        where, params = filter_sql(flt)
        candidates = max(limit, TEXT_CANDIDATES)
        match = [*terms, namespace, *params]
        args = [
            *[candidates, namespace, " ".join(terms), namespace],
            *[_RANK_WEIGHTS, *match, candidates, *match, candidates, limit],
        ]
        # planned for these words every time (never a prepared generic plan): the right scan
        # depends on how common they are, which a generic plan cannot know
        text = text_search_sql(len(terms), where)
        rows = self.read(lambda conn: conn.execute(text, args, prepare=False).fetchall())
        return [(int(r[0]), float(r[1])) for r in rows]

    def memory_tag_search(self, namespace: str, tag: str, flt: Filter, *, limit: int) -> list[int]:
        if not tag or "\x00" in tag or len(tag) > 512:
            return []  # no stored tag can be this
        where, params = filter_sql(flt)
        query = (
            "SELECT m.rowid FROM memory_tags t JOIN memories m ON m.rowid = t.memory_rowid "
            f"WHERE t.namespace = %s AND t.tag = lower(%s) AND m.namespace = %s{where} "
            "ORDER BY m.rowid DESC LIMIT %s"
        )
        args = [namespace, tag, namespace, *params, limit]
        rows = self.read(lambda conn: conn.execute(query, args).fetchall())
        return [int(r[0]) for r in rows]

    def memory_term_docs(
        self, namespace: str, stems: Sequence[str], *, at_most: int | None = None
    ) -> tuple[int, dict[str, int]]:
        # memory_terms holds each lexeme's document count per namespace (kept by triggers,
        # migration 9); a stem is counted as the lexeme(s) the text configuration makes of it,
        # the rarest of them if several (plainto_tsquery ANDs them). Exact counts: at_most
        # needs no cap.
        terms = [t for t in dict.fromkeys(stems) if t and "\x00" not in t]
        if not terms:
            return 0, {}

        rows = self.read(
            lambda conn: conn.execute(
                "SELECT c.total, d.stem, d.docs FROM (SELECT (SELECT memories FROM "
                "namespace_counts WHERE namespace = %s) AS total) c LEFT JOIN ("
                "SELECT s.stem, min(coalesce(t.docs, 0)) AS docs FROM unnest(%s::text[]) s(stem) "
                f"CROSS JOIN LATERAL unnest(to_tsvector('{TEXT_CONFIG}'::regconfig, s.stem)) l "
                "LEFT JOIN memory_terms t ON t.namespace = %s AND t.lexeme = l.lexeme "
                "GROUP BY s.stem) d ON true",
                (namespace, terms, namespace),
            ).fetchall()
        )
        total = int(rows[0][0] or 0) if rows else 0
        return total, {str(r[1]): int(r[2]) for r in rows if r[1] is not None and r[2]}

    def memory_filter_rowids(self, namespace: str, flt: Filter, *, limit: int) -> list[int] | None:
        where, params = filter_sql(flt)
        query = (
            f"SELECT m.rowid FROM memories m WHERE m.namespace = %s{where} "
            "AND EXISTS (SELECT 1 FROM memory_vectors v WHERE v.memory_rowid = m.rowid) LIMIT %s"
        )
        args = [namespace, *params, min(limit, 2**62) + 1]
        rows = self.read(lambda conn: conn.execute(query, args).fetchall())
        return None if len(rows) > limit else [int(r[0]) for r in rows]

    def memory_records(self, namespace: str, rowids: Sequence[int]) -> dict[int, MemoryRecord]:
        if not rowids:
            return {}
        rows = self._memory_rows(namespace, rowids, MEMORY_COLUMNS)
        return {r[0]: memory_record(r) for r in rows}

    def memory_times(self, namespace: str, rowids: Sequence[int]) -> dict[int, datetime]:
        if not rowids:
            return {}
        rows = self._memory_rows(
            namespace, rowids, "m.rowid, coalesce(m.occurred_at, m.created_at)"
        )
        return {int(r[0]): datetime_from_us(r[1]) for r in rows}

    def _memory_rows(
        self, namespace: str, rowids: Sequence[int], columns: str, *, live: bool = True
    ) -> list[Any]:
        """``columns`` (of ``memories m``) of the namespace's memories among ``rowids``, the
        invalidated ones too unless ``live``."""
        live_only = " AND m.invalidated_at IS NULL" if live else ""
        return self.read(
            lambda conn: conn.execute(
                f"SELECT {columns} FROM memories m WHERE m.namespace = %s "
                f"AND m.rowid = ANY(%s::bigint[]){live_only}",
                (namespace, list(rowids)),
            ).fetchall()
        )

    def memory_vectors(self, namespace: str, rowids: Sequence[int]) -> dict[int, bytes]:
        if not rowids:
            return {}

        def work(conn: Conn) -> dict[int, bytes]:
            with conn.cursor(binary=True) as cur:
                cur.execute(
                    "SELECT memory_rowid, embedding FROM memory_vectors WHERE namespace = %s "
                    "AND memory_rowid = ANY(%s::bigint[]) ORDER BY memory_rowid, chunk",
                    (namespace, list(rowids)),
                )
                out: dict[int, bytes] = {}
                for rowid, vector in cur:
                    out[int(rowid)] = out.get(int(rowid), b"") + bytes(vector)
                return out

        return self.read(work)

    def memory_adjacency(
        self, namespace: str, rowids: Sequence[int], *, neighbors: bool = True
    ) -> dict[int, Adjacency]:
        if not rowids:
            return {}
        if not neighbors:
            users = self._memory_rows(namespace, rowids, "m.rowid, m.user_id", live=False)
            return {int(r[0]): (r[1], None, None, None, None) for r in users}
        rows = self.read(
            lambda conn: conn.execute(
                # one statement: neighbours by index seeks, their users joined
                "SELECT a.rowid, a.user_id, a.prev, a.next, p.user_id, n.user_id FROM "
                "(SELECT m.rowid, m.user_id, "
                "(SELECT max(p.rowid) FROM memories p WHERE p.namespace = m.namespace AND "
                "p.session_id = m.session_id AND p.rowid < m.rowid) AS prev, "
                "(SELECT min(n.rowid) FROM memories n WHERE n.namespace = m.namespace AND "
                "n.session_id = m.session_id AND n.rowid > m.rowid) AS next "
                "FROM memories m WHERE m.namespace = %s AND m.rowid = ANY(%s::bigint[])) a "
                "LEFT JOIN memories p ON p.rowid = a.prev "
                "LEFT JOIN memories n ON n.rowid = a.next",
                (namespace, list(rowids)),
            ).fetchall()
        )
        return {int(r[0]): (r[1], _opt_int(r[2]), _opt_int(r[3]), r[4], r[5]) for r in rows}

    def memory_users(self, namespace: str) -> list[str]:
        return self.read(
            lambda conn: [
                str(r[0])
                for r in conn.execute(
                    "SELECT user_id FROM memory_users WHERE namespace = %s LIMIT 10000",
                    (namespace,),
                )
            ]
        )

    def embedding_cache(
        self, model: str, hashes: Sequence[str]
    ) -> dict[str, tuple[bytes, tuple[Span, ...]]]:
        if not hashes:
            return {}

        def work(conn: Conn) -> dict[str, tuple[bytes, tuple[Span, ...]]]:
            with conn.cursor(binary=True) as cur:
                # one memory per content hash (the lowest rowid embedded with the model),
                # then its chunks in order
                cur.execute(
                    "WITH pick AS (SELECT m.content_hash, min(m.rowid) AS rowid FROM memories m "
                    "WHERE m.content_hash = ANY(%s::text[]) AND EXISTS (SELECT 1 FROM "
                    "memory_vectors v WHERE v.memory_rowid = m.rowid AND v.model = %s) "
                    "GROUP BY m.content_hash) SELECT p.content_hash, v.embedding, v.span_start, "
                    "v.span_end FROM pick p JOIN memory_vectors v ON v.memory_rowid = p.rowid "
                    "ORDER BY p.rowid, v.chunk",
                    (list(hashes), model),
                )
                return gather_chunks([(str(r[0]), r[1], r[2], r[3]) for r in cur])

        return self.read(work)

    def memory_without_embedding(
        self, model: str, *, after: int, limit: int
    ) -> list[tuple[int, str]]:
        rows = self.read(
            lambda conn: conn.execute(
                "SELECT m.rowid, m.content FROM memories m WHERE m.rowid > %s AND NOT EXISTS "
                "(SELECT 1 FROM memory_vectors v WHERE v.memory_rowid = m.rowid AND "
                "v.chunk = 0 AND v.model = %s) ORDER BY m.rowid LIMIT %s",
                (after, model, limit),
            ).fetchall()
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    def memory_vector_search(
        self, namespace: str, vector: bytes, model: str, flt: Filter, *, limit: int
    ) -> list[VectorHit]:
        dim = len(vector) // 4
        if limit <= 0 or dim == 0 or dim > 16_000:
            return []
        if not np.any(np.frombuffer(vector, dtype="<f4")):
            return []  # a zero vector has no direction: nothing is near it
        where, params = filter_sql(flt)
        index = vector_index(dim, half=self._halfvec)
        # chunks nearest first; a memory's first chunk in that order is its best. A namespace
        # of at most EXACT_VECTORS memories is ranked exactly from its own rows (the distance
        # written without the index's cast, so the planner cannot take the index): exact,
        # faster than a walk through every namespace's graph, and independent of what other
        # namespaces store. A bigger one walks this dimension's partial HNSW index (resumed
        # while the namespace, model and filter reject rows). One statement holds both, each
        # behind its side of the size test (a one-time filter: only one runs), so the search
        # is a single round trip. Scores are always the exact float4 cosine.
        select = sql.SQL(
            "SELECT v.memory_rowid, 1 - (v.embedding <=> %s::vector) AS score, v.chunk, "
            "v.span_start, v.span_end FROM memory_vectors v "
            "JOIN memories m ON m.rowid = v.memory_rowid "
            "WHERE v.dim = {dim} AND v.namespace = %s AND v.model = %s{where}"
        ).format(dim=sql.Literal(dim), where=sql.SQL(where))
        small = sql.SQL(
            "(SELECT coalesce(max(memories), 0) <= {n} FROM namespace_counts WHERE namespace = %s)"
        ).format(n=sql.Literal(EXACT_VECTORS))
        exact = "ORDER BY v.embedding <=> %s::vector, v.memory_rowid, v.chunk LIMIT %s"
        query_vector = Vector(vector)
        if index is None:  # no index for this dimension: always exact
            query: sql.Composed = sql.SQL("{select} " + exact).format(select=select)
        else:
            # the dimension is a literal, not a parameter: the partial HNSW index of that
            # dimension must match in generic (prepared) plans too
            typed = sql.SQL("{kind}({dim})").format(kind=sql.SQL(index[1]), dim=sql.Literal(dim))
            query = sql.SQL(
                "({select} AND {small} " + exact + ") UNION ALL ({select} AND NOT {small} "
                "ORDER BY v.embedding::{typed} <=> %s::{typed} LIMIT %s)"
            ).format(select=select, small=small, typed=typed)

        def work(conn: Conn, rows: int) -> list[tuple[Any, ...]]:
            one = [query_vector, namespace, model, *params]
            if index is None:
                return conn.execute(query, [*one, query_vector, rows]).fetchall()
            args = [*one, namespace, query_vector, rows] * 2
            settings = vector_search_settings(rows, iterative=self._iterative_scan)
            # the exact side is planned for the whole namespace even when its size test skips
            # it: a parallel plan there would start workers for nothing (~10 ms at 100k)
            settings["max_parallel_workers_per_gather"] = "0"
            # the settings are local to this transaction (a pooled connection keeps nothing);
            # one pipeline: BEGIN, the settings, the query and COMMIT in one round trip
            with conn.pipeline(), conn.transaction():
                for name, value in settings.items():
                    conn.execute("SELECT set_config(%s, %s, true)", (name, value))
                return conn.execute(query, args).fetchall()

        # several chunks of one memory may be among the nearest: ask again for more rows
        # until ``limit`` memories are found or the rows run out
        rows = limit
        while True:
            found = self.read(lambda conn: work(conn, rows))  # noqa: B023
            # by exact score: the walk's order is that of the index's (half-precision) copies
            found.sort(key=lambda r: (-float(r[1]), int(r[0]), int(r[2])))
            hits: dict[int, VectorHit] = {}
            for r in found:
                rowid = int(r[0])
                if rowid not in hits:
                    hits[rowid] = VectorHit(rowid, float(r[1]), int(r[2]), int(r[3]), int(r[4]))
            if len(hits) >= limit or len(found) < rows or rows >= 8 * limit + 64:
                return list(hits.values())[:limit]
            rows *= 2

    def vector_version(self) -> int:
        # PostgreSQL searches vectors itself (native_vector_search): nothing to catch up with
        return 0

    def vector_changes(self, embedding_seq: int, removal_seq: int, *, limit: int) -> VectorDelta:
        # PostgreSQL searches vectors itself (native_vector_search): no in-process index to feed
        return VectorDelta([], [], [], [], [], embedding_seq, removal_seq)

    def memory_stats(self, namespace: str) -> MemoryStats:
        def work(conn: Conn) -> MemoryStats:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM memories WHERE namespace = %(ns)s), "
                "(SELECT count(DISTINCT memory_rowid) FROM memory_vectors "
                "WHERE namespace = %(ns)s), "
                "(SELECT count(*) FROM triples WHERE namespace = %(ns)s), "
                "(SELECT count(*) FROM triples WHERE namespace = %(ns)s AND valid_to IS NULL), "
                "(SELECT count(*) FROM sessions WHERE namespace = %(ns)s), "
                "(SELECT coalesce(sum(item_count), 0) FROM sessions WHERE namespace = %(ns)s)",
                {"ns": namespace},
            ).fetchone()
            assert row is not None
            return MemoryStats(namespace, *(int(v) for v in row))

        return self.read(work)

    # -- triples ---------------------------------------------------------------------------
    def triple_insert(self, namespace: str, triple: NewTriple) -> tuple[Triple, list[Triple], bool]:
        now = now_us()

        def work(conn: Conn) -> tuple[Triple, list[Triple], bool]:
            # one writer at a time per (namespace, subject, predicate): concurrent learns of
            # a single-valued fact cannot both stay current
            _count(conn, namespace)  # lock the namespace's counts first
            key = "\x1f".join((namespace, triple.subject.lower(), triple.predicate.lower()))
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
            # the same fact already there: the current one, or the same closed interval
            same = conn.execute(
                f"SELECT {TRIPLE_COLUMNS} FROM triples WHERE namespace = %s AND "
                "lower(subject) = lower(%s) AND lower(predicate) = lower(%s) AND "
                "lower(object) = lower(%s) AND "
                + (
                    "valid_to IS NULL"
                    if triple.valid_to is None
                    else "valid_from = %s AND valid_to = %s"
                ),
                (namespace, triple.subject, triple.predicate, triple.object)
                + (() if triple.valid_to is None else (triple.valid_from, triple.valid_to)),
            ).fetchone()
            if same is not None:
                return triple_record(same), [], False
            superseded: list[Triple] = []
            if triple.single_valued:
                rows = conn.execute(
                    "UPDATE triples SET valid_to = greatest(%s, valid_from) WHERE namespace = %s "
                    "AND lower(subject) = lower(%s) AND lower(predicate) = lower(%s) "
                    f"AND valid_to IS NULL RETURNING {TRIPLE_COLUMNS}",
                    (triple.valid_from, namespace, triple.subject, triple.predicate),
                ).fetchall()
                superseded = [triple_record(r) for r in rows]
            row = conn.execute(
                "INSERT INTO triples (id, namespace, subject, predicate, object, confidence, "
                "source, valid_from, valid_to, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
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
            assert row is not None
            _count(conn, namespace, facts=1)
            return triple_record(row), superseded, True

        return self.run(work)

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
        query = f"SELECT {TRIPLE_COLUMNS} FROM triples WHERE namespace = %s"
        params: list[Any] = [namespace]
        for column, value in (("subject", subject), ("predicate", predicate), ("object", object)):
            if value is not None:
                query += f" AND lower({column}) = lower(%s)"
                params.append(value)
        if as_of is not None:
            query += " AND valid_from <= %s AND (valid_to IS NULL OR valid_to > %s)"
            params += [as_of, as_of]
        elif not include_history:
            query += " AND valid_to IS NULL"
        query += " ORDER BY valid_from, rowid LIMIT %s"
        params.append(limit)
        rows = self.read(lambda conn: conn.execute(query, params).fetchall())
        return [triple_record(r) for r in rows]

    def triple_set_memory(self, namespace: str, triple_id: str, memory_id: str | None) -> None:
        self.run(
            lambda conn: conn.execute(
                "UPDATE triples SET memory_id = %s WHERE namespace = %s AND id = %s",
                (memory_id, namespace, triple_id),
            )
        )

    def triple_ids(
        self, namespace: str, *, subject: str | None, predicate: str | None, object: str | None
    ) -> list[str]:
        query = "SELECT id FROM triples WHERE namespace = %s"
        params: list[Any] = [namespace]
        for column, value in (("subject", subject), ("predicate", predicate), ("object", object)):
            if value is not None:
                query += f" AND lower({column}) = lower(%s)"
                params.append(value)
        query += " ORDER BY valid_from, rowid"
        return [str(r[0]) for r in self.read(lambda conn: conn.execute(query, params).fetchall())]

    def triple_delete(
        self, namespace: str, triple_ids: Sequence[str], *, scrub: bool = False
    ) -> list[str]:
        if not triple_ids:
            return []

        def work(conn: Conn) -> list[str]:
            _count(conn, namespace)  # lock the namespace's counts first
            rows = conn.execute(
                "DELETE FROM triples WHERE namespace = %s AND id = ANY(%s::text[]) "
                "RETURNING id, memory_id, created_at",
                (namespace, list(triple_ids)),
            ).fetchall()
            _count(conn, namespace, facts=-len(rows))
            _drop_replays(conn, namespace, [str(r[0]) for r in rows], [int(r[2]) for r in rows])
            linked = {str(r[1]): str(r[0]) for r in rows if r[1] is not None}
            if linked:
                made = [
                    str(r[0])
                    for r in conn.execute(
                        "SELECT id, metadata FROM memories WHERE namespace = %s AND id = ANY(%s)",
                        (namespace, list(linked)),
                    )
                    if _made_for(r[1]) == linked[str(r[0])]
                ]
                _delete_memories(conn, namespace, made, neighbors=self.index_neighbors)
            gone = {str(r[0]) for r in rows}
            return [t for t in dict.fromkeys(triple_ids) if t in gone]

        return self.run(work)

    def triple_memory_ids(self, namespace: str, triple_ids: Sequence[str]) -> list[str]:
        if not triple_ids:
            return []
        rows = self.read(
            lambda conn: conn.execute(
                "SELECT memory_id FROM triples WHERE namespace = %s AND memory_id IS NOT NULL "
                "AND id = ANY(%s::text[])",
                (namespace, list(triple_ids)),
            ).fetchall()
        )
        return [str(r[0]) for r in rows]
