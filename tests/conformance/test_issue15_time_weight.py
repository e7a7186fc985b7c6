"""Issue 15 item 3 on every backend: a memory inside the window the query names scores
twice its fused score by default (``time_weight`` 1.0, measured on LoCoMo)."""

from __future__ import annotations

import pytest

from engramdb import Memory, RecallSettings
from engramdb.store import Store

AS_OF = "2026-12-02T10:00:00+00:00"  # a Wednesday: last weekend is 28-29 November


def test_issue15_time_weight_default_doubles_the_window(store: Store) -> None:
    mem = Memory(store, embedder=None)
    mem.remember_many(
        [
            {"content": "bought a new bike at the shop", "occurred_at": "2026-11-28T15:00:00Z"},
            {"content": "bought bike lights and a lock", "occurred_at": "2026-10-03T12:00:00Z"},
        ]
    )
    query = "which bike things were bought last weekend?"
    hits = {h.memory.content: h for h in mem.recall(query, as_of=AS_OF, explain=True)}
    inside = hits["bought a new bike at the shop"]
    assert inside.explain is not None
    # the boost adds the fused score once more: x(1 + 1.0)
    assert inside.explain["boosts"]["time"] == pytest.approx(inside.score / 2)
    outside = hits["bought bike lights and a lock"].explain
    assert outside is not None and "time" not in outside["boosts"]
    # the weight is a setting: 0.5 adds half the fused score
    half = mem.recall(query, as_of=AS_OF, explain=True, settings=RecallSettings(time_weight=0.5))
    top = next(h for h in half if h.memory.content == "bought a new bike at the shop")
    assert top.explain is not None
    assert top.explain["boosts"]["time"] == pytest.approx(top.score / 3)
