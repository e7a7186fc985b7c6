"""Forgetting facts and scoped forgetting (issue 10, items 9 and 11), on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engramdb import AsyncMemory, InvalidInputError, Memory, NotFoundError
from engramdb.embed import HashingEmbedder
from engramdb.store import Store


@pytest.fixture
def mem(store: Store) -> Memory:
    return Memory(store, embedder=HashingEmbedder(256))


def _fact_memories(mem: Memory) -> dict[str, str]:
    """triple_id -> id of the memory learn made for it (listed like any memory)."""
    page = mem.list({"tags": ["fact"]}, limit=100)
    return {m.metadata["triple_id"]: m.id for m in page.items}


# -- item 9: facts can be deleted; a fact and its memory go together ---------------------------


def test_item_09_forget_fact_removes_the_fact_and_its_searchable_memory(mem: Memory) -> None:
    tea = mem.learn("Ada", "likes", "oolong")
    chess = mem.learn("Ada", "likes", "chess")
    made = _fact_memories(mem)
    assert set(made) == {tea.id, chess.id}  # visible, tagged "fact", counted
    assert mem.stats().memories == 2
    result = mem.forget_fact(tea.id)
    assert result.ids == [tea.id] and not result.dry_run
    assert [f.id for f in mem.facts("Ada", include_history=True)] == [chess.id]
    with pytest.raises(NotFoundError):
        mem.get(made[tea.id])
    assert "oolong" not in " ".join(h.memory.content for h in mem.recall("oolong", mode="text"))
    assert mem.stats().triples == 1 and mem.stats().memories == 1
    with pytest.raises(NotFoundError):
        mem.forget_fact(tea.id)
    with pytest.raises(NotFoundError):  # another namespace cannot reach it
        mem.forget_fact(chess.id, namespace="elsewhere")
    assert [f.id for f in mem.facts("Ada")] == [chess.id]


def test_item_09_forgetting_the_memory_of_a_fact_forgets_the_fact(mem: Memory) -> None:
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    mem.learn("Ada", "lives_in", "London", valid_from=t0, single_valued=True)
    paris = mem.learn("Ada", "lives_in", "Paris", single_valued=True)
    other = mem.learn("Bob", "likes", "tea")
    made = _fact_memories(mem)
    assert set(made) == {paris.id, other.id}  # the superseded fact left the searchable set
    mem.forget(made[paris.id])
    assert mem.facts("Ada", "lives_in") == []
    # the superseded London fact is a version of its own: it stays until forgotten itself
    assert [f.object for f in mem.facts("Ada", include_history=True)] == ["London"]
    assert [f.id for f in mem.facts("Bob")] == [other.id]
    # a scoped forget of fact memories takes the facts with it
    mem.forget(filters={"tags": ["fact"]})
    assert mem.facts("Bob") == []


def test_item_09_forget_fact_keeps_a_memory_the_user_stored_themselves(mem: Memory) -> None:
    own = mem.remember("Ada likes tea")  # identical text, stored by the user, not by learn
    fact = mem.learn("Ada", "likes", "tea")
    mem.forget_fact(fact.id)
    assert mem.get(own.id).content == "Ada likes tea"
    assert mem.facts("Ada") == []


def test_item_09_forget_facts_by_pattern_never_widens(mem: Memory) -> None:
    mem.learn("Ada", "lives_in", "London", single_valued=True, valid_from="2020-01-01")
    mem.learn("Ada", "lives_in", "Paris", single_valued=True)
    mem.learn("Ada", "likes", "tea")
    bob = mem.learn("Bob", "lives_in", "Paris")
    with pytest.raises(InvalidInputError, match="pattern"):
        mem.forget_facts()
    dry = mem.forget_facts("ada", "LIVES_IN", dry_run=True)  # entity matching ignores case
    assert dry.dry_run and dry.count == 2  # current and superseded versions alike
    assert len(mem.facts("Ada", include_history=True)) == 3
    done = mem.forget_facts("Ada", "lives_in")
    assert sorted(done.ids) == sorted(dry.ids) and not done.dry_run
    assert [f.object for f in mem.facts("Ada", include_history=True)] == ["tea"]
    assert [f.id for f in mem.facts(include_history=True, object="Paris")] == [bob.id]
    assert {m.content for m in mem.list({"tags": ["fact"]}).items} == {
        "Ada likes tea",
        "Bob lives_in Paris",
    }
    assert mem.forget_facts(object="Paris").ids == [bob.id]
    assert mem.forget_facts("nobody").ids == []


@pytest.mark.anyio
async def test_item_09_async_memory_forgets_facts(store: Store) -> None:
    amem = AsyncMemory(store, embedder=None)
    fact = await amem.learn("Ada", "likes", "tea")
    await amem.learn("Ada", "likes", "chess")
    assert (await amem.forget_fact(fact.id)).ids == [fact.id]
    assert (await amem.forget_facts("Ada", dry_run=True)).count == 1
    assert (await amem.forget_facts("Ada")).count == 1
    assert await amem.facts("Ada") == []


# -- item 11: a time range is not a scope ------------------------------------------------------


def test_item_11_time_range_alone_does_not_forget_the_namespace(mem: Memory) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(4):
        mem.remember(f"note {n}", user_id=f"u{n % 2}", occurred_at=base + timedelta(days=n))
    window = {"since": base - timedelta(days=1), "until": base + timedelta(days=10)}
    for flt in (window, {"since": base}, {"until": base + timedelta(days=2)}):
        with pytest.raises(InvalidInputError, match="scope"):
            mem.forget(filters=flt)
    with pytest.raises(InvalidInputError):
        mem.forget(filters={})
    assert mem.stats().memories == 4
    # a time range narrows a scope
    done = mem.forget(filters={"user_id": "u0", "since": base + timedelta(days=1)})
    assert done.count == 1
    assert mem.stats().memories == 3
    # all=True says "the whole namespace" on purpose (within since/until if given)
    dry = mem.forget(filters={"until": base + timedelta(days=2)}, all=True, dry_run=True)
    assert dry.count == 2 and mem.stats().memories == 3
    assert mem.forget(filters={"until": base + timedelta(days=2)}, all=True).count == 2
    assert mem.forget(all=True).count == 1
    assert mem.stats().memories == 0
    with pytest.raises(InvalidInputError):
        mem.forget("mem_x", all=True)


def test_item_11_time_filters_still_narrow_recall(mem: Memory) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    mem.remember("zebra early", occurred_at=base)
    mem.remember("zebra late", occurred_at=base + timedelta(days=30))
    for mode in ("vector", "hybrid", "text"):
        hits = mem.recall("zebra", filters={"since": base + timedelta(days=1)}, mode=mode)  # type: ignore[arg-type]
        assert [h.memory.content for h in hits] == ["zebra late"], mode


# -- item 10: what forget removes beyond the memory's row ---------------------------------------


def test_item_10_forgetting_a_users_last_memory_forgets_the_user_name(mem: Memory) -> None:
    one = mem.remember("first note", user_id="zelda")
    two = mem.remember("second note", user_id="zelda")
    mem.remember("other note", user_id="yann")
    assert sorted(mem.store.memory_users(mem.namespace)) == ["yann", "zelda"]
    mem.forget(one.id)
    assert sorted(mem.store.memory_users(mem.namespace)) == ["yann", "zelda"]  # one is left
    mem.forget(two.id)
    assert mem.store.memory_users(mem.namespace) == ["yann"]
    mem.forget(filters={"user_id": "yann"})
    assert mem.store.memory_users(mem.namespace) == []


def test_item_10_forget_removes_history_and_the_embedding_cache_entry(mem: Memory) -> None:
    m = mem.remember("the vault code is 4412")
    now = mem.update(m.id, content="the vault code changed")
    assert [v.content for v in mem.history(m.id)] == ["the vault code is 4412"]
    model = mem.embedder.model if mem.embedder else ""
    assert mem.store.embedding_cache(model, [now.content_hash])  # identical text reuses it
    mem.forget(m.id)
    assert mem.store.memory_history(mem.namespace, m.id) == []
    assert mem.store.embedding_cache(model, [m.content_hash, now.content_hash]) == {}
