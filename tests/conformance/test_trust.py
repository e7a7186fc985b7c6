"""Issue 10 items 1, 2 and 4 at the library level, on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from engramdb import InvalidInputError, Memory
from engramdb.embed import HashingEmbedder
from engramdb.search.query import split_tag_tokens
from engramdb.store import Store


@pytest.fixture
def mem(store: Store) -> Memory:
    return Memory(store, embedder=HashingEmbedder(256))


def contents(hits: list[Any]) -> list[str]:
    return [h.memory.content for h in hits]


# -- item 1: tag-like tokens -----------------------------------------------------------------


def test_item_01_a_query_that_is_a_tag_is_an_exact_tag_lookup(mem: Memory) -> None:
    for sid in ("s1", "s2", "s3"):
        for n in range(3):
            mem.remember(f"session {sid} said thing {n}", tags=[f"session:{sid}"])
    mem.remember("session notes without a tag")
    hits = mem.recall("session:s2", limit=50, explain=True)
    assert sorted(contents(hits)) == [f"session s2 said thing {n}" for n in range(3)]
    assert all(h.explain and set(h.explain["lanes"]) == {"tag"} for h in hits)
    # the explicit filter gives the same, and an unknown tag gives nothing (no vector fill)
    assert sorted(contents(mem.recall("", tags=["session:s2"], limit=50))) == sorted(contents(hits))
    assert mem.recall("session:s9", limit=50) == []
    # several tags in the query: all of them
    mem.remember("shared item", tags=["session:s1", "topic:x"])
    assert contents(mem.recall("session:s1 topic:x")) == ["shared item"]


def test_item_01_tag_tokens_rank_exact_matches_first(mem: Memory) -> None:
    mem.remember("the weekly budget meeting moved", tags=["session:a"])
    mem.remember("budget meeting budget meeting budget", tags=["session:b"])
    mem.remember("lunch order", tags=["session:a"])
    hits = mem.recall("session:a budget meeting", limit=10)
    got = contents(hits)
    # every memory tagged session:a comes before any that is not; the text still ranks
    assert set(got[:2]) == {"the weekly budget meeting moved", "lunch order"}
    assert got[0] == "the weekly budget meeting moved"
    assert "budget meeting budget meeting budget" in got[2:]


def test_item_01_filtered_recall_never_returns_neighbours_outside_the_filter(
    mem: Memory,
) -> None:
    mem.remember("alpha planning notes", session_id="chat", tags=["keep"])
    mem.remember("unrelated filler text", session_id="chat")  # next to it, without the tag
    hits = mem.recall("alpha planning", filters={"tags": ["keep"]}, limit=10)
    assert contents(hits) == ["alpha planning notes"]


def test_item_01_urls_and_times_are_words_not_tags(mem: Memory) -> None:
    mem.remember("meet at 10:30 near https://example.com/x")
    assert contents(mem.recall("10:30", mode="text")) == [
        "meet at 10:30 near https://example.com/x"
    ]
    assert split_tag_tokens("https://example.com/x 10:30 a:b") == (
        ("a:b",),
        "https://example.com/x 10:30",
    )
    with pytest.raises(InvalidInputError):
        mem.recall("x", tags="session:a")  # type: ignore[arg-type]
