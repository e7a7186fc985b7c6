"""PostgreSQL recall bounded at the root (issue 14): per-namespace term counts kept exact by
triggers (migration 9), the GIN index without a pending list, and HNSW settings per query."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.filters import Filter
from engramdb.search.query import text_query
from engramdb.store.postgres import PostgresStore
from engramdb.store.postgres.memories import vector_search_settings
from engramdb.store.postgres.migrations import MIGRATIONS
from tests.pg_server import PgServer


@pytest.fixture
def url(pg_server: PgServer) -> str:
    return pg_server.new_schema()


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(url, timeout=10)
    yield s
    s.close()


def _counts(url: str) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """(memory_terms as kept, the same counted afresh from the full-text column)."""
    with psycopg.connect(url, autocommit=True) as conn:
        kept = {
            (str(r[0]), str(r[1])): int(r[2])
            for r in conn.execute("SELECT namespace, lexeme, docs FROM memory_terms WHERE docs > 0")
        }
        fresh = {
            (str(r[0]), str(r[1])): int(r[2])
            for r in conn.execute(
                "SELECT m.namespace, l.lexeme, count(*) FROM memories m, unnest(m.fts) l "
                "GROUP BY 1, 2"
            )
        }
    return kept, fresh


def test_issue14_pg_term_counts_follow_every_write(store: PostgresStore, url: str) -> None:
    mem = Memory(store, embedder=None)
    first = mem.remember_many(
        [{"content": f"walking the dog {i}", "session_id": "s", "tags": ["pets"]} for i in range(6)]
        + [{"content": "a cat sleeps", "metadata": {"mood": "calm"}}],
        namespace="a",
    )
    mem.remember_many([{"content": "the dog barks"}, {"content": "dogs run"}], namespace="b")
    kept, fresh = _counts(url)
    assert kept == fresh and kept[("a", "dog")] == 6 and kept[("b", "dog")] == 2
    mem.update(first[0].id, content="a bird sings", namespace="a")  # content and neighbours
    mem.invalidate(first[1].id, reason="wrong", namespace="a")
    mem.forget(first[2].id, namespace="a")  # a delete, and the neighbours' context changes
    kept, fresh = _counts(url)
    assert kept == fresh
    with psycopg.connect(url, autocommit=True) as conn:  # a forgotten word leaves no row
        assert conn.execute("SELECT count(*) FROM memory_terms WHERE docs <= 0").fetchone() == (0,)
    documents, docs = store.memory_term_docs("a", ["dog", "bird", "unknown"])
    assert documents == 6
    # "bird" is in the new content and in its session neighbours' context
    assert docs == {"dog": fresh[("a", "dog")], "bird": fresh[("a", "bird")]}
    assert 0 < docs["dog"] < 6
    assert store.memory_term_docs("b", ["dog", "bird"]) == (2, {"dog": 2})


def test_issue14_pg_migration_9_recounts_and_disables_the_gin_pending_list(
    store: PostgresStore, url: str
) -> None:
    Memory(store, embedder=None).remember_many([{"content": f"word {i}"} for i in range(5)])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE memory_terms SET docs = 999")  # counts gone wrong
        with conn.transaction():
            for statement in MIGRATIONS[8]:  # migration 9 runs again (re-runnable)
                conn.execute(statement)
        options = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = 'memories_fts'::regclass"
        ).fetchone()
    assert options is not None and "fastupdate=off" in options[0]
    kept, fresh = _counts(url)
    assert kept == fresh and kept[("default", "word")] == 5


def test_issue14_pg_vector_settings_scale_with_the_limit() -> None:
    small = vector_search_settings(10, iterative=True)
    large = vector_search_settings(400, iterative=True)
    assert int(small["hnsw.ef_search"]) >= 10 and int(large["hnsw.ef_search"]) >= 400
    assert int(large["hnsw.ef_search"]) > int(small["hnsw.ef_search"])
    assert int(large["hnsw.max_scan_tuples"]) > int(small["hnsw.max_scan_tuples"])
    assert small["hnsw.iterative_scan"] == "relaxed_order"  # then sorted by exact score
    assert "hnsw.iterative_scan" not in vector_search_settings(10, iterative=False)


def _settings(conn: Any) -> tuple[str, ...]:
    names = ("hnsw.ef_search", "hnsw.max_scan_tuples", "hnsw.iterative_scan")
    return tuple(str(conn.execute("SELECT current_setting(%s)", (n,)).fetchone()[0]) for n in names)


def test_issue14_pg_filtered_vector_search_sets_ef_per_query_and_fills_k(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engramdb.store.postgres.memories as pg_memories

    monkeypatch.setattr(pg_memories, "EXACT_VECTORS", 0)  # the HNSW walk, even for 400 rows
    embedder = HashingEmbedder(64)
    mem = Memory(store, embedder=embedder)
    mem.remember_many(
        [{"content": f"note {i} about topic {i % 7}", "user_id": f"u{i % 20}"} for i in range(400)]
    )
    query = embedder.embed_query("topic 3").tobytes()
    only = Filter.parse({"user_id": "u3"})  # 20 of the 400 rows
    with store.atomic():  # SET LOCAL lasts until the unit's transaction ends: read it back
        conn = store._unit_conn()
        assert conn is not None
        hits = store.memory_vector_search("default", query, embedder.model, only, limit=15)
        after_small = _settings(conn)
        wide = store.memory_vector_search(
            "default", query, embedder.model, Filter.parse(None), limit=300
        )
        after_large = _settings(conn)
    assert len(hits) == 15  # the filter rejects 19 rows in 20: the scan still fills k
    assert len(wide) == 300
    assert after_small == ("40", "20000", "relaxed_order")
    assert after_large == ("300", "60000", "relaxed_order")
    scores = [h.score for h in wide]
    assert scores == sorted(scores, reverse=True)  # sorted by exact score


def test_issue14_pg_filtered_query_uses_the_hnsw_index(store: PostgresStore, url: str) -> None:
    embedder = HashingEmbedder(64)
    Memory(store, embedder=embedder).remember_many(
        [{"content": f"entry {i}", "user_id": f"u{i % 5}"} for i in range(50)]
    )
    query = embedder.embed_query("entry").tobytes()
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")  # a 50-row table: make the index apply
        conn.execute("SET LOCAL enable_bitmapscan = off")
        conn.execute("SET LOCAL enable_indexscan = on")
        plan = "\n".join(
            str(r[0])
            for r in conn.execute(
                "EXPLAIN SELECT v.memory_rowid FROM memory_vectors v JOIN memories m "
                "ON m.rowid = v.memory_rowid WHERE v.dim = 64 AND v.namespace = 'default' "
                "AND m.user_id = 'u1' "
                "ORDER BY v.embedding::halfvec(64) <=> %s::halfvec(64) LIMIT 10",
                (str(np.frombuffer(query, dtype="<f4").tolist()),),
            )
        )
    assert "memory_vectors_half_64" in plan


def test_issue14_pg_text_search_ranks_a_bounded_candidate_set(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engramdb.store.postgres.memories as pg_memories

    mem = Memory(store, embedder=None)
    # the older memories say "shared" three times (they rank higher); the newest ten once
    old = mem.remember_many([{"content": f"shared shared shared old {i}"} for i in range(20)])
    new = mem.remember_many([{"content": f"shared new {i} and more words"} for i in range(10)])
    assert len(old) == 20 and len(new) == 10
    unbounded = store.memory_text_search(
        "default", text_query(["shared"]), Filter.parse(None), limit=5
    )
    monkeypatch.setattr(pg_memories, "TEXT_CANDIDATES", 10)
    bounded = store.memory_text_search(
        "default", text_query(["shared"]), Filter.parse(None), limit=5
    )
    newest = sorted(
        r
        for r, _ in store.memory_text_search(
            "default", text_query(["new"]), Filter.parse(None), limit=50
        )
    )
    assert len(newest) == 10
    assert not {r for r, _ in unbounded} & set(newest)  # every match ranked: the old ones win
    assert len(bounded) == 5 and {r for r, _ in bounded} <= set(newest)  # only the newest 10


def test_issue14_pg_text_order_unchanged_below_the_bound(store: PostgresStore, url: str) -> None:
    mem = Memory(store, embedder=None)
    texts = [
        "the river runs past the old mill",
        "a river and a lake",
        "mill workers went on strike",
        "the lake froze in winter",
        "winter river walk",
        "old songs about the river",
    ]
    mem.remember_many(
        [{"content": t, "tags": ["river"] if i % 2 else []} for i, t in enumerate(texts)]
    )
    words = ["river", "mill", "winter"]
    got = store.memory_text_search("default", text_query(words), Filter.parse(None), limit=10)
    tsquery = " || ".join(["plainto_tsquery('engramdb_text'::regconfig, %s)"] * len(words))
    with psycopg.connect(url, autocommit=True) as conn:  # the ranking as it was: every match
        expected = [
            (int(r[0]), float(r[1]))
            for r in conn.execute(
                "SELECT m.rowid, ts_rank('{0.3,0.3,0.6,1.0}'::real[], m.fts, q.q, 1) AS score "
                f"FROM memories m, (SELECT {tsquery} AS q) q WHERE m.fts @@ q.q "
                "AND m.namespace = 'default' ORDER BY score DESC, m.rowid DESC LIMIT 10",
                words,
            )
        ]
    assert len(expected) == 6
    assert got == expected


def _indexes(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return sorted(
            str(r[0])
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = 'memory_vectors' AND indexname LIKE 'memory_vectors_h%%'"
            )
        )


def test_issue14_pg_migration_12_indexes_halfvec_copies(
    store: PostgresStore, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engramdb.store.postgres.memories as pg_memories

    monkeypatch.setattr(pg_memories, "EXACT_VECTORS", 0)  # searches walk the index
    embedder = HashingEmbedder(32)
    mem = Memory(store, embedder=embedder)
    mem.remember_many([{"content": f"river {i} runs past mill {i % 9}"} for i in range(60)])
    before = [h.memory.id for h in mem.recall("mill 4", mode="vector", limit=5)]
    assert _indexes(url) == ["memory_vectors_half_32"]
    with psycopg.connect(url, autocommit=True) as conn:  # the schema as version 11 left it
        conn.execute("DROP INDEX memory_vectors_half_32")
        conn.execute(
            "CREATE INDEX memory_vectors_hnsw_32 ON memory_vectors USING hnsw "
            "((embedding::vector(32)) vector_cosine_ops) WHERE dim = 32"
        )
        conn.execute("UPDATE engramdb_schema SET version = 11")
    reopened = PostgresStore(url, timeout=10)  # migrates: the float4 index gives way
    try:
        assert _indexes(url) == ["memory_vectors_half_32"]
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            for statement in MIGRATIONS[11]:  # re-runnable
                conn.execute(statement)
        assert _indexes(url) == ["memory_vectors_half_32"]
        again = Memory(reopened, embedder=embedder)
        assert [h.memory.id for h in again.recall("mill 4", mode="vector", limit=5)] == before
    finally:
        reopened.close()


def test_issue14_pg_filtered_hnsw_fills_the_limit_in_a_small_namespace(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk through the graph every namespace shares must go on while the namespace and
    the filter reject rows (iterative scans): a small namespace's search still fills its limit,
    and never returns another namespace's rows."""
    import engramdb.store.postgres.memories as pg_memories

    monkeypatch.setattr(pg_memories, "EXACT_VECTORS", 0)  # the HNSW walk, not the exact rank
    embedder = HashingEmbedder(64)
    mem = Memory(store, embedder=embedder)
    mem.remember_many(
        [{"content": f"note {i} about topic {i % 7}"} for i in range(900)], namespace="big"
    )
    small = mem.remember_many(
        [{"content": f"entry {i} on topic {i % 5}", "user_id": f"u{i % 2}"} for i in range(60)],
        namespace="small",
    )
    ids = {m.id for m in small}
    odd = {m.id for m in small if m.user_id == "u1"}
    query = embedder.embed_query("topic 3").tobytes()
    for flt, limit, allowed in ((None, 50, ids), ({"user_id": "u1"}, 25, odd)):
        with store.atomic():  # a table this small is sorted, not walked: make the index apply
            conn = store._unit_conn()
            assert conn is not None
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                conn.execute(f"SET LOCAL {setting} = off")
            hits = store.memory_vector_search(
                "small", query, embedder.model, Filter.parse(flt), limit=limit
            )
        records = store.memory_records("small", [h.rowid for h in hits])
        assert len(hits) == limit  # ef_search 50 alone would find ~3 of "small"'s rows
        assert {records[h.rowid].id for h in hits} <= allowed
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)


