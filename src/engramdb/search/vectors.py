"""Nearest-neighbour search over a store's embeddings, kept in step with every writer.

The index holds one entry per chunk vector (a long memory has several, see
:mod:`engramdb.embed.chunking`; a memory scores by its best chunk) and, per entry, its
namespace and a 1-bit-per-dimension sign code (48 bytes
for 384 dimensions) — and, while the collection is small enough, the float vector itself. A
query takes the candidates of its namespace (and filter), ranks them exactly by cosine when
there are few, or else by Hamming distance of the codes first and then exactly for the best
``rerank`` of them. The index catches up with writes from any thread or process before each
search, through the store's embedding sequence and removal log — read only when the store's
change counter (``Store.vector_version``) has moved since the last look.

Concurrency: the lock guards the index's arrays only while they change (a refresh) and while a
search takes its snapshot (the size, the arrays, a copy of the live flags); scoring runs
outside it. Appends only write past the size a snapshot saw (or into new arrays after a
growth), so a snapshot stays consistent while writers add. Full Hamming scans of big indexes
run on one thread pool for the whole process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..store import Store
from ..store.base import VectorHit

Codes = npt.NDArray[np.uint64]
_SCAN_THREADS = min(4, os.cpu_count() or 1)
_SCAN_CHUNK = 131_072
_SCORING = threading.BoundedSemaphore(max(1, (os.cpu_count() or 1) // 2))
"""Searches scoring at once, process-wide (more wait here, not on an index's lock)."""
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def scan_pool() -> ThreadPoolExecutor:
    """The process's one pool for chunked Hamming scans (a forked child makes its own)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(_SCAN_THREADS, thread_name_prefix="engramdb-vectors")
            _pool_pid = os.getpid()
        return _pool


def binary_code(vectors: npt.NDArray[np.float32]) -> Codes:
    """Sign bits of each vector packed into 64-bit words, shape ``(n, ceil(dim / 64))``."""
    bits = np.asarray(vectors) > 0
    pad = (-bits.shape[-1]) % 64
    if pad:
        bits = np.concatenate([bits, np.zeros((*bits.shape[:-1], pad), dtype=bool)], axis=-1)
    packed = np.packbits(bits, axis=-1)
    return np.ascontiguousarray(packed).view(np.uint64)


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
        self._chunks = np.zeros(0, dtype=np.int32)
        self._spans = np.zeros((2, 0), dtype=np.int64)
        # each entry's memory's chunk 0 (the memory's place in its session window)
        self._heads = np.zeros(0, dtype=np.int64)
        self._ns = np.zeros(0, dtype=np.int32)
        self._alive = np.zeros(0, dtype=bool)
        # one row per 64-bit word of the codes, one column per vector: a scan reads each word
        # row contiguously, which is several times faster than row-per-vector
        self._words = np.zeros(((dim + 63) // 64, 0), dtype=np.uint64)
        self._floats: npt.NDArray[np.float32] | None = np.zeros((0, dim), dtype=np.float32)
        self._position: dict[int, list[int]] = {}  # a memory's entries, chunk order
        self._namespaces: dict[str, int] = {}
        # session order (between chunk 0 entries): positions of the 2 previous and 2 next
        # memories of the same session (-1: none), for "window" similarity; and each
        # session's last two positions
        self._links = np.full((4, 0), -1, dtype=np.int64)
        self._window_norm = np.zeros(0, dtype=np.float32)  # NaN: to be computed
        self._session_tail: dict[tuple[int, str], list[int]] = {}
        self._embedding_seq = 0
        self._removal_seq = 0
        self._version: int | None = None  # the store's change counter as of the last refresh
        self._generation = 0  # bumped by every refresh that changed the index

    def __len__(self) -> int:
        """Live memories (not chunks) in the index."""
        return len(self._position)

    # -- keeping up with the store ---------------------------------------------------------
    def refresh(self) -> None:
        """Apply every embedding written or removed since the last look — the one way the
        index learns of changes. It asks the store's change counter first (no transaction);
        only when the counter moved does it read the changes (``vector_changes``)."""
        version = self.store.vector_version()
        if version == self._version:
            return
        with self._lock:
            if version == self._version:  # another search caught up meanwhile
                return
            changed = False
            while True:
                delta = self.store.vector_changes(
                    self._embedding_seq, self._removal_seq, limit=50_000
                )
                for rowid in delta.removed:
                    if self._kill(rowid):
                        changed = True
                self._removal_seq = delta.removal_seq
                if delta.rowids:
                    changed = True
                    self._append(
                        delta.rowids,
                        delta.namespaces,
                        delta.models,
                        delta.vectors,
                        delta.sessions or [None] * len(delta.rowids),
                        delta.chunks or [0] * len(delta.rowids),
                        delta.spans or [(0, 0)] * len(delta.rowids),
                    )
                if delta.embedding_seq == self._embedding_seq:
                    break
                self._embedding_seq = delta.embedding_seq
            if changed:
                self._generation += 1
            # the counter was read before the changes: a write landing in between moves it
            # again, so the next search looks again
            self._version = version

    def _kill(self, rowid: int) -> bool:
        """Drop every entry of a memory; False if it had none."""
        positions = self._position.pop(rowid, None)
        if positions is None:
            return False
        self._alive[positions] = False
        near = self._links[:, positions[0]]
        self._window_norm[near[near >= 0]] = np.nan
        return True

    def _append(
        self,
        rowids: Sequence[int],
        namespaces: Sequence[str],
        models: Sequence[str],
        vectors: Sequence[bytes],
        sessions: Sequence[str | None],
        chunks: Sequence[int],
        spans: Sequence[tuple[int, int]],
    ) -> None:
        keep = [i for i, m in enumerate(models) if m == self.model]
        if not keep:
            return
        floats = np.frombuffer(b"".join(vectors[i] for i in keep), dtype=np.float32)
        floats = floats.reshape(len(keep), self.dim)
        start, end = self._size, self._size + len(keep)
        self._grow(end)
        heads = np.empty(len(keep), dtype=np.int64)
        for offset, i in enumerate(keep):
            pos = start + offset
            if chunks[i] == 0:  # a new embedding of the memory: it replaces the old one
                self._kill(rowids[i])
                self._position[rowids[i]] = [pos]
            else:  # the next chunk of the embedding whose chunk 0 came before
                self._position.setdefault(rowids[i], [pos]).append(pos)
            heads[offset] = self._position[rowids[i]][0]
        ns_ids = [self._namespaces.setdefault(namespaces[i], len(self._namespaces)) for i in keep]
        self._rowids[start:end] = [rowids[i] for i in keep]
        self._chunks[start:end] = [chunks[i] for i in keep]
        self._spans[:, start:end] = np.array([spans[i] for i in keep], dtype=np.int64).T
        self._heads[start:end] = heads
        self._ns[start:end] = ns_ids
        self._alive[start:end] = True
        self._window_norm[start:end] = np.nan
        for offset, i in enumerate(keep):
            if sessions[i] is not None and chunks[i] == 0:
                self._link(start + offset, (ns_ids[offset], sessions[i]))  # type: ignore[arg-type]
        self._words[:, start:end] = binary_code(floats).T
        if self._floats is not None:
            if end > self.max_float_vectors:
                self._floats = None  # too many to hold: rerank from the store from now on
            else:
                self._floats[start:end] = floats
        self._size = end

    def _link(self, pos: int, session: tuple[int, str]) -> None:
        tail = self._session_tail.setdefault(session, [])
        for distance, before in enumerate(reversed(tail), start=1):  # nearest first
            self._links[2 - distance, pos] = before  # rows 1 (prev1) and 0 (prev2)
            self._links[1 + distance, before] = pos  # rows 2 (next1) and 3 (next2)
            self._window_norm[before] = np.nan
        tail.append(pos)
        del tail[:-2]

    def _grow(self, needed: int) -> None:
        capacity = len(self._rowids)
        if needed <= capacity:
            return
        new = max(needed, capacity * 2, 1024)
        self._rowids = np.resize(self._rowids, new)
        self._chunks = np.resize(self._chunks, new)
        spans = np.zeros((2, new), dtype=np.int64)
        spans[:, :capacity] = self._spans
        self._spans = spans
        self._heads = np.resize(self._heads, new)
        self._ns = np.resize(self._ns, new)
        self._alive = np.concatenate([self._alive, np.zeros(new - capacity, dtype=bool)])
        links = np.full((4, new), -1, dtype=np.int64)
        links[:, :capacity] = self._links
        self._links = links
        self._window_norm = np.resize(self._window_norm, new)
        grown = np.zeros((self._words.shape[0], new), dtype=np.uint64)
        grown[:, :capacity] = self._words
        self._words = grown
        if self._floats is not None and new <= self.max_float_vectors:
            self._floats = np.concatenate(
                [self._floats, np.zeros((new - capacity, self.dim), dtype=np.float32)]
            )

    # -- searching -------------------------------------------------------------------------
    def _snapshot(self, namespace: str) -> _Snapshot | None:
        """The index as of now, for one search to score without the lock (``None``: the
        namespace has no vectors)."""
        with self._lock:
            ns_id = self._namespaces.get(namespace)
            if ns_id is None:
                return None
            size, generation = self._size, self._generation
            alive = self._alive[:size].copy()  # removals flip these in place: copy them
            ns = self._ns[:size]  # below size, written once: a view is enough
            rowids, words, floats, links = self._rowids, self._words, self._floats, self._links
            chunks, spans, heads = self._chunks, self._spans, self._heads
        return _Snapshot(
            size=size,
            generation=generation,
            alive=alive,
            mask=alive & (ns == ns_id),
            rowids=rowids,
            chunks=chunks,
            spans=spans,
            heads=heads,
            words=words,
            floats=floats,
            links=links,
        )

    def search(
        self,
        namespace: str,
        query: npt.NDArray[np.float32],
        k: int,
        *,
        allowed: Sequence[int] | None = None,
        window: float = 0.0,
    ) -> tuple[list[tuple[int, float]], float | None]:
        """The ``k`` nearest ``(rowid, similarity)`` of a namespace (see :meth:`search_chunks`,
        which also says which chunk matched)."""
        hits, floor = self.search_chunks(namespace, query, k, allowed=allowed, window=window)
        return [(h.rowid, h.score) for h in hits], floor

    def search_chunks(
        self,
        namespace: str,
        query: npt.NDArray[np.float32],
        k: int,
        *,
        allowed: Sequence[int] | None = None,
        window: float = 0.0,
    ) -> tuple[list[VectorHit], float | None]:
        """The ``k`` nearest memories of a namespace, optionally among ``allowed``, best
        first, and the lowest similarity scored exactly (``None`` if none were). A memory
        scores by its best chunk; each hit names that chunk and its span.

        With ``window`` > 0 (and the vectors held in memory), a chunk's similarity is
        ``(1 - window) * cos(q, v) + window * cos(q, w)`` where ``w`` sums the first chunk
        of its memory with the first chunks of the two memories before and after it in its
        session: a turn is found by what the conversation around it was about (LoCoMo
        recall@10 +0.01 at 0.5). A memory's first chunk stands for it in its neighbours'
        windows (for a short memory, its only one).
        """
        self.refresh()
        if k <= 0:
            return [], None
        snap = self._snapshot(namespace)
        if snap is None:
            return [], None
        # the index's lock is free meanwhile (writers' changes and other snapshots do not
        # wait); concurrent scorings are bounded by the cores, as numpy's BLAS threads
        # thrash when more products run at once than there are cores for
        with _SCORING:
            size, mask = snap.size, snap.mask
            if allowed is not None:
                mask &= np.isin(snap.rowids[:size], np.asarray(allowed, dtype=np.int64))
            count = int(mask.sum())
            q = np.asarray(query, dtype=np.float32)
            if count > self.exact_below or snap.floats is None:
                candidates = self._by_hamming(snap, count, q, max(self.rerank, k))
            else:
                candidates = np.flatnonzero(mask)
            rowids = snap.rowids[candidates]
            scores: npt.NDArray[np.float32] | None = None
            if snap.floats is not None:
                if window > 0:
                    scores = self._window_scores(snap, candidates, q, window)
                elif len(candidates) == size:  # every vector is a candidate: no copy
                    scores = snap.floats[:size] @ q
                else:
                    scores = snap.floats[candidates] @ q
        if scores is None:
            stored = self.store.memory_vectors(namespace, np.unique(rowids).tolist())
            size = self.dim * 4
            present = [n for n, r in enumerate(rowids.tolist()) if r in stored]
            candidates, rowids = candidates[present], rowids[present]
            if not len(rowids):
                return [], None
            chunks = snap.chunks[candidates].tolist()
            floats = np.frombuffer(
                b"".join(
                    stored[r][c * size : (c + 1) * size]
                    for r, c in zip(rowids.tolist(), chunks, strict=True)
                ),
                dtype=np.float32,
            ).reshape(len(rowids), self.dim)
            scores = floats @ q
        if not len(scores):
            return [], None
        best = best_per_memory(scores, rowids, k)
        pos = candidates[best]
        hits = [
            VectorHit(*hit)
            for hit in zip(
                rowids[best].tolist(),
                scores[best].tolist(),
                snap.chunks[pos].tolist(),
                snap.spans[0, pos].tolist(),
                snap.spans[1, pos].tolist(),
                strict=True,
            )
        ]
        return hits, float(scores.min())

    def _window_scores(
        self,
        snap: _Snapshot,
        candidates: npt.NDArray[np.intp],
        q: npt.NDArray[np.float32],
        window: float,
    ) -> npt.NDArray[np.float32]:
        floats, size = snap.floats, snap.size
        assert floats is not None
        entries = candidates
        candidates = snap.heads[entries]  # the window is the memory's (its first chunk's)
        links = snap.links[:, candidates]
        # neighbours added after the snapshot (positions past its size) are not in it
        live = (links >= 0) & (links < size)
        live[live] = snap.alive[links[live]]
        links = np.where(live, links, -1)
        needed = np.union1d(candidates, links[links >= 0])
        sims = floats[needed] @ q
        head = sims[np.searchsorted(needed, candidates)]
        own = floats[entries] @ q if len(entries) and (entries != candidates).any() else head
        total = head.copy()
        for row in links:
            present = row >= 0
            total[present] += sims[np.searchsorted(needed, row[present])]
        norms = self._window_norm[candidates]  # a copy
        if self._generation != snap.generation:  # cached norms may be of a newer index
            norms[:] = np.nan
        stale = np.isnan(norms)
        if stale.any():
            fresh = floats[candidates[stale]].copy()
            for row in links[:, stale]:
                present = row >= 0
                fresh[present] += floats[row[present]]
            norms[stale] = np.maximum(np.linalg.norm(fresh, axis=1), 1e-12)
            with self._lock:  # keep them only if they describe the index as it still is
                if self._generation == snap.generation:
                    self._window_norm[candidates[stale]] = norms[stale]
        out: npt.NDArray[np.float32] = (1 - window) * own + window * (total / norms)
        return out

    def _by_hamming(
        self, snap: _Snapshot, count: int, query: npt.NDArray[np.float32], keep: int
    ) -> npt.NDArray[np.intp]:
        """Positions of the ``keep`` (or a few more, at ties) codes nearest the query's."""
        mask, size, words = snap.mask, snap.size, snap.words
        if count <= keep:
            return np.flatnonzero(mask)
        code = binary_code(query[None, :])[0]
        if count < size // 4:  # a small namespace in a big index: gather, then scan
            positions = np.flatnonzero(mask)
            distances = _hamming(words[:, positions], code)
        else:
            positions = None
            distances = np.empty(size, dtype=np.uint16)
            chunks = [(i, min(size, i + _SCAN_CHUNK)) for i in range(0, size, _SCAN_CHUNK)]

            def scan(bounds: tuple[int, int]) -> None:
                lo, hi = bounds
                distances[lo:hi] = _hamming(words[:, lo:hi], code)

            if len(chunks) == 1:
                scan(chunks[0])
            else:  # numpy releases the GIL: the chunks run in parallel
                list(scan_pool().map(scan, chunks))
            distances[~mask] = np.iinfo(np.uint16).max
        # the smallest distance d whose count of codes at <= d reaches keep
        cumulative = np.cumsum(np.bincount(distances, minlength=self.dim + 1)[: self.dim + 1])
        cutoff = int(np.searchsorted(cumulative, keep))
        chosen = np.flatnonzero(distances <= cutoff)
        return chosen if positions is None else positions[chosen]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What one search reads, taken under the index's lock: positions below ``size`` never
    change in these arrays (appends write past it, growth makes new arrays); ``alive`` is a
    copy of the live flags and ``mask`` the namespace's live positions, as of the snapshot."""

    size: int
    generation: int
    alive: npt.NDArray[np.bool_]
    mask: npt.NDArray[np.bool_]
    rowids: npt.NDArray[np.int64]
    chunks: npt.NDArray[np.int32]
    spans: npt.NDArray[np.int64]
    heads: npt.NDArray[np.int64]
    words: Codes
    floats: npt.NDArray[np.float32] | None
    links: npt.NDArray[np.int64]


def _hamming(words: Codes, code: Codes) -> npt.NDArray[np.uint16]:
    """Hamming distance of each column of ``words`` (one row per 64-bit word) to ``code``."""
    out = np.zeros(words.shape[1], dtype=np.uint16)
    for row, word in zip(words, code, strict=True):
        out += np.bitwise_count(row ^ word)
    return out


def best_per_memory(
    scores: npt.NDArray[np.float32], rowids: npt.NDArray[np.int64], k: int
) -> npt.NDArray[np.intp]:
    """Positions of the ``k`` best memories' best entries (a memory scores by its best
    chunk), best first; the order among equal scores is not defined."""
    if len(scores) > k:
        # most entries cannot reach the top k: when the k best entries are k memories, they
        # are the answer (any other memory's best entry scores no higher), and only they
        # are sorted
        top = _top_k(scores, k)
        if len(np.unique(rowids[top])) == k:
            return top
    order = np.argsort(-scores, kind="stable")
    _, first = np.unique(rowids[order], return_index=True)
    best: npt.NDArray[np.intp] = order[np.sort(first)][:k]
    return best


def _top_k(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    if len(scores) > k:
        part = np.argpartition(-scores, k)[:k]
        return part[np.argsort(-scores[part], kind="stable")]
    return np.argsort(-scores, kind="stable")
