"""Nearest-neighbour search over a store's embeddings, kept in step with every writer.

The index holds, per embedding, its namespace and a 1-bit-per-dimension sign code (48 bytes
for 384 dimensions) — and, while the collection is small enough, the float vector itself. A
query takes the candidates of its namespace (and filter), ranks them exactly by cosine when
there are few, or else by Hamming distance of the codes first and then exactly for the best
``rerank`` of them. The index catches up with writes from any thread or process before each
search, through the store's embedding sequence and removal log.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..store import Store

Codes = npt.NDArray[np.uint8]


def binary_code(vectors: npt.NDArray[np.float32]) -> Codes:
    """Sign bits of each vector, packed: the compact code the index scans first."""
    return np.packbits(np.asarray(vectors) > 0, axis=-1)


class VectorIndex:
    """In-process vector index for one store and one embedding model."""

    def __init__(
        self,
        store: Store,
        model: str,
        dim: int,
        *,
        exact_below: int = 20_000,
        rerank: int = 500,
        max_float_vectors: int = 200_000,
    ) -> None:
        self.store, self.model, self.dim = store, model, dim
        self.exact_below, self.rerank, self.max_float_vectors = (
            exact_below,
            rerank,
            max_float_vectors,
        )
        self._lock = threading.Lock()
        self._size = 0
        self._rowids = np.zeros(0, dtype=np.int64)
        self._ns = np.zeros(0, dtype=np.int32)
        self._alive = np.zeros(0, dtype=bool)
        self._codes = np.zeros((0, (dim + 7) // 8), dtype=np.uint8)
        self._floats: npt.NDArray[np.float32] | None = np.zeros((0, dim), dtype=np.float32)
        self._position: dict[int, int] = {}
        self._namespaces: dict[str, int] = {}
        self._embedding_seq = 0
        self._removal_seq = 0

    def __len__(self) -> int:
        return int(self._alive[: self._size].sum())

    # -- keeping up with the store ---------------------------------------------------------
    def refresh(self) -> None:
        """Apply every embedding written or removed since the last look."""
        with self._lock:
            while True:
                delta = self.store.vector_changes(
                    self._embedding_seq, self._removal_seq, limit=50_000
                )
                for rowid in delta.removed:
                    pos = self._position.pop(rowid, None)
                    if pos is not None:
                        self._alive[pos] = False
                self._removal_seq = delta.removal_seq
                if delta.rowids:
                    self._append(delta.rowids, delta.namespaces, delta.models, delta.vectors)
                if delta.embedding_seq == self._embedding_seq:
                    return
                self._embedding_seq = delta.embedding_seq

    def _append(
        self,
        rowids: Sequence[int],
        namespaces: Sequence[str],
        models: Sequence[str],
        vectors: Sequence[bytes],
    ) -> None:
        keep = [i for i, m in enumerate(models) if m == self.model]
        if not keep:
            return
        floats = np.frombuffer(b"".join(vectors[i] for i in keep), dtype=np.float32)
        floats = floats.reshape(len(keep), self.dim)
        start, end = self._size, self._size + len(keep)
        self._grow(end)
        for offset, i in enumerate(keep):
            old = self._position.get(rowids[i])
            if old is not None:  # re-embedded: the new vector replaces the old one
                self._alive[old] = False
            self._position[rowids[i]] = start + offset
        ns_ids = [self._namespaces.setdefault(namespaces[i], len(self._namespaces)) for i in keep]
        self._rowids[start:end] = [rowids[i] for i in keep]
        self._ns[start:end] = ns_ids
        self._alive[start:end] = True
        self._codes[start:end] = binary_code(floats)
        if self._floats is not None:
            if end > self.max_float_vectors:
                self._floats = None  # too many to hold: rerank from the store from now on
            else:
                self._floats[start:end] = floats
        self._size = end

    def _grow(self, needed: int) -> None:
        capacity = len(self._rowids)
        if needed <= capacity:
            return
        new = max(needed, capacity * 2, 1024)
        self._rowids = np.resize(self._rowids, new)
        self._ns = np.resize(self._ns, new)
        self._alive = np.concatenate([self._alive, np.zeros(new - capacity, dtype=bool)])
        self._codes = np.concatenate(
            [self._codes, np.zeros((new - capacity, self._codes.shape[1]), dtype=np.uint8)]
        )
        if self._floats is not None and new <= self.max_float_vectors:
            self._floats = np.concatenate(
                [self._floats, np.zeros((new - capacity, self.dim), dtype=np.float32)]
            )

    # -- searching -------------------------------------------------------------------------
    def search(
        self,
        namespace: str,
        query: npt.NDArray[np.float32],
        k: int,
        *,
        allowed: Sequence[int] | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest ``(rowid, cosine)`` of a namespace, optionally among ``allowed``."""
        self.refresh()
        with self._lock:
            ns_id = self._namespaces.get(namespace)
            if ns_id is None or k <= 0:
                return []
            size = self._size
            mask = self._alive[:size] & (self._ns[:size] == ns_id)
            if allowed is not None:
                mask &= np.isin(self._rowids[:size], np.asarray(allowed, dtype=np.int64))
            candidates = np.flatnonzero(mask)
            if len(candidates) > self.exact_below or self._floats is None:
                candidates = self._by_hamming(candidates, query, max(self.rerank, k))
            rowids = self._rowids[candidates]
            floats = None if self._floats is None else self._floats[candidates]
        if floats is None:
            stored = self.store.memory_vectors(namespace, rowids.tolist())
            rowids = np.array([r for r in rowids.tolist() if r in stored], dtype=np.int64)
            if not len(rowids):
                return []
            floats = np.frombuffer(
                b"".join(stored[r] for r in rowids.tolist()), dtype=np.float32
            ).reshape(len(rowids), self.dim)
        scores = floats @ np.asarray(query, dtype=np.float32)
        top = _top_k(scores, k)
        return [(int(rowids[i]), float(scores[i])) for i in top]

    def _by_hamming(
        self, candidates: npt.NDArray[np.intp], query: npt.NDArray[np.float32], keep: int
    ) -> npt.NDArray[np.intp]:
        if len(candidates) <= keep:
            return candidates
        code = binary_code(query[None, :])[0]
        distances = np.bitwise_count(np.bitwise_xor(self._codes[candidates], code)).sum(
            axis=1, dtype=np.int32
        )
        best = np.argpartition(distances, keep)[:keep]
        return candidates[best]


def _top_k(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    if len(scores) > k:
        part = np.argpartition(-scores, k)[:k]
        return part[np.argsort(-scores[part], kind="stable")]
    return np.argsort(-scores, kind="stable")
