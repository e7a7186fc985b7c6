"""Scale: ingest rate and recall latency at 10k, 100k and 1M synthetic memories.

Memories are 12-24 words drawn from a Zipf-distributed 30,000-word vocabulary; queries are 2-5
words drawn the same way. Vectors are random 384-d unit vectors produced by a stand-in
embedder, so the figures measure engramdb (storage, full-text, vector index, fusion) and not a
model: hybrid and vector latency exclude query embedding, as the goal states. Each size is a
fresh SQLite store, filled through ``Memory.remember_many`` in batches of 1,000.

Sizes: ``python -m bench scale`` runs 10k and 100k; ``ENGRAMDB_BENCH_SCALE=10000,100000,1000000``
adds 1M (about 15 minutes on 2 cores).

``python -m bench.scale --layout`` measures the SQLite full-text layout instead (issue 14,
results/scale_layout.md): many small tenants (schema size, a new connection's first query, the
first write to a new namespace and what it costs other connections) with the hybrid layout
against one FTS5 table per namespace, and the text recall of one namespace in the shared table
and in a table of its own, by namespace size (where ``OWN_TABLE_AT`` comes from).
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from bench.common import (
    RawFts5,
    console,
    machine,
    percentile,
    text_lane_match,
    timed_ms,
    today,
    write_results,
)
from engramdb import Memory, open_store
from engramdb.embed import Vectors, normalize
from engramdb.store.sqlite import text as text_layout

DIM = 384
QUERIES = 200
BATCH = 1_000


class RandomEmbedder:
    """Random unit vectors: a stand-in that costs nothing, so only engramdb is measured."""

    model = "bench-random-384"
    dim = DIM

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return normalize(self._rng.standard_normal((len(texts), DIM), dtype=np.float32))

    def embed_query(self, text: str) -> Vectors:
        out: Vectors = normalize(self._rng.standard_normal(DIM, dtype=np.float32))
        return out


class Corpus:
    def __init__(self, seed: int = 1, vocabulary: int = 30_000) -> None:
        self.rng = np.random.default_rng(seed)
        self.words = np.array([_word(i) for i in range(vocabulary)])
        ranks = np.arange(1, vocabulary + 1)
        self.p = (1 / ranks**1.07) / (1 / ranks**1.07).sum()

    def texts(self, n: int, low: int = 12, high: int = 24) -> list[str]:
        lengths = self.rng.integers(low, high + 1, n)
        picks = self.rng.choice(len(self.words), size=int(lengths.sum()), p=self.p)
        out, at = [], 0
        for length in lengths:
            out.append(" ".join(self.words[picks[at : at + length]]))
            at += length
        return out


def _word(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = ""
    i += 26 * 27  # at least three letters
    while i:
        i, r = divmod(i, 26)
        out += letters[r]
    return out


def fill(memory: Memory, corpus: Corpus, n: int, label: str, raw: RawFts5 | None = None) -> float:
    """Store ``n`` memories; with ``raw``, the same contents go to the baseline table (not
    timed: the rate is ``memory``'s)."""
    start = time.perf_counter()
    spent = 0.0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(label, total=n)
        for at in range(0, n, BATCH):
            texts = corpus.texts(min(BATCH, n - at))
            memory.remember_many(
                [{"content": t, "user_id": f"user-{(at + i) % 50}"} for i, t in enumerate(texts)]
            )
            if raw is not None:
                spent += timed_ms(lambda: raw.add(memory.namespace, texts)) / 1000  # noqa: B023
            progress.advance(task, len(texts))
    return n / (time.perf_counter() - start - spent)


CPU_SAMPLES: dict[str, list[float]] = {}
"""The last :func:`latency` call's CPU time per call (ms, this thread): ``recall`` and ``raw``."""


def latency(
    memory: Memory, queries: list[str], mode: str, raw: RawFts5 | None = None
) -> tuple[float, float, list[float]]:
    """p50 and p95 of ``recall(limit=10)``; with ``raw``, each query's text-lane terms also
    run as one plain FTS5 query right after it (the baseline's samples, returned). The CPU
    time of each call (this thread's) goes to :data:`CPU_SAMPLES`: on a machine shared with
    other work, wall time penalises a many-step call more than one short C call."""
    for q in queries[:10]:  # warm-up: caches, vector index load
        memory.recall(q, mode=mode, limit=10)  # type: ignore[arg-type]
    samples, raw_samples = [], []
    cpu: dict[str, list[float]] = {"recall": [], "raw": []}
    for q in queries:
        start, start_cpu = time.perf_counter(), time.thread_time()
        memory.recall(q, mode=mode, limit=10)  # type: ignore[arg-type]
        samples.append((time.perf_counter() - start) * 1000)
        cpu["recall"].append((time.thread_time() - start_cpu) * 1000)
        if raw is not None and (match := text_lane_match(memory, memory.namespace, q)):
            table = raw
            start_cpu = time.thread_time()
            raw_samples.append(timed_ms(lambda: table.search(memory.namespace, match, 10)))  # noqa: B023
            cpu["raw"].append((time.thread_time() - start_cpu) * 1000)
    CPU_SAMPLES.clear()
    CPU_SAMPLES.update(cpu)
    return percentile(samples, 50), percentile(samples, 95), raw_samples


def run(sizes: Sequence[int]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    corpus = Corpus()
    queries = corpus.texts(QUERIES, 2, 5)
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            text_rate = fill(
                Memory(open_store(Path(tmp) / "text"), embedder=None),
                corpus,
                min(n, 100_000),
                f"{n:,}: text-only ingest",
            )
            memory = Memory(open_store(Path(tmp) / "hybrid"), embedder=RandomEmbedder())
            raw = RawFts5()  # the same rows, for the plain-FTS5 baseline of the text mode
            vector_rate = fill(memory, corpus, n, f"{n:,}: ingest with vectors", raw)
            for mode in ("text", "vector", "hybrid"):
                p50, p95, raw_samples = latency(
                    memory, queries, mode, raw if mode == "text" else None
                )
                row: dict[str, Any] = {
                    "n": n,
                    "mode": mode,
                    "ingest_per_s": round(text_rate if mode == "text" else vector_rate, 1),
                    "recall_p50_ms": round(p50, 2),
                    "recall_p95_ms": round(p95, 2),
                }
                if raw_samples:
                    raw_p50 = percentile(raw_samples, 50)
                    row |= {
                        "raw_fts5_p50_ms": round(raw_p50, 3),
                        "raw_fts5_p95_ms": round(percentile(raw_samples, 95), 3),
                        "p50_vs_raw_fts5": round(p50 / raw_p50, 2) if raw_p50 else None,
                    }
                    cpu_p50 = percentile(CPU_SAMPLES["recall"], 50)
                    raw_cpu_p50 = percentile(CPU_SAMPLES["raw"], 50)
                    row |= {
                        "recall_cpu_p50_ms": round(cpu_p50, 3),
                        "raw_fts5_cpu_p50_ms": round(raw_cpu_p50, 3),
                        "cpu_p50_vs_raw_fts5": round(cpu_p50 / raw_cpu_p50, 2)
                        if raw_cpu_p50
                        else None,
                    }
                rows.append(row)
                console.print(rows[-1])
            memory.close()
    return {"rows": rows, "date": today(), "machine": machine()}


def main() -> None:
    sizes = [int(s) for s in os.environ.get("ENGRAMDB_BENCH_SCALE", "10000,100000").split(",")]
    console.print(f"[bold]scale[/]: {', '.join(f'{n:,}' for n in sizes)} memories")
    payload = run(sizes)
    write_results(
        "scale",
        payload,
        [
            "n",
            "mode",
            "ingest/s",
            "recall p50 ms",
            "recall p95 ms",
            "raw FTS5 p50/p95 ms",
            "÷ raw",
            "CPU p50 ms: recall / raw (÷)",
        ],
        [
            [
                f"{r['n']:,}",
                r["mode"],
                f"{r['ingest_per_s']:,.0f}",
                f"{r['recall_p50_ms']:.2f}",
                f"{r['recall_p95_ms']:.2f}",
                f"{r['raw_fts5_p50_ms']:.2f} / {r['raw_fts5_p95_ms']:.2f}"
                if "raw_fts5_p50_ms" in r
                else "",
                f"{r['p50_vs_raw_fts5']}×" if "p50_vs_raw_fts5" in r else "",
                f"{r['recall_cpu_p50_ms']:.2f} / {r['raw_fts5_cpu_p50_ms']:.2f} "
                f"({r['cpu_p50_vs_raw_fts5']}×)"
                if "recall_cpu_p50_ms" in r
                else "",
            ]
            for r in payload["rows"]
        ],
        "Scale: synthetic memories, SQLite",
        notes="text ingest/s: remember_many without embeddings (measured on up to 100k); "
        "vector/hybrid ingest/s: with 384-d vectors from a zero-cost stand-in embedder. "
        "Latency per recall(limit=10), query embedding excluded. raw FTS5: the terms the text "
        "lane searches, as one plain `MATCH … ORDER BY rank LIMIT 10` over the same rows (a "
        "content-only FTS5 table), timed right after each text recall; ÷ raw = text p50 ÷ "
        "raw p50. CPU p50: the CPU time of the calling thread per call (recall, and the raw "
        "query), which the other work of a shared machine moves far less than wall time. "
        "Reproduce: `ENGRAMDB_BENCH_SCALE=10000,100000,1000000 .venv/bin/python -m bench scale`.",
    )


TENANTS, TENANT_SIZE, LARGE = 1_000, 50, 20_000
LAYOUTS = {"hybrid": text_layout.OWN_TABLE_AT, "own table each": 1, "shared only": 10**9}
"""OWN_TABLE_AT of each layout measured: this branch's, w6-fts's (every namespace its own
table) and main's (one table)."""


def _median_ms(run_once: Any, times: int = 7) -> float:
    return statistics.median(timed_ms(run_once) for _ in range(times))


def _tenants(directory: Path, corpus: Corpus) -> dict[str, Any]:
    """1,000 namespaces of 50 memories and one of 20,000 in a store of the current layout."""
    memory = Memory(open_store(directory), embedder=None)
    for i in range(TENANTS):
        memory.remember_many(
            [{"content": t} for t in corpus.texts(TENANT_SIZE)], namespace=f"tenant-{i}"
        )
    for _ in range(LARGE // BATCH):
        memory.remember_many([{"content": t} for t in corpus.texts(BATCH)], namespace="large")
    memory.close()
    db = directory / "engram.db"

    def first_query() -> None:
        conn = sqlite3.connect(db)
        conn.execute("SELECT id FROM memories WHERE rowid = 7").fetchone()  # (a point read)
        conn.close()

    conn = sqlite3.connect(db)
    (schema,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    conn.close()
    row: dict[str, Any] = {"schema_rows": schema, "first_query_ms": _median_ms(first_query)}
    row["open_store_ms"] = _median_ms(lambda: open_store(directory).close())
    writer = Memory(open_store(directory), embedder=None)
    other = sqlite3.connect(db)  # another connection, warm
    other.execute("SELECT 1 FROM memories LIMIT 1").fetchone()
    writes, others = [], []
    for k in range(7):
        writes.append(
            timed_ms(lambda: writer.remember("a first memory", namespace=f"new-{k}"))  # noqa: B023
        )
        # its next statement after that write (a schema change makes it parse the schema)
        others.append(
            timed_ms(lambda: other.execute("SELECT id FROM memories WHERE rowid = 3").fetchone())
        )
    writer.close()
    other.close()
    row["first_write_ms"] = statistics.median(writes)
    row["other_connection_next_query_ms"] = statistics.median(others)
    return row


def _namespace_text(directory: Path, corpus: Corpus, n: int, queries: list[str]) -> dict[str, Any]:
    """Text recall p50 in a namespace of ``n`` memories (among 200 other tenants of 50), and
    that of raw FTS5 over the same rows."""
    memory = Memory(open_store(directory), embedder=None)
    for i in range(200):
        memory.remember_many(
            [{"content": t} for t in corpus.texts(TENANT_SIZE)], namespace=f"tenant-{i}"
        )
    raw = RawFts5()
    memory = Memory(memory.store, embedder=None, namespace="measured")
    fill(memory, corpus, n, f"{n:,} memories", raw)
    p50, _, raw_samples = latency(memory, queries, "text", raw)
    cpu = percentile(CPU_SAMPLES["recall"], 50) / percentile(CPU_SAMPLES["raw"], 50)
    memory.close()
    raw_p50 = percentile(raw_samples, 50)
    return {"recall_p50_ms": p50, "raw_p50_ms": raw_p50, "ratio": p50 / raw_p50, "cpu_ratio": cpu}


def layout_main() -> None:
    corpus = Corpus(seed=3)
    queries = corpus.texts(QUERIES, 2, 5)
    payload: dict[str, Any] = {"date": today(), "machine": machine(), "tenants": {}, "text": []}
    rows: list[list[str]] = []
    for name in ("hybrid", "own table each"):
        text_layout.OWN_TABLE_AT = LAYOUTS[name]
        with tempfile.TemporaryDirectory() as tmp:
            got = payload["tenants"][name] = _tenants(Path(tmp), corpus)
        console.print(name, got)
        rows.append(
            [
                f"{TENANTS:,} x {TENANT_SIZE} + 1 x {LARGE:,}",
                name,
                f"schema rows {got['schema_rows']:,}; new connection's first query "
                f"{got['first_query_ms']:.1f} ms; open_store {got['open_store_ms']:.1f} ms; "
                f"first write to a new namespace {got['first_write_ms']:.1f} ms; another "
                f"connection's next query {got['other_connection_next_query_ms']:.1f} ms",
            ]
        )
    for n in (600, 1_000, 2_000, 4_000, 8_000):
        for name in ("shared only", "own table each"):
            text_layout.OWN_TABLE_AT = LAYOUTS[name]
            with tempfile.TemporaryDirectory() as tmp:
                got = _namespace_text(Path(tmp), corpus, n, queries)
            payload["text"].append({"n": n, "layout": name} | got)
            console.print(n, name, got)
            rows.append(
                [
                    f"text recall, {n:,} memories",
                    "shared table" if name == "shared only" else "own table",
                    f"p50 {got['recall_p50_ms']:.2f} ms, raw FTS5 {got['raw_p50_ms']:.3f} ms: "
                    f"{got['ratio']:.2f}x raw (CPU {got['cpu_ratio']:.2f}x)",
                ]
            )
    text_layout.OWN_TABLE_AT = LAYOUTS["hybrid"]
    write_results(
        "scale_layout",
        payload,
        ["store", "layout", "measured"],
        rows,
        "SQLite full-text layout: shared table for small namespaces, own table for large",
        notes=f"hybrid: OWN_TABLE_AT = {LAYOUTS['hybrid']:,}. Text recall: the namespace among "
        "200 tenants of 50 memories; ratios to raw FTS5 over the same rows in the same run.",
    )


if __name__ == "__main__":
    if "--layout" in sys.argv[1:]:
        layout_main()
    else:
        main()
