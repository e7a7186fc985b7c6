"""Issue 10 items 1, 2 and 4 at the library level, on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from engramdb import InvalidInputError, Memory, RecallSettings
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


# -- item 2: dedup per scope, tags merged ------------------------------------------------------


def test_item_02_identical_content_is_deduplicated_per_scope(mem: Memory) -> None:
    base = mem.remember("the sky is blue")
    scopes: list[dict[str, Any]] = [
        {"user_id": "u1"},
        {"agent_id": "a1"},
        {"session_id": "s1"},
        {"user_id": "u1", "session_id": "s1"},
    ]
    ids = {base.id}
    for scope in scopes:
        (result,) = mem.remember_results([{"content": "the sky is blue", **scope}])
        assert result.status == "created" and result.created
        assert (result.memory.user_id, result.memory.agent_id, result.memory.session_id) == (
            scope.get("user_id"),
            scope.get("agent_id"),
            scope.get("session_id"),
        )
        ids.add(result.memory.id)
    other = mem.remember("the sky is blue", namespace="elsewhere")
    assert other.namespace == "elsewhere" and other.id not in ids
    assert len(ids) == 1 + len(scopes)
    assert mem.stats().memories == 1 + len(scopes)


def test_item_02_new_tags_merge_into_the_identical_memory(mem: Memory) -> None:
    first = mem.remember("standup at nine", tags=["session:a"], importance=0.7)
    (again,) = mem.remember_results([{"content": "standup at nine", "tags": ["SESSION:A"]}])
    assert again.status == "existing" and not again.created and again.merged_tags == ()
    (merged,) = mem.remember_results(
        [{"content": "standup at nine", "tags": ["session:b", "team"], "importance": 0.1}]
    )
    assert merged.status == "merged" and merged.merged_tags == ("session:b", "team")
    assert merged.memory.id == first.id
    assert merged.memory.tags == ("session:a", "session:b", "team")
    assert merged.memory.version == 2 and merged.memory.importance == 0.7
    # a new version; the prior tags are in its history
    assert [v.tags for v in mem.history(first.id)] == [("session:a",)]
    assert mem.get(first.id).tags == ("session:a", "session:b", "team")
    # every index knows the merged tags: both sessions find it, nothing is stored twice
    assert [h.memory.id for h in mem.recall("session:b")] == [first.id]
    assert [h.memory.id for h in mem.recall("session:a")] == [first.id]
    assert [m.id for m in mem.list({"tags": ["team"]}).items] == [first.id]
    assert [h.memory.id for h in mem.recall("team", mode="text")] == [first.id]
    assert mem.stats().memories == 1
    # remember() returns the memory as stored now
    assert mem.remember("standup at nine", tags=["late"]).tags[-1] == "late"


def test_item_02_a_batch_merges_duplicates_within_itself(mem: Memory) -> None:
    results = mem.remember_results(
        [
            {"content": "same words", "tags": ["x"]},
            {"content": "same words", "tags": ["y"]},
            {"content": "other words"},
        ]
    )
    assert [r.status for r in results] == ["created", "merged", "created"]
    assert results[0].memory.id == results[1].memory.id
    assert results[1].memory.tags == ("x", "y")
    assert mem.stats().memories == 2


def test_item_02_merging_past_the_tag_limit_is_refused_and_writes_nothing(mem: Memory) -> None:
    mem.remember("full of tags", tags=[f"t{n}" for n in range(64)])
    with pytest.raises(InvalidInputError, match="more than 64 tags"):
        mem.remember_many([{"content": "brand new"}, {"content": "full of tags", "tags": ["z"]}])
    assert mem.stats().memories == 1


# -- item 4: no statistics or row ids of other namespaces ----------------------------------


def _answers(mem: Memory, query: str, mode: Any) -> list[tuple[str, float, Any]]:
    out = []
    # a small text budget: term pruning must count this namespace's documents only
    for settings in (None, RecallSettings(text_budget=100)):
        hits = mem.recall(
            query, namespace="tenant-a", mode=mode, limit=20, explain=True, settings=settings
        )
        out += [(h.memory.content, h.score, h.explain) for h in hits]
    return out


@pytest.mark.parametrize("mode", ["text", "hybrid"])
def test_item_04_scores_do_not_depend_on_other_namespaces(mem: Memory, mode: str) -> None:
    mem.remember_many(
        [
            {"content": "the red apple is sweet"},
            {"content": "apple pie with cinnamon", "tags": ["dessert"]},
            {"content": "a long story about a banana that met an apple and a pear one day"},
            {"content": "pear and banana smoothie", "metadata": {"note": "apple free"}},
            {"content": "nothing relevant here at all"},
        ],
        namespace="tenant-a",
    )
    queries = ["apple banana", "sweet apple pear", "cinnamon"]
    before = {q: _answers(mem, q, mode) for q in queries}
    assert all(before[q] for q in queries)
    # another tenant fills the index with the same words, in every proportion
    mem.remember_many(
        [{"content": f"apple apple banana note {n}"} for n in range(400)]
        + [{"content": f"pear {n} cinnamon sweet", "tags": ["apple"]} for n in range(300)],
        namespace="tenant-b",
    )
    after = {q: _answers(mem, q, mode) for q in queries}
    assert after == before


def test_item_04_list_cursors_are_opaque_and_bound_to_their_namespace(
    mem: Memory, backend: Any
) -> None:
    for ns in ("tenant-a", "tenant-b"):
        mem.remember_many([{"content": f"{ns} note {n}"} for n in range(5)], namespace=ns)
    page = mem.list(namespace="tenant-a", limit=2)
    cursor = page.next_cursor
    assert cursor is not None
    # opaque: no row id inside (the same position gives a different cursor each time)
    assert cursor != mem.list(namespace="tenant-a", limit=2).next_cursor
    with pytest.raises(InvalidInputError, match="cursor"):
        mem.list(namespace="tenant-b", cursor=cursor, limit=2)
    for forged in ("c2", cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB"), "", "x" * 5000):
        with pytest.raises(InvalidInputError, match="cursor"):
            mem.list(namespace="tenant-a", cursor=forged, limit=2)
    # every process sharing the store (another replica, a restart) reads the same cursor
    other = Memory(backend.open(), embedder=None)
    try:
        rest = other.list(namespace="tenant-a", cursor=cursor, limit=10)
        assert [m.content for m in rest.items] == [f"tenant-a note {n}" for n in range(2, 5)]
        assert rest.next_cursor is None
    finally:
        other.close()
