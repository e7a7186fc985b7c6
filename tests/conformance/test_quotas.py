"""Units of work (``store.atomic()``), per-namespace counters and stored-data quotas checked
inside the write transaction, run on every backend (issue 10, item 8)."""

from __future__ import annotations

import threading

import pytest

from engramdb import Memory, QuotaExceededError
from engramdb.embed import HashingEmbedder
from engramdb.store import Store, open_store
from engramdb.types import Quota
from tests.conftest import Backend


@pytest.fixture
def mem(store: Store) -> Memory:
    return Memory(store, namespace="q", embedder=HashingEmbedder(64))


def entries(n: int, prefix: str = "memory") -> list[dict[str, object]]:
    return [{"content": f"{prefix} number {i}"} for i in range(n)]


def assert_counts_exact(mem: Memory) -> None:
    """The maintained counters agree with a full count of the rows."""
    counts = mem.store.usage_counts(mem.namespace)
    stats = mem.stats()
    assert counts == {"memories": stats.memories, "facts": stats.triples}


def test_item_08_atomic_commits_or_rolls_back_as_one(mem: Memory) -> None:
    store = mem.store
    with pytest.raises(RuntimeError), store.atomic():
        mem.remember("written, then rolled back")
        mem.learn("ada", "drinks", "tea")
        assert len(mem.list().items) == 2  # the block reads its own writes
        raise RuntimeError("abort the unit of work")
    assert mem.list().items == [] and mem.facts("ada") == []
    assert store.usage_counts("q") == {"memories": 0, "facts": 0}
    with store.atomic():
        with store.atomic():  # a nested block joins the outer transaction
            mem.remember("inner")
        mem.remember("outer")
    assert sorted(r.content for r in mem.list().items) == ["inner", "outer"]
    with pytest.raises(RuntimeError), store.atomic():
        with store.atomic():
            mem.remember("inner, undone with the outer block")
        raise RuntimeError
    assert len(mem.list().items) == 2
    assert_counts_exact(mem)


def test_item_08_batch_over_the_quota_stores_nothing(mem: Memory) -> None:
    quota = Quota(max_memories=10)
    with pytest.raises(QuotaExceededError) as err:
        mem.remember_many(entries(100), quota=quota)
    assert err.value.limit == 10 and err.value.quota == "max_memories"
    assert err.value.adding == 100 and "quota of 10" in str(err.value)
    assert mem.list().items == []
    assert mem.store.usage_counts("q")["memories"] == 0
    mem.remember_many(entries(10), quota=quota)
    mem.remember_many(entries(10), quota=quota)  # identical memories add nothing: accepted
    with pytest.raises(QuotaExceededError):
        mem.remember("one too many", quota=quota)
    assert len(mem.list(limit=100).items) == 10
    assert_counts_exact(mem)


def test_item_08_concurrent_writers_cannot_overrun_max_memories(mem: Memory) -> None:
    quota = Quota(max_memories=5)
    start = threading.Barrier(12)
    stored: list[str] = []
    refused: list[QuotaExceededError] = []

    def write(n: int) -> None:
        start.wait()
        try:
            stored.append(mem.remember(f"writer {n}", quota=quota).id)
        except QuotaExceededError as exc:
            refused.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(stored) == 5 and len(refused) == 7
    assert len(mem.list().items) == 5
    assert_counts_exact(mem)


def test_item_08_learn_counts_toward_the_quotas_atomically(mem: Memory) -> None:
    facts = Quota(max_facts=2)
    mem.learn("ada", "drinks", "tea", single_valued=True, quota=facts)
    mem.learn("ada", "drinks", "coffee", single_valued=True, quota=facts)
    # a superseded fact stays stored (as history) and counts
    assert mem.store.usage_counts("q") == {"memories": 1, "facts": 2}
    with pytest.raises(QuotaExceededError) as err:
        mem.learn("ada", "drinks", "water", single_valued=True, quota=facts)
    assert err.value.quota == "max_facts" and "fact quota of 2" in str(err.value)
    # nothing of the refused fact remains: the current fact and its memory are untouched
    assert [f.object for f in mem.facts("ada", "drinks")] == ["coffee"]
    assert [r.content for r in mem.list().items] == ["ada drinks coffee"]
    # a fact's searchable memory counts toward max_memories: refused, the fact rolls back
    with pytest.raises(QuotaExceededError) as err:
        mem.learn("bob", "likes", "jazz", quota=Quota(max_memories=1))
    assert err.value.quota == "max_memories"
    assert mem.facts("bob") == [] and len(mem.list().items) == 1
    mem.learn("ada", "drinks", "coffee", quota=facts)  # the same current fact: nothing added
    assert_counts_exact(mem)


