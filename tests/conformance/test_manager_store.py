"""Issue 11: what the memory manager needs from storage, on every backend — invalidation,
memory events (why each memory exists), extraction high-water marks and reading session
items past a mark."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pytest

from engramdb import AsyncMemory, InvalidInputError, Memory, NotFoundError
from engramdb.embed import HashingEmbedder
from engramdb.sessions import AsyncSession, Session
from engramdb.store import Store
from engramdb.store.base import NewMemoryEvent
from engramdb.types import format_optional
from tests.conftest import Backend


@pytest.fixture
def mem(store: Store) -> Memory:
    return Memory(store, embedder=HashingEmbedder(256))


def ids(hits: list[Any]) -> list[str]:
    return [h.memory.id for h in hits]


# -- invalidation ----------------------------------------------------------------------------


def test_issue11_invalidate_excludes_from_every_recall_lane_and_restore_brings_back(
    mem: Memory,
) -> None:
    kept = mem.remember("Ada drinks green tea every morning", user_id="ada", tags=["drinks"])
    wrong = mem.remember(
        "Ada drinks black coffee every morning", user_id="ada", tags=["drinks", "coffee"]
    )
    mem.update(wrong.id, importance=0.9)  # a version in history
    query = "what does Ada drink every morning"

    def everywhere() -> list[list[str]]:
        return [
            ids(mem.recall(query, mode="text")),
            ids(mem.recall(query, mode="vector")),
            ids(mem.recall(query, mode="hybrid")),
            ids(mem.recall(query, mode="vector", filters={"user_id": "ada"})),
            ids(mem.recall("black coffee", filters={"tags": ["coffee"]})),
            ids(mem.recall("", tags=["drinks"])),  # tag lookup
            ids(mem.recall("tag:x coffee")),
            ids(mem.recall("coffee")),  # a query equal to a tag: the tag lane
            [m.id for m in mem.list().items],
        ]

    assert all(wrong.id in lane for lane in everywhere())  # every lane finds it while live
    record = mem.invalidate(wrong.id, reason="the user said they quit coffee")
    assert record.invalidated_at is not None
    assert record.invalidated_reason == "the user said they quit coffee"
    for lane in everywhere():
        assert wrong.id not in lane
    assert kept.id in ids(mem.recall(query, mode="hybrid"))
    # kept, visible by id, with its history; listed on request
    got = mem.get(wrong.id)
    assert got.invalidated and got.content == wrong.content and got.version == 2
    assert [v.version for v in mem.history(wrong.id)] == [1]
    assert wrong.id in [m.id for m in mem.list(include_invalidated=True).items]
    assert mem.get(wrong.id).to_dict()["invalidated_at"] == format_optional(got.invalidated_at)
    # invalidating again changes nothing
    assert mem.invalidate(wrong.id, reason="again").invalidated_at == got.invalidated_at
    restored = mem.restore(wrong.id)
    assert restored.invalidated_at is None and restored.invalidated_reason is None
    assert all(wrong.id in lane for lane in everywhere())


def test_issue11_invalidated_text_leaves_its_neighbours_context(mem: Memory) -> None:
    before = mem.remember("Ada went hiking on Saturday", session_id="s")
    wrong = mem.remember("Ada adopted a zebracorn named Pip", session_id="s")
    after = mem.remember("Ada cooked pasta on Sunday", session_id="s")
    found = set(ids(mem.recall("zebracorn", mode="text")))
    assert found == {before.id, wrong.id, after.id}  # neighbours match through their context
    mem.invalidate(wrong.id)
    assert mem.recall("zebracorn", mode="text") == []
    # the others still quote each other (the context spans two live memories each side)
    assert set(ids(mem.recall("hiking", mode="text"))) == {before.id, after.id}
    mem.restore(wrong.id)
    assert set(ids(mem.recall("zebracorn", mode="text"))) == found


def test_issue11_invalidated_vector_leaves_the_in_process_index(mem: Memory) -> None:
    a = mem.remember("the train to Lyon leaves at nine")
    mem.remember("the bus to Turin leaves at ten")
    if mem.store.native_vector_search:
        pytest.skip("pgvector searches in SQL (covered by the recall test)")
    index = mem._vector_index()
    index.refresh()
    assert len(index) == 2
    mem.invalidate(a.id)
    index.refresh()
    assert len(index) == 1  # the vector itself is dropped, not only filtered out later
    mem.restore(a.id)
    index.refresh()
    assert len(index) == 2
    assert a.id in ids(mem.recall("train to Lyon", mode="vector"))


def test_issue11_invalidate_is_namespace_scoped_and_typed(mem: Memory) -> None:
    m = mem.remember("a fact of namespace one")
    other = mem.scoped("two")
    with pytest.raises(NotFoundError):
        other.invalidate(m.id)
    with pytest.raises(NotFoundError):
        mem.invalidate("no-such-memory")
    with pytest.raises(NotFoundError):
        other.restore(m.id)
    with pytest.raises(InvalidInputError):
        mem.invalidate(m.id, reason=123)  # type: ignore[arg-type]
    assert mem.get(m.id).invalidated_at is None


def test_issue11_invalidated_memory_still_counts_and_forget_removes_it(mem: Memory) -> None:
    m = mem.remember("stored but invalidated", user_id="u1")
    mem.invalidate(m.id)
    assert mem.store.usage_counts(mem.namespace)["memories"] == 1
    assert mem.stats().memories == 1
    assert mem.forget(filters={"user_id": "u1"}).count == 1  # forget-by-filter sees it
    with pytest.raises(NotFoundError):
        mem.get(m.id)
    assert mem.store.usage_counts(mem.namespace)["memories"] == 0


# -- memory events ---------------------------------------------------------------------------


def test_issue11_events_recorded_in_order_and_namespace_isolated(mem: Memory) -> None:
    m = mem.remember("Ada moved to Lyon")
    n = mem.record_events(
        [
            NewMemoryEvent(
                m.id,
                "add",
                reason="stated by the user",
                model="fake-1",
                prompt_version="extract-v1",
                session_id="s1",
                item_seqs=(0, 1),
                details={"candidate": "Ada moved to Lyon"},
            ),
            NewMemoryEvent(m.id, "none", reason="a near duplicate", model="fake-1"),
        ]
    )
    assert n == 2
    mem.invalidate(m.id, reason="contradicted", event=NewMemoryEvent(m.id, "add", model="m2"))
    mem.restore(m.id)
    events = mem.events(m.id)
    assert [e.action for e in events] == ["add", "none", "invalidate", "restore"]
    assert [e.id for e in events] == sorted(e.id for e in events)
    first = events[0]
    assert (first.model, first.prompt_version, first.session_id) == ("fake-1", "extract-v1", "s1")
    assert first.item_seqs == (0, 1) and first.details == {"candidate": "Ada moved to Lyon"}
    assert isinstance(first.at, datetime) and first.namespace == mem.namespace
    assert events[2].reason == "contradicted" and events[2].model == "m2"
    assert first.to_dict()["item_seqs"] == [0, 1]
    # another namespace sees none of them and cannot write to this memory's record
    other = mem.scoped("elsewhere")
    assert mem.store.memory_events("elsewhere", m.id) == []
    with pytest.raises(NotFoundError):
        other.events(m.id)
    assert other.record_events([NewMemoryEvent(m.id, "update")]) == 0
    assert len(mem.events(m.id)) == 4


def test_issue11_events_bad_input_is_typed_and_writes_nothing(mem: Memory) -> None:
    m = mem.remember("something")
    bad: list[NewMemoryEvent] = [
        NewMemoryEvent(m.id, "explode"),
        NewMemoryEvent(m.id, "add", item_seqs=(-1,)),
        NewMemoryEvent(m.id, "add", details={"x": {1, 2}}),  # type: ignore[dict-item]
        NewMemoryEvent(m.id, "add", reason="x" * 10_001),
        NewMemoryEvent(m.id, "add", model="bad\x00model"),
    ]
    for event in bad:
        with pytest.raises(InvalidInputError):
            mem.record_events([NewMemoryEvent(m.id, "add"), event])
    assert mem.events(m.id) == []


def test_issue11_event_joins_the_write_it_explains(mem: Memory) -> None:
    m = mem.remember("base")
    with pytest.raises(RuntimeError), mem.store.atomic():
        mem.store.memory_update(mem.namespace, m.id, _changes("changed"))
        mem.record_events([NewMemoryEvent(m.id, "update")])
        raise RuntimeError("the decision failed after both writes")
    assert mem.get(m.id).content == "base" and mem.events(m.id) == []


def _changes(content: str) -> Any:
    from engramdb.memory import content_hash
    from engramdb.store.base import MemoryChanges

    return MemoryChanges(content=content, content_hash=content_hash(content))


def test_issue11_forget_removes_a_memorys_events(mem: Memory) -> None:
    m = mem.remember("to be forgotten")
    keep = mem.remember("to be kept")
    mem.record_events([NewMemoryEvent(m.id, "add"), NewMemoryEvent(keep.id, "add")])
    mem.invalidate(m.id)
    mem.forget(m.id)
    assert mem.store.memory_events(mem.namespace, m.id) == []
    assert [e.action for e in mem.events(keep.id)] == ["add"]
    # a later memory reusing nothing: no event can be recorded for the forgotten id
    assert mem.record_events([NewMemoryEvent(m.id, "restore")]) == 0


# -- extraction marks ------------------------------------------------------------------------


def test_issue11_marks_compare_and_set(store: Store) -> None:
    assert store.extraction_mark("ns", "s1") == -1
    assert store.extraction_advance("ns", "s1", -1, 4)
    assert not store.extraction_advance("ns", "s1", -1, 9)  # stale: someone moved it
    assert store.extraction_mark("ns", "s1") == 4
    assert store.extraction_advance("ns", "s1", 4, 9)
    assert not store.extraction_advance("ns", "s1", 4, 12)
    assert store.extraction_mark("ns", "s1") == 9
    assert store.extraction_advance("ns", "s1", 9, 9)  # an empty window: allowed
    for bad in ((9, 3), (-2, 5), (True, 3)):
        with pytest.raises(InvalidInputError):
            store.extraction_advance("ns", "s1", *bad)
    assert store.extraction_mark("ns", "s1") == 9
    assert store.extraction_mark("other", "s1") == -1  # per namespace
    assert store.extraction_mark("ns", "s2") == -1  # and per session
    # clearing a session keeps the mark (numbers are never reused); deleting it removes it
    store.session_add("ns", "s1", ['{"a": 1}'])
    store.session_clear("ns", "s1")
    assert store.extraction_mark("ns", "s1") == 9
    store.session_delete("ns", "s1")
    assert store.extraction_mark("ns", "s1") == -1


def test_issue11_marks_two_racing_processes_exactly_one_wins(backend: Backend) -> None:
    stores = [backend.open(), backend.open()]  # two connections, as two processes have
    try:
        mark = -1
        for round_ in range(8):
            barrier = threading.Barrier(2)
            won: list[bool] = [False, False]

            def race(
                n: int,
                start: int = mark,
                barrier: threading.Barrier = barrier,
                won: list[bool] = won,
            ) -> None:
                barrier.wait()
                won[n] = stores[n].extraction_advance("ns", "race", start, start + 5)

            threads = [threading.Thread(target=race, args=(n,)) for n in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert won.count(True) == 1, (round_, won)
            mark += 5
            assert stores[round_ % 2].extraction_mark("ns", "race") == mark
    finally:
        for s in stores:
            s.close()


# -- session items past a mark ---------------------------------------------------------------


def test_issue11_items_after_pages_with_seq_and_time(store: Store) -> None:
    session = Session("chat", store, namespace="ns")
    session.add_items([{"role": "user", "content": f"m{n}"} for n in range(7)])
    first = session.items_after(-1, 3)
    assert [s for s, _, _ in first] == [0, 1, 2]
    assert [i["content"] for _, _, i in first] == ["m0", "m1", "m2"]
    assert all(isinstance(t, datetime) and t.tzinfo is not None for _, t, _ in first)
    assert [s for s, _, _ in session.items_after(first[-1][0], 3)] == [3, 4, 5]
    assert [s for s, _, _ in session.items_after(5, 3)] == [6]
    assert session.items_after(6, 3) == []
    session.clear_session()
    session.add_items([{"role": "user", "content": "after clear"}])
    assert [(s, i["content"]) for s, _, i in session.items_after(6)] == [(7, "after clear")]
    assert Session("chat", store, namespace="other").items_after() == []
    with pytest.raises(InvalidInputError):
        session.items_after(-2)
    with pytest.raises(InvalidInputError):
        session.items_after(0, -1)


@pytest.mark.anyio
async def test_issue11_async_faces(store: Store) -> None:
    amem = AsyncMemory(store, embedder=None)
    m = await amem.remember("async memory")
    await amem.record_events([NewMemoryEvent(m.id, "add")])
    assert (await amem.invalidate(m.id)).invalidated
    assert not (await amem.restore(m.id)).invalidated
    assert [e.action for e in await amem.events(m.id)] == ["add", "invalidate", "restore"]
    session = AsyncSession("a", store)
    await session.add_items([{"x": 1}, {"x": 2}])
    assert [s for s, _, _ in await session.items_after(0)] == [1]


# -- export / import -------------------------------------------------------------------------


def test_issue11_export_import_round_trip_keeps_invalidation_and_events(mem: Memory) -> None:
    live = mem.remember("live memory")
    gone = mem.remember("invalidated memory")
    mem.record_events(
        [
            NewMemoryEvent(
                live.id, "add", model="fake", item_seqs=(3,), details={"k": [1, 2]}, reason="r"
            ),
            NewMemoryEvent(gone.id, "add"),
        ]
    )
    mem.invalidate(gone.id, reason="wrong")
    records = list(mem.export())
    assert sum(r["type"] == "event" for r in records) == 3
    assert records[-1]["counts"]["event"] == 3
    before = {m: mem.events(m) for m in (live.id, gone.id)}
    invalidated_at = mem.get(gone.id).invalidated_at
    mem.forget(all=True)
    report = mem.import_records(records)
    assert report.created["events"] == 3 and report.created["memories"] == 2
    restored = mem.get(gone.id)
    assert restored.invalidated_at == invalidated_at and restored.invalidated_reason == "wrong"
    assert gone.id not in ids(mem.recall("invalidated memory"))
    for memory_id, events in before.items():
        after = mem.events(memory_id)
        assert [(e.at, e.action, e.reason, e.model, e.item_seqs, e.details) for e in after] == [
            (e.at, e.action, e.reason, e.model, e.item_seqs, e.details) for e in events
        ]
    again = mem.import_records(records)  # idempotent: nothing recorded twice
    assert again.created["events"] == 0 and again.skipped["events"] == 3
    assert len(mem.events(live.id)) == 1


def test_issue11_import_rejects_a_bad_event_record(mem: Memory) -> None:
    m = mem.remember("x")
    records = list(mem.export())
    records.insert(-1, {"type": "event", "memory_id": m.id, "at": "2026-01-01", "action": "boom"})
    records[-1]["counts"]["event"] = 1
    with pytest.raises(InvalidInputError, match="action"):
        mem.import_records(records)


def test_issue11_upgrade_from_the_previous_schema_keeps_memories_live(backend: Backend) -> None:
    from engramdb.store import open_store

    store = open_store(backend.target)
    old = Memory(store, embedder=None).remember("written by the engramdb before issue 11")
    # take the schema back to the version before issue 11, as an older engramdb left it
    undo = (
        "DROP TABLE memory_events; DROP TABLE extraction_marks; "
        "ALTER TABLE memories DROP COLUMN invalidated_at; "
        "ALTER TABLE memories DROP COLUMN invalidated_reason; "
    )
    if backend.name == "sqlite":
        import sqlite3

        store.close()
        with sqlite3.connect(store.path) as conn:  # type: ignore[attr-defined]
            # (an index of a later migration names invalidated_at: that engramdb had none)
            conn.executescript("DROP INDEX memories_live; " + undo + "PRAGMA user_version = 7;")
    else:
        store.run(  # type: ignore[attr-defined]
            lambda conn: conn.execute(undo + "UPDATE engramdb_schema SET version = 4")
        )
        store.close()
    reopened = open_store(backend.target)
    try:
        mem = Memory(reopened, embedder=None)
        assert mem.get(old.id).invalidated_at is None
        assert old.id in ids(mem.recall("written before issue"))
        assert mem.events(old.id) == []
        assert reopened.extraction_mark(mem.namespace, "s") == -1
        mem.invalidate(old.id)
        assert old.id not in ids(mem.recall("written before issue"))
    finally:
        reopened.close()


def test_issue11_api_memory_shape_shows_invalidation(mem: Memory) -> None:
    from engramdb.server.models import MemoryOut

    m = mem.remember("shown through the API")
    assert MemoryOut.of(m).model_dump(mode="json")["invalidated_at"] is None
    shown = MemoryOut.of(mem.invalidate(m.id, reason="wrong")).model_dump(mode="json")
    assert shown["invalidated_at"] is not None and shown["invalidated_reason"] == "wrong"
