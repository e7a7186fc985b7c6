"""The in-process vector index: exact below a size, Hamming preselection above, windows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

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
