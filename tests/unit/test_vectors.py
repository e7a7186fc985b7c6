"""The in-process vector index: exact below a size, Hamming preselection above, windows."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engramdb import Memory, open_store
from engramdb.embed import Vectors, normalize
from engramdb.search.vectors import VectorIndex


class TableEmbedder:
    """Vectors looked up by text: lets a test choose every vector."""

    model = "table"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self.dim = len(next(iter(table.values())))

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return normalize(np.stack([self.table[t] for t in texts]))

    def embed_query(self, text: str) -> Vectors:
        out: Vectors = normalize(self.table[text])
        return out


def make(
    tmp_path: Path, n: int, sessions: bool = False, dim: int = 64, clusters: int = 0
) -> tuple[Memory, dict[str, np.ndarray]]:
    """n memories with random vectors (around ``clusters`` centres, if given)."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((max(clusters, 1), dim)).astype(np.float32)
    spread = 0.6 if clusters else 1.0
    table = {
        f"m{i}": (centres[i % len(centres)] * (clusters > 0))
        + spread * rng.standard_normal(dim).astype(np.float32)
        for i in range(n)
    }
    mem = Memory(open_store(tmp_path), embedder=TableEmbedder(table))
    mem.remember_many([{"content": t, "session_id": "s" if sessions else None} for t in table])
    return mem, table


def test_exact_search_matches_brute_force(tmp_path: Path) -> None:
    mem, table = make(tmp_path, 300)
    index = VectorIndex(mem.store, "table", 64)
    query = normalize(np.ones(64, dtype=np.float32))
    hits, floor = index.search("default", query, 10)
    matrix = normalize(np.stack(list(table.values())))
    expected = np.argsort(-(matrix @ query))[:10]
    records = mem.store.memory_records("default", [r for r, _ in hits])
    assert [records[r].content for r, _ in hits] == [f"m{i}" for i in expected]
    assert floor == float((matrix @ query).min())


def test_hamming_preselection_finds_the_true_neighbours(tmp_path: Path) -> None:
    # clustered data, as real embeddings are (with isotropic noise "nearest" means nothing)
    mem, table = make(tmp_path, 3000, dim=384, clusters=100)
    vectors = list(table.values())
    exact = VectorIndex(mem.store, "table", 384)
    approx = VectorIndex(mem.store, "table", 384, exact_below=100, rerank=300)
    rng = np.random.default_rng(1)
    overlap = []
    for _ in range(20):
        near = vectors[int(rng.integers(len(vectors)))]
        query = normalize(near + 0.6 * rng.standard_normal(384).astype(np.float32))
        truth = {r for r, _ in exact.search("default", query, 10)[0]}
        found = {r for r, _ in approx.search("default", query, 10)[0]}
        overlap.append(len(truth & found) / 10)
    assert np.mean(overlap) >= 0.9


def test_codes_only_index_reranks_from_the_store(tmp_path: Path) -> None:
    mem, table = make(tmp_path, 500)
    index = VectorIndex(mem.store, "table", 64, max_float_vectors=100, exact_below=10, rerank=50)
    target = table["m123"]
    hits, _ = index.search("default", normalize(target), 1)
    assert mem.store.memory_records("default", [hits[0][0]])[hits[0][0]].content == "m123"


def test_window_similarity_uses_session_neighbours(tmp_path: Path) -> None:
    mem, table = make(tmp_path, 7, sessions=True)
    index = VectorIndex(mem.store, "table", 64)
    query = normalize(table["m3"])
    plain = dict(index.search("default", query, 7)[0])
    windowed = dict(index.search("default", query, 7, window=0.5)[0])
    matrix = normalize(np.stack([table[f"m{i}"] for i in range(7)]))
    rowids = sorted(plain)  # inserted in order: rowid order is session order
    for i, rowid in enumerate(rowids):
        lo, hi = max(0, i - 2), min(7, i + 3)
        w = matrix[lo:hi].sum(axis=0)
        expected = 0.5 * matrix[i] @ query + 0.5 * (w @ query) / np.linalg.norm(w)
        assert windowed[rowid] == np.float32(expected) or abs(windowed[rowid] - expected) < 1e-5
    # forgetting a neighbour changes the window
    mem.forget(mem.store.memory_records("default", [rowids[2]])[rowids[2]].id)
    after = dict(index.search("default", query, 7, window=0.5)[0])
    assert rowids[2] not in after and after[rowids[3]] != windowed[rowids[3]]


# -- issue 14: one refresh path, one pool, scoring outside the lock ---------------------------


def test_issue14_vectors_no_store_transaction_per_search_when_nothing_changed(
    tmp_path: Path,
) -> None:
    mem, table = make(tmp_path, 50)
    index = VectorIndex(mem.store, "table", 64)
    calls = []
    real = mem.store.vector_changes

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    mem.store.vector_changes = counted  # type: ignore[method-assign]
    query = normalize(table["m7"])
    first = index.search("default", query, 5)
    after_first = len(calls)
    assert after_first >= 1
    for _ in range(10):
        assert index.search("default", query, 5) == first
    assert len(calls) == after_first  # nothing changed: the store's changes were not read
    extra = np.asarray(table["m7"], dtype=np.float32) * 3 + 0.01
    mem.embedder.table["new"] = extra  # type: ignore[attr-defined]
    record = mem.remember("new")
    hits, _ = index.search("default", normalize(extra), 1)
    assert len(calls) > after_first
    assert mem.store.memory_records("default", [hits[0][0]])[hits[0][0]].id == record.id