def test_item_08_counters_follow_every_insert_and_delete(mem: Memory) -> None:
    mem.remember_many(entries(6))
    mem.remember_many(entries(6))  # duplicates: not counted twice
    mem.remember_many(
        [{"content": f"scoped {n}", "user_id": "u1", "tags": ["t"]} for n in range(4)]
    )
    assert_counts_exact(mem)
    mem.forget(mem.list().items[0].id)
    assert_counts_exact(mem)
    mem.forget(filters={"user_id": "u1"})
    assert_counts_exact(mem)
    mem.learn("x", "is", "a", single_valued=True)
    mem.learn("x", "is", "b", single_valued=True)  # supersedes: its memory goes
    mem.learn("y", "is", "c")
    assert_counts_exact(mem)
    assert mem.store.usage_counts("q") == {"memories": 7, "facts": 3}
    other = mem.scoped("other")
    other.remember("another namespace")
    assert mem.store.usage_counts("other") == {"memories": 1, "facts": 0}
    assert mem.store.usage_counts("q")["memories"] == 7
    assert mem.store.usage_counts("never-used") == {"memories": 0, "facts": 0}
    # forgetting facts (and a fact's memory, which takes its fact along) keeps them exact
    current = mem.facts("x", "is")[0]
    mem.forget_fact(current.id)
    assert_counts_exact(mem)
    y = mem.facts("y")[0]
    made_for_y = next(m for m in mem.list().items if m.metadata.get("triple_id") == y.id)
    mem.forget(made_for_y.id)
    assert_counts_exact(mem)
    mem.forget_facts(subject="x")
    assert_counts_exact(mem)
    assert mem.store.usage_counts("q") == {"memories": 5, "facts": 0}


def test_item_08_migration_backfills_the_counters(backend: Backend) -> None:
    store = open_store(backend.target)
    mem = Memory(store, namespace="old", embedder=None)
    mem.remember_many(entries(3))
    mem.learn("a", "b", "c")
    mem.scoped("other").remember("x")
    # take the schema back to the version before the counters, as an older engramdb left it
    if backend.name == "sqlite":
        import sqlite3

        store.close()
        with sqlite3.connect(store.path) as conn:  # type: ignore[attr-defined]
            conn.executescript(
                "DROP TABLE namespace_counts; DROP INDEX api_keys_by_creator; "
                "ALTER TABLE api_keys DROP COLUMN created_by; PRAGMA user_version = 5;"
            )
    else:
        store.run(  # type: ignore[attr-defined]
            lambda conn: conn.execute(
                "DROP TABLE namespace_counts; DROP INDEX api_keys_by_creator; "
                "ALTER TABLE api_keys DROP COLUMN created_by; UPDATE engramdb_schema "
                "SET version = 2"
            )
        )
        store.close()
    reopened = open_store(backend.target)
    try:
        assert reopened.usage_counts("old") == {"memories": 4, "facts": 1}
        assert reopened.usage_counts("other") == {"memories": 1, "facts": 0}
    finally:
        reopened.close()


def test_item_08_recount_repairs_counters_after_bulk_writes(mem: Memory) -> None:
    mem.remember_many(entries(4))
    mem.learn("a", "b", "c")
    store = mem.store
    # a bulk writer that bypassed the counters (as an import may) leaves them stale ...
    _execute(store, "DELETE FROM namespace_counts WHERE namespace = 'q'")
    assert store.usage_counts("q") == {"memories": 0, "facts": 0}
    # ... and one recount at its end puts them right
    assert store.usage_recount("q") == {"memories": 5, "facts": 1}
    assert_counts_exact(mem)
    assert store.usage_recount("empty") == {"memories": 0, "facts": 0}


def _execute(store: Store, statement: str) -> None:
    """Run a raw write statement on either backend."""
    if hasattr(store, "run"):  # PostgreSQL
        store.run(lambda conn: conn.execute(statement))
    else:
        with store._write() as conn:  # type: ignore[attr-defined]
            conn.execute(statement)