def _sides_run(url: str, words: list[str], candidates: int) -> list[bool]:
    """Which side of text_search_sql read memories: [the newest-first walk, the GIN side]."""
    from engramdb.store.postgres.memories import _RANK_WEIGHTS, text_search_sql

    match = [*words, "default", "default"]  # the words, the namespace, the filter's (none)
    args = [candidates, "default", " ".join(words), "default", _RANK_WEIGHTS]
    args += [*match[:-1], candidates, *match[:-1], candidates, 10]
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + text_search_sql(len(words), ""), args
        ).fetchone()
    assert row is not None

    def reads(node: dict[str, Any]) -> bool:
        own = node.get("Relation Name") == "memories" and node.get("Actual Loops", 0) > 0
        return own or any(reads(child) for child in node.get("Plans", []))

    def appended(node: dict[str, Any]) -> list[dict[str, Any]]:
        if node["Node Type"] == "Append":
            return list(node["Plans"])
        return [p for child in node.get("Plans", []) for p in appended(child)]

    return [reads(side) for side in appended(row[0][0]["Plan"])]


def test_issue14_pg_text_search_walks_only_for_common_words(store: PostgresStore, url: str) -> None:
    """A word in a few percent of the rows is matched from the GIN index: walking the rows
    newest first to find the newest candidates would pass most of the namespace (at 100k the
    planner walked for a word in 4% of the rows: 2-3x slower). A word in most rows is
    walked: the walk stops at the candidate bound."""
    mem = Memory(store, embedder=None)
    mem.remember_many(
        [{"content": f"common filler {i}" + (" rare" if i % 30 == 0 else "")} for i in range(300)]
    )
    # 6 * 300^2 > 10 * 300 (walk); 6 * 10^2 < 10 * 300 (GIN); sides as [walk, GIN]
    assert _sides_run(url, ["common"], 10) == [True, False]
    assert _sides_run(url, ["rare"], 10) == [False, True]
    # either side fills the limit (the ranking itself: the tests above)
    for word in ("common", "rare"):
        found = store.memory_text_search("default", text_query([word]), Filter.parse(None), limit=5)
        assert len(found) == 5


def test_issue14_pg_vector_index_kinds() -> None:
    from engramdb.store.postgres.memories import vector_index

    # pgvector >= 0.7: halfvec copies, up to 4,000 dimensions (3,072-d models get an index)
    assert vector_index(384, half=True) == ("memory_vectors_half_384", "halfvec")
    assert vector_index(3072, half=True) == ("memory_vectors_half_3072", "halfvec")
    assert vector_index(4001, half=True) is None
    # older pgvector: float4, up to 2,000
    assert vector_index(384, half=False) == ("memory_vectors_hnsw_384", "vector")
    assert vector_index(3072, half=False) is None