def test_issue14_vectors_one_scan_pool_for_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engramdb.search import vectors

    made = []

    class Counting(ThreadPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(vectors, "ThreadPoolExecutor", Counting)
    monkeypatch.setattr(vectors, "_pool", None)
    monkeypatch.setattr(vectors, "_SCAN_CHUNK", 64)  # several chunks: the scan uses the pool
    mem, _ = make(tmp_path, 400, clusters=10)
    approx = VectorIndex(mem.store, "table", 64, exact_below=10, rerank=40)
    rng = np.random.default_rng(3)
    for _ in range(5):
        query = normalize(rng.standard_normal(64).astype(np.float32))
        chunked = approx.search("default", query, 5)
        assert len(chunked[0]) == 5
        # the pool's chunks find what one scan in a single chunk finds
        monkeypatch.setattr(vectors, "_SCAN_CHUNK", 1 << 20)
        assert approx.search("default", query, 5) == chunked
        monkeypatch.setattr(vectors, "_SCAN_CHUNK", 64)
    assert len(made) == 1
    monkeypatch.undo()
    made[0].shutdown(wait=False)


def test_issue14_vectors_scoring_runs_outside_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engramdb.search import vectors

    mem, table = make(tmp_path, 200)
    index = VectorIndex(mem.store, "table", 64, exact_below=10, rerank=20)
    index.refresh()
    scoring, release = threading.Event(), threading.Event()
    real = vectors._hamming

    def slow(words: Any, code: Any) -> Any:
        scoring.set()
        release.wait(30)
        return real(words, code)

    monkeypatch.setattr(vectors, "_hamming", slow)
    searcher = threading.Thread(
        target=index.search, args=("default", normalize(table["m1"]), 3), daemon=True
    )
    searcher.start()
    try:
        assert scoring.wait(30)
        mem.embedder.table["later"] = table["m2"]  # type: ignore[attr-defined]
        mem.remember("later")
        # a refresh (a writer's change reaching the index) must not wait for the scoring
        refresher = threading.Thread(target=index.refresh, daemon=True)
        refresher.start()
        refresher.join(20)
        assert not refresher.is_alive()
    finally:
        release.set()
        searcher.join(30)
    assert len(index) == 201


def test_issue14_vectors_concurrent_searches_and_writes_stay_correct(tmp_path: Path) -> None:
    dim = 32
    rng = np.random.default_rng(11)
    table = {f"a{i}": rng.standard_normal(dim).astype(np.float32) for i in range(300)}
    table |= {f"b{i}": rng.standard_normal(dim).astype(np.float32) for i in range(300)}
    mem = Memory(open_store(tmp_path), embedder=TableEmbedder(table))
    mem.remember_many([{"content": f"a{i}", "session_id": "s"} for i in range(100)], namespace="a")
    mem.remember_many([{"content": f"b{i}"} for i in range(100)], namespace="b")
    index = VectorIndex(mem.store, "table", dim, exact_below=50, rerank=30)
    stop = threading.Event()
    seen: list[list[int]] = []
    failures: list[BaseException] = []

    def reader(seed: int) -> None:
        local = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                query = normalize(local.standard_normal(dim).astype(np.float32))
                window = 0.3 if len(seen) % 2 else 0.0  # windows read session neighbours
                seen.append([r for r, _ in index.search("a", query, 10, window=window)[0]])
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    readers = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(100, 300, 10):  # a writer adding to both namespaces meanwhile
            mem.remember_many(
                [{"content": f"a{j}", "session_id": "s"} for j in range(i, i + 10)], namespace="a"
            )
            mem.remember_many([{"content": f"b{j}"} for j in range(i, i + 10)], namespace="b")
    finally:
        stop.set()
        for t in readers:
            t.join(30)
    assert not failures and seen
    live_a = set(_rowids(mem, "a"))
    for found in seen:
        assert len(found) == 10 and set(found) <= live_a
    # and once the writer is done, the index answers exactly as a fresh one
    query = normalize(rng.standard_normal(dim).astype(np.float32))
    fresh = VectorIndex(mem.store, "table", dim, exact_below=50, rerank=30)
    for window in (0.0, 0.3):
        expected = fresh.search("a", query, 10, window=window)
        assert index.search("a", query, 10, window=window) == expected


def _rowids(mem: Memory, namespace: str) -> list[int]:
    conn = sqlite3.connect(mem.store.path)  # type: ignore[attr-defined]
    try:
        rows = conn.execute("SELECT rowid FROM memories WHERE namespace = ?", (namespace,))
        return [r[0] for r in rows]
    finally:
        conn.close()


def test_issue14_vectors_change_counter_sees_another_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    mem = Memory(open_store(tmp_path), embedder="hashing")
    mem.remember("the first memory about apples")
    assert mem.recall("apples", mode="vector")  # the index is loaded
    calls = []
    real = mem.store.vector_changes

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    mem.store.vector_changes = counted  # type: ignore[method-assign]
    mem.recall("apples", mode="vector")
    assert not calls  # nothing changed
    code = (
        "import sys; from engramdb import Memory, open_store; "
        "Memory(open_store(sys.argv[1]), embedder='hashing').remember('zebra crossing stripes')"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)
    hits = mem.recall("zebra crossing stripes", mode="vector")
    assert calls and hits[0].memory.content == "zebra crossing stripes"
