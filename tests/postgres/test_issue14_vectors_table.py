"""Embeddings in their own table on PostgreSQL (issue 14): migration 10 moves the inline
vectors into memory_vectors, drops the old columns and indexes each dimension with HNSW."""

from __future__ import annotations

import itertools

import numpy as np
import psycopg

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.memory import content_hash
from engramdb.store.postgres import PostgresStore
from engramdb.store.postgres.migrations import MIGRATIONS, migrate
from tests.pg_server import PgServer


def test_issue14_vectors_pg_migration_10_moves_embeddings_out_of_memories(
    pg_server: PgServer,
) -> None:
    url = pg_server.new_schema()
    embedder = HashingEmbedder(32)
    texts = ["the red kite circles the hill", "a bowl of miso soup", "tax forms are due"]
    vectors = embedder.embed_documents(texts)
    with psycopg.connect(url, autocommit=True) as conn:
        assert migrate(conn, target=9, create=True) == 9
        for n, (text, vector) in enumerate(zip(texts, vectors, strict=True), start=1):
            conn.execute(
                "INSERT INTO memories (id, namespace, content, content_hash, tags, tag_text, "
                "metadata, search_text, importance, created_at, updated_at, version, "
                "embedding, embedding_model, embedding_dim) VALUES (%s, 'default', %s, %s, "
                "'[]', '', '{}', '', 0.5, %s, %s, 1, %s::vector, %s, 32)",
                (f"m{n}", text, content_hash(text), n, n, str(vector.tolist()), embedder.model),
            )

    store = PostgresStore(url, timeout=10)  # migrates to the latest version
    with psycopg.connect(url, autocommit=True) as conn:
        columns = {
            str(r[0])
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = 'memories'"
            )
        }
        assert not columns & {"embedding", "embedding_model", "embedding_dim"}
        moved = conn.execute(
            "SELECT m.id, v.chunk, v.model, v.dim, v.span_start, v.span_end FROM memory_vectors "
            "v JOIN memories m ON m.rowid = v.memory_rowid ORDER BY m.id"
        ).fetchall()
        assert moved == [(f"m{n}", 0, embedder.model, 32, 0, len(texts[n - 1])) for n in (1, 2, 3)]
        # migration 12 then turned its float4 HNSW index into a halfvec one
        assert conn.execute("SELECT to_regclass('memory_vectors_hnsw_32')").fetchone() == (None,)
        assert conn.execute("SELECT to_regclass('memory_vectors_half_32')").fetchone() != (None,)
        with conn.transaction():  # re-runnable: migration 10 again changes nothing
            for statement in MIGRATIONS[9]:
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM memory_vectors").fetchone() == (3,)

    mem = Memory(store, embedder=embedder)
    hit = mem.recall("miso soup", mode="vector", limit=1, explain=True)[0]
    assert hit.memory.id == "m2" and hit.explain is not None
    assert hit.explain["lanes"]["vector"]["chunk_end"] == len(texts[1])
    assert mem.stats().embedded == 3
    mem.forget("m2")  # its vector goes with it (ON DELETE CASCADE)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM memory_vectors").fetchone() == (2,)
    store.close()


def test_issue14_vectors_pg_ef_search_is_the_limit() -> None:
    """The HNSW walk keeps as many candidates as the search returns (its cost grows with
    ef_search: twice the limit took twice as long at 100k)."""
    from engramdb.store.postgres.memories import vector_search_settings

    assert vector_search_settings(200, iterative=True)["hnsw.ef_search"] == "200"
    assert vector_search_settings(5, iterative=True)["hnsw.ef_search"] == "40"


def test_issue15_chunking_pg_search_returns_distinct_memories_by_best_chunk(
    pg_server: PgServer,
) -> None:
    """Several chunks of one memory among the nearest rows still yield ``limit`` memories."""
    from engramdb.filters import Filter

    store = PostgresStore(pg_server.new_schema(), timeout=10)
    embedder = HashingEmbedder(64, window=40)
    mem = Memory(store, embedder=embedder)
    long = " ".join(["lemon tart recipe notes"] * 30)  # many near-identical chunks
    mem.remember_many([{"content": long}, *({"content": f"lemon note {i}"} for i in range(5))])
    query = embedder.embed_query("lemon tart recipe notes").tobytes()
    hits = store.memory_vector_search("default", query, embedder.model, Filter.parse(None), limit=3)
    assert len(hits) == 3 and len({h.rowid for h in hits}) == 3
    assert hits[0].score >= hits[1].score >= hits[2].score
    store.close()


def test_issue14_vectors_pg_small_namespace_is_ranked_exactly(pg_server: PgServer) -> None:
    """A namespace of a few thousand memories at most is ranked exactly from its own rows:
    the order is brute force's, whatever the other namespaces hold."""
    from engramdb.filters import Filter

    store = PostgresStore(pg_server.new_schema(), timeout=10)
    embedder = HashingEmbedder(64)
    mem = Memory(store, embedder=embedder)
    texts = [f"note {i} on topic {i % 9} and item {i % 13}" for i in range(60)]
    mine = mem.remember_many([{"content": t} for t in texts], namespace="a")
    mem.remember_many([{"content": f"topic {i} item {i}"} for i in range(300)], namespace="b")
    query = embedder.embed_query("topic 4 item 7")
    hits = store.memory_vector_search(
        "a", query.tobytes(), embedder.model, Filter.parse(None), limit=60
    )
    scores = embedder.embed_documents(texts) @ query
    by_id = {r.id: float(s) for r, s in zip(mine, scores, strict=True)}
    rowids = {
        r.rowid: r.record.id
        for r in store.memory_export_full("a", after=0, limit=100, with_vectors=False)
    }
    assert len(hits) == 60
    got = [by_id[rowids[h.rowid]] for h in hits]
    # every one of them, in exact order (float32 here, float64 there: ties within 1e-6)
    assert all(a >= b - 1e-6 for a, b in itertools.pairwise(got))
    assert np.allclose([h.score for h in hits], got, atol=1e-5)
    store.close()
