"""The vector index's choice of the k best memories (each scored by its best chunk): the
shortcut that sorts only the k best entries gives what sorting every entry gives."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb.search.vectors import best_per_memory


def by_full_sort(scores: np.ndarray, rowids: np.ndarray, k: int) -> list[int]:
    """The definition: entries best first, each memory at its first (best) entry, k of them."""
    seen: set[int] = set()
    out: list[int] = []
    for i in sorted(range(len(scores)), key=lambda i: -scores[i]):
        if int(rowids[i]) not in seen:
            seen.add(int(rowids[i]))
            out.append(i)
    return out[:k]


@settings(max_examples=300, deadline=None)
@given(
    entries=st.lists(
        st.tuples(st.integers(0, 40), st.floats(-1, 1, allow_nan=False, width=32)),
        min_size=1,
        max_size=120,
        unique_by=lambda e: e[1],  # distinct scores: the order among equal ones is undefined
    ),
    k=st.integers(1, 60),
)
def test_issue14_best_per_memory_is_the_full_sort(entries: list[tuple[int, float]], k: int) -> None:
    rowids = np.array([r for r, _ in entries], dtype=np.int64)
    scores = np.array([s for _, s in entries], dtype=np.float32)
    assert best_per_memory(scores, rowids, k).tolist() == by_full_sort(scores, rowids, k)


def test_issue14_best_per_memory_with_several_chunks_among_the_best() -> None:
    # memory 1's two chunks are the two best entries: the k best memories reach past them
    rowids = np.array([1, 1, 2, 3, 4], dtype=np.int64)
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.5], dtype=np.float32)
    assert best_per_memory(scores, rowids, 2).tolist() == [0, 2]
    assert best_per_memory(scores, rowids, 3).tolist() == [0, 2, 4]
    assert best_per_memory(scores, rowids, 9).tolist() == [0, 2, 4, 3]
