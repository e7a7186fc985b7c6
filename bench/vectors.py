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
says whether both indexes returned the same ``(rowid, similarity)`` lists.
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bench.common import console, machine, percentile, today, write_results
from bench.scale import DIM, Corpus, RandomEmbedder, fill
from bench.vectors_before import VectorIndex as Before
from engramdb import Memory, open_store
from engramdb.embed import normalize
from engramdb.search.vectors import VectorIndex as After

QUERIES = 200
THREADS = 4
K = 1000
WINDOW = 0.3


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
                identical &= got[0] == got[1]
            samples: dict[str, list[float]] = {name: [] for name in indexes}
            for q in queries:
                answers = []
                for name, ix in indexes.items():
                    start = time.perf_counter()
                    answers.append(ix.search("default", q, K, window=WINDOW))
                    samples[name].append((time.perf_counter() - start) * 1000)
                identical &= answers[0] == answers[1]
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


if __name__ == "__main__":
    main()
