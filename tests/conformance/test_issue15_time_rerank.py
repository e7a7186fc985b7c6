"""Issue 15 items 2 and 6 on every backend: the time the query names picks the memory, and
a reranker reorders the best candidates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from engramdb import Memory, RecallSettings
from engramdb.errors import InvalidInputError
from engramdb.search.rerank import Reranker, RerankError
from engramdb.store import Store

AS_OF = "2026-12-02T10:00:00+00:00"  # a Wednesday: last weekend is 28-29 November


def purchases(mem: Memory) -> None:
    mem.remember_many(
        [
            # better text matches, earlier
            {
                "content": "bought bike lights, a bike lock and a bike bag",
                "occurred_at": "2026-10-03T12:00:00Z",
            },
            {"content": "bought a new bike at the shop", "occurred_at": "2026-11-28T15:00:00Z"},
            {"content": "bought a bike pump online", "occurred_at": "2025-06-10T09:00:00Z"},
            {"content": "the weather was sunny", "occurred_at": "2026-11-29T10:00:00Z"},
        ]
    )


def contents(hits: Sequence[object]) -> list[str]:
    return [h.memory.content for h in hits]  # type: ignore[attr-defined]


def test_issue15_temporal_window_picks_the_memory(store: Store) -> None:
    mem = Memory(store, embedder=None)
    purchases(mem)
    query = "which bike things were bought last weekend?"
    off = mem.recall(query, as_of=AS_OF, settings=RecallSettings(time_mode="off"))
    assert contents(off)[0] != "bought a new bike at the shop"  # text alone ranks it lower
    hits = mem.recall(query, as_of=AS_OF, explain=True)
    assert contents(hits)[0] == "bought a new bike at the shop"
    assert hits[0].score > hits[1].score
    # the explain view shows the window applied, and which hit it boosted
    assert hits[0].explain is not None
    time = hits[0].explain["time"]
    assert time["since"] == "2026-11-28T00:00:00Z"
    assert time["until"] == "2026-11-30T00:00:00Z"
    assert time["applied"] == "boost" and time["expressions"] == ["last weekend"]
    assert "time" in hits[0].explain["boosts"] and "time" not in (hits[1].explain or {})["boosts"]
    # a datetime works as well as a string; another reference time moves the window
    assert contents(mem.recall(query, as_of=datetime(2026, 12, 2, tzinfo=UTC)))[0] == (
        "bought a new bike at the shop"
    )
    assert contents(mem.recall("bike bought last year", as_of="2026-03-01"))[0] == (
        "bought a bike pump online"
    )


def test_issue15_temporal_grace_after_the_window(store: Store) -> None:
    """A memory stored a few days after the window (told after it happened) gets part of
    the boost, less the later it is; one stored before the window or past the grace none."""
    mem = Memory(store, embedder=None)
    mem.remember_many(
        [
            {"content": "we went camping by the lake", "occurred_at": "2026-11-20T12:00:00Z"},
            {"content": "we went camping in the hills", "occurred_at": "2026-12-01T12:00:00Z"},
            {"content": "we went camping near the sea", "occurred_at": "2026-12-05T12:00:00Z"},
            {"content": "we went camping in the woods", "occurred_at": "2026-12-09T12:00:00Z"},
        ]
    )
    query = "camping last weekend"  # 28-29 November; a week of grace: to 7 December
    hits = mem.recall(query, as_of="2026-12-02T13:00:00Z", explain=True)
    boosts = {h.memory.content.split()[-1]: h.explain["boosts"].get("time", 0.0) for h in hits}  # type: ignore[index]
    assert boosts["hills"] > boosts["sea"] > 0.0
    assert boosts["lake"] == 0.0 and boosts["woods"] == 0.0
    assert [h.memory.content for h in hits][:2] == [
        "we went camping in the hills",
        "we went camping near the sea",
    ]
    no_grace = mem.recall(
        query,
        as_of="2026-12-02T13:00:00Z",
        explain=True,
        settings=RecallSettings(time_grace_days=0.0),
    )
    assert all("time" not in h.explain["boosts"] for h in no_grace)  # type: ignore[index]


def test_issue15_temporal_filter_mode_keeps_only_the_window(store: Store) -> None:
    mem = Memory(store, embedder=None)
    purchases(mem)
    hits = mem.recall("bike bought in October 2026", settings=RecallSettings(time_mode="filter"))
    assert contents(hits) == ["bought bike lights, a bike lock and a bike bag"]
    # the window narrows the caller's own since/until, never widens it
    hits = mem.recall(
        "bike bought since 2025",
        filters={"until": "2026-01-01T00:00:00Z"},
        settings=RecallSettings(time_mode="filter"),
    )
    assert contents(hits) == ["bought a bike pump online"]


def test_issue15_temporal_first_and_latest_order(store: Store) -> None:
    mem = Memory(store, embedder=None)
    mem.remember_many(
        [
            {"content": "went to Paris for work", "occurred_at": "2024-05-01T00:00:00Z"},
            {"content": "went to Paris with Ada", "occurred_at": "2021-03-01T00:00:00Z"},
            {"content": "went to Paris again", "occurred_at": "2025-09-01T00:00:00Z"},
        ]
    )
    settings = RecallSettings(time_mode="off")
    first = mem.recall("When did I first go to Paris?", as_of=AS_OF)
    assert contents(first)[0] == "went to Paris with Ada"
    latest = mem.recall("the most recent time I went to Paris", as_of=AS_OF)
    assert contents(latest)[0] == "went to Paris again"
    # without the time step the oldest is not first: the order comes from the question
    unordered = mem.recall("When did I first go to Paris?", as_of=AS_OF, settings=settings)
    assert contents(unordered)[0] != "went to Paris with Ada"


def test_issue15_temporal_as_of_is_validated(store: Store) -> None:
    mem = Memory(store, embedder=None)
    with pytest.raises(InvalidInputError, match="as_of"):
        mem.recall("anything last week", as_of="not a date")
    with pytest.raises(InvalidInputError, match="time_mode"):
        mem.recall("anything", settings=RecallSettings(time_mode="soon"))  # type: ignore[arg-type]


class Backwards:
    """A fake reranker: scores the documents in the reverse of the order given."""

    model = "fake:backwards"

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        self.calls.append((query, list(documents)))
        return [float(i) for i in range(len(documents))]


class Failing:
    model = "fake:failing"

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        raise RerankError("the reranker is down")


def test_issue15_rerank_reorders_the_best_candidates(store: Store) -> None:
    plain = Memory(store, embedder=None)
    plain.remember_many([{"content": f"note {n} about apples" + " x" * n} for n in range(6)])
    before = plain.recall("apples")
    assert len(before) == 6
    fake = Backwards()
    assert isinstance(fake, Reranker)
    mem = Memory(store, embedder=None, reranker=fake)
    after = mem.recall("apples", settings=RecallSettings(rerank_depth=4), explain=True)
    # the first four in reverse, the rest as they were
    assert contents(after) == contents(before)[:4][::-1] + contents(before)[4:]
    assert fake.calls == [("apples", contents(before)[:4])]
    # the reordered hits keep the scores of their places: scores still fall down the list
    assert [h.score for h in after] == pytest.approx([h.score for h in before])
    assert [h.explain["boosts"]["rerank"] for h in after[:4]] == [3.0, 2.0, 1.0, 0.0]  # type: ignore[index]
    # off by default, and a failing reranker leaves the order as fused
    assert contents(Memory(store, embedder=None).recall("apples")) == contents(before)
    failing = Memory(store, embedder=None, reranker=Failing())
    assert contents(failing.recall("apples")) == contents(before)


def test_issue15_rerank_rejects_what_is_not_a_reranker(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="reranker"):
        Memory(store, embedder=None, reranker="cohere")  # type: ignore[arg-type]
