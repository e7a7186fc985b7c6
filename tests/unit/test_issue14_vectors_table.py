"""Embeddings in their own table (issue 14) and chunked vectors in the in-process index
(issue 15 item 1): SQLite's migration 13, and session windows over chunked memories."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import numpy as np

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.embed.chunking import char_windows, embed_chunked, token_windows
from engramdb.memory import content_hash
from engramdb.search.vectors import VectorIndex
from engramdb.store.sqlite import SQLiteStore, migrate
from engramdb.store.sqlite.migrations import MIGRATIONS


def _old_database(path: Path, embedder: HashingEmbedder, texts: list[str]) -> None:
    """A schema-12 database whose memories carry their embeddings inline."""
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, target=12) == 12
    vectors = embedder.embed_documents(texts)
    for n, (text, vector) in enumerate(zip(texts, vectors, strict=True), start=1):
        conn.execute(
            "INSERT INTO memories (id, namespace, content, content_hash, tags, metadata, "
            "importance, created_at, updated_at, version, embedding, embedding_model, "
            "embedding_seq) VALUES (?, 'default', ?, ?, '[]', '{}', 0.5, ?, ?, 1, ?, ?, ?)",
            (f"m{n}", text, content_hash(text), n, n, vector.tobytes(), embedder.model, n),
        )
        conn.execute(
            "INSERT INTO memories_fts (rowid, content, tags, meta, ctx) VALUES "
            "(last_insert_rowid(), ?, '', '', '')",
            (text,),
        )
    conn.close()


def test_issue14_vectors_sqlite_migration_13_moves_embeddings_out_of_memories(
    tmp_path: Path,
) -> None:
    path = tmp_path / "engram.db"
    embedder = HashingEmbedder(32)
    texts = ["the red kite circles the hill", "a bowl of miso soup", "tax forms are due"]
    _old_database(path, embedder, texts)

    store = SQLiteStore(path)  # migrates to the latest version
    conn = sqlite3.connect(path)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(memories)")}
    assert not columns & {"embedding", "embedding_model", "embedding_seq"}
    moved = conn.execute(
        "SELECT m.id, v.chunk, v.model, v.vector, v.span_start, v.span_end FROM memory_vectors v "
        "JOIN memories m ON m.rowid = v.memory_rowid ORDER BY m.id"
    ).fetchall()
    vectors = embedder.embed_documents(texts)
    assert moved == [
        (f"m{n}", 0, embedder.model, vectors[n - 1].tobytes(), 0, len(texts[n - 1]))
        for n in (1, 2, 3)
    ]
    # re-runnable: the steps again change nothing
    conn.execute("BEGIN")
    for step in MIGRATIONS[12]:
        step(conn) if callable(step) else conn.execute(step)  # type: ignore[func-returns-value]
    conn.execute("COMMIT")
    assert conn.execute("SELECT count(*) FROM memory_vectors").fetchone() == (3,)
    conn.close()

    mem = Memory(store, embedder=embedder)
    assert mem.recall("miso soup", mode="vector", limit=1)[0].memory.id == "m2"
    assert mem.stats().embedded == 3
    mem.forget("m2")
    assert mem.recall("miso soup", mode="vector", limit=3)[0].memory.id != "m2"
    assert sqlite3.connect(path).execute("SELECT count(*) FROM memory_vectors").fetchone() == (2,)
    mem.close()


def test_issue15_chunking_windows_cover_the_text_with_overlap() -> None:
    text = " ".join(f"word{n}" for n in range(400))
    spans = char_windows(text, 200, 50)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (a, b), (c, d) in itertools.pairwise(spans):
        assert b - a <= 200 and c < b  # within the window, overlapping the previous one
        assert text[c - 1] == " " and (d == len(text) or text[d] == " ")  # between words
    assert char_windows("short text", 200, 50) == [(0, 10)]
    # tokens: a window never starts inside a word (word ids repeat for its pieces)
    offsets = [(i, i + 1) for i in range(10)]
    words = [0, 0, 0, 1, 1, 2, 2, 2, 3, 4]
    spans = token_windows(offsets, words, 4, 1)
    assert spans == [(0, 3), (3, 5), (5, 9), (8, 10)]  # whole words, the last one shared
    # a short text costs one vector and no spans
    ((vectors, none),) = embed_chunked(HashingEmbedder(16, window=100), ["tiny"])
    assert len(vectors) == 16 * 4 and none == ()


def test_issue15_chunking_window_score_uses_the_memorys_first_chunk(tmp_path: Path) -> None:
    embedder = HashingEmbedder(64, window=60)
    long = " ".join(f"filler words number {n} here" for n in range(10)) + " apricot jam"
    texts = ["apricot trees in spring", long, "a jar of jam on the shelf"]
    mem = Memory(tmp_path, embedder=embedder)
    mem.remember_many([{"content": t, "session_id": "s"} for t in texts])
    index = VectorIndex(mem.store, embedder.model, 64)
    query = embedder.embed_query("apricot jam")
    window = 0.4
    hits, _ = index.search_chunks("default", query, 10, window=window)
    assert len(hits) == 3 and len({h.rowid for h in hits}) == 3  # a memory once

    chunks = [
        np.frombuffer(v, dtype=np.float32).reshape(-1, 64)
        for v, _ in embed_chunked(embedder, texts)
    ]
    assert len(chunks[1]) > 3
    firsts = [c[0] for c in chunks]
    whole = firsts[0] + firsts[1] + firsts[2]  # each memory's window: all three first chunks
    window_sim = float(query @ whole / np.linalg.norm(whole))
    expected = [(1 - window) * float((c @ query).max()) + window * window_sim for c in chunks]
    got = {h.rowid: h.score for h in hits}
    rowids = sorted(got)
    assert np.allclose([got[r] for r in rowids], expected, atol=1e-5)
    best = next(h for h in hits if h.rowid == rowids[1])
    assert best.chunk == int(np.argmax(chunks[1] @ query)) and best.chunk > 0
    assert "apricot" in long[best.start : best.end]
    mem.close()


def test_issue15_chunking_openai_embedder_respects_its_token_limit() -> None:
    """No tokenizer for a remote model: its limit is counted as 3 characters per token."""
    import pytest

    pytest.importorskip("openai")
    from engramdb.embed import OpenAIEmbedder

    embedder = OpenAIEmbedder("m", base_url="http://127.0.0.1:9/v1", max_tokens=50)
    text = " ".join(f"sentence {n} of a long document" for n in range(60))
    spans = embedder.chunk_spans(text)
    assert len(spans) > 5 and spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(end - start <= 150 for start, end in spans)  # 50 tokens x 3 characters
    assert all(b > c for (_, b), (c, _) in itertools.pairwise(spans))  # overlapping
    assert OpenAIEmbedder("m", base_url="http://127.0.0.1:9/v1").chunk_spans("short") == [(0, 5)]
