"""Issue 15 items 3-5 on every backend: the neighbour lane, result diversity, what the
full-text index holds (``index_metadata``, ``index_neighbors``) and the fusion settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engramdb import Memory, RecallSettings
from engramdb.errors import InvalidInputError
from engramdb.store import Store
from tests.conftest import Backend


def chat(mem: Memory, namespace: str = "chat") -> None:
    """One session of turns; only the first names the puppy."""
    turns = [
        ("ann", "I adopted a puppy called Biscuit yesterday"),
        ("bob", "Congratulations, that is wonderful news"),
        ("ann", "She chews every shoe in the flat"),
        ("bob", "Mine ignored shoes but loved cables"),
        ("ann", "The weather was grey all week"),
        ("bob", "Here it rained on the allotment"),
    ]
    mem.remember_many(
        [{"content": f"{who}: {text}", "user_id": who, "session_id": "s1"} for who, text in turns],
        namespace=namespace,
    )


def contents(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [h.memory.content for h in hits]


# -- the neighbour lane ------------------------------------------------------------------------


def test_issue15_neighbors_lane_is_weighted_and_explained(store: Store) -> None:
    mem = Memory(store, embedder=None, index_neighbors=False)  # only the lane brings neighbours
    chat(mem)
    weight = 0.5
    hits = mem.recall(
        "Biscuit",
        namespace="chat",
        mode="text",
        explain=True,
        settings=RecallSettings(neighbor_weight=weight),
    )
    assert contents(hits)[0] == "ann: I adopted a puppy called Biscuit yesterday"
    top = hits[0].explain
    assert top is not None
    # the next turn joined through the neighbour lane alone, its share of the score measured
    by_content = {h.memory.content: h for h in hits}
    joined = by_content["bob: Congratulations, that is wonderful news"].explain
    assert joined is not None and set(joined["lanes"]) == {"neighbor"}
    lane = joined["lanes"]["neighbor"]
    assert lane["contribution"] == pytest.approx(weight)  # its neighbour is the best hit: 1.0
    assert joined["score"] == pytest.approx(weight)
    # weight 0 turns the lane off: the text lane's one hit only
    off = mem.recall(
        "Biscuit", namespace="chat", mode="text", settings=RecallSettings(neighbor_weight=0.0)
    )
    assert contents(off) == ["ann: I adopted a puppy called Biscuit yesterday"]


def test_issue15_neighbors_lane_stays_inside_the_filter(store: Store) -> None:
    mem = Memory(store, embedder=None, index_neighbors=False)
    chat(mem)
    hits = mem.recall(
        "Biscuit",
        namespace="chat",
        mode="text",
        filters={"user_id": "ann"},
        settings=RecallSettings(neighbor_weight=1.0),
    )
    assert hits and all(h.memory.user_id == "ann" for h in hits)


def test_issue15_neighbors_text_indexing_can_be_switched_off(backend: Backend) -> None:
    store = backend.open()
    try:
        plain = RecallSettings(neighbor_weight=0.0)
        indexed = Memory(store, embedder=None)
        chat(indexed)
        # by default a turn is indexed with its neighbours' text: "Biscuit" finds the reply
        found = contents(indexed.recall("Biscuit", namespace="chat", mode="text", settings=plain))
        assert "bob: Congratulations, that is wonderful news" in found
        # index_neighbors=False, then reindex: only the turn that says it
        bare = Memory(store, embedder=None, index_neighbors=False)
        assert bare.reindex(namespace="chat") == 6
        found = contents(bare.recall("Biscuit", namespace="chat", mode="text", settings=plain))
        assert found == ["ann: I adopted a puppy called Biscuit yesterday"]
        # new writes follow the setting, and so do the neighbours they touch
        bare.remember("ann: Biscuit now sleeps all day", session_id="s1", namespace="chat")
        found = contents(bare.recall("cables", namespace="chat", mode="text", settings=plain))
        assert found == ["bob: Mine ignored shoes but loved cables"]
    finally:
        store.close()
    reopened = backend.open()  # a store opened anew indexes neighbours again (the default)
    try:
        assert reopened.index_neighbors is True
    finally:
        reopened.close()


# -- diversity ---------------------------------------------------------------------------------


def crowded(mem: Memory) -> None:
    """Session s1 talks about the garden at length; s2 and s3 mention it once each."""
    rows = [
        {"content": f"ann: garden tomatoes, garden tomatoes {n}", "session_id": "s1"}
        for n in range(6)
    ]
    rows += [
        {
            "content": "bob: my garden has tomatoes too, and beans and peas and a pond",
            "session_id": "s2",
        },
        {
            "content": "cy: garden tomatoes at the market were cheap this whole long week",
            "session_id": "s3",
        },
    ]
    mem.remember_many(rows, namespace="g")


def sessions_of(hits: list) -> list[str | None]:  # type: ignore[type-arg]
    return [h.memory.session_id for h in hits]


def test_issue15_diversity_session_decay_spreads_the_top(store: Store) -> None:
    mem = Memory(store, embedder=None, index_neighbors=False)
    crowded(mem)
    base = RecallSettings(neighbor_weight=0.0)
    plain = mem.recall("garden tomatoes", namespace="g", mode="text", limit=3, settings=base)
    spread = mem.recall(
        "garden tomatoes",
        namespace="g",
        mode="text",
        limit=3,
        settings=RecallSettings(neighbor_weight=0.0, session_decay=0.9),
    )
    assert len(set(sessions_of(spread))) == 3
    assert len(set(sessions_of(spread))) > len(set(sessions_of(plain)))
    # the same memories are found, in another order: scores are not changed
    everything = mem.recall("garden tomatoes", namespace="g", mode="text", settings=base)
    again = mem.recall(
        "garden tomatoes",
        namespace="g",
        mode="text",
        settings=RecallSettings(neighbor_weight=0.0, session_decay=0.9),
    )
    assert sorted(contents(everything)) == sorted(contents(again))
    assert {h.memory.id: h.score for h in everything} == {h.memory.id: h.score for h in again}


def test_issue15_diversity_session_cap(store: Store) -> None:
    mem = Memory(store, embedder=None, index_neighbors=False)
    crowded(mem)
    capped = mem.recall(
        "garden tomatoes",
        namespace="g",
        mode="text",
        limit=4,
        settings=RecallSettings(neighbor_weight=0.0, session_cap=2),
    )
    assert sorted(sessions_of(capped)) == ["s1", "s1", "s2", "s3"]
    # past the cap, the session's other memories follow (nothing is dropped)
    whole = mem.recall(
        "garden tomatoes",
        namespace="g",
        mode="text",
        settings=RecallSettings(neighbor_weight=0.0, session_cap=1),
    )
    assert sessions_of(whole)[:3] in (["s1", "s2", "s3"], ["s1", "s3", "s2"])
    assert len(whole) == 8


# -- what is indexed -------------------------------------------------------------------------


def test_issue15_index_metadata_values_are_not_searchable_by_default(store: Store) -> None:
    mem = Memory(store, embedder=None)
    mem.remember("lunch with the design team", metadata={"ticket": "zx81qq", "label": "blue"})
    assert mem.recall("zx81qq", mode="text") == []
    assert mem.recall("blue", mode="text") == []
    # the metadata itself is kept as given, and filters on it still work
    hit = mem.recall("design team", mode="text")[0]
    assert hit.memory.metadata == {"ticket": "zx81qq", "label": "blue"}


def test_issue15_index_metadata_named_keys_only(store: Store) -> None:
    mem = Memory(store, embedder=None, index_metadata=["label"])
    record = mem.remember(
        "lunch with the design team", metadata={"ticket": "zx81qq", "label": "cobalt"}
    )
    assert [h.memory.id for h in mem.recall("cobalt", mode="text")] == [record.id]
    assert mem.recall("zx81qq", mode="text") == []
    # an update re-indexes under the same rule
    mem.update(record.id, metadata={"ticket": "yy", "label": "amber"})
    assert [h.memory.id for h in mem.recall("amber", mode="text")] == [record.id]
    assert mem.recall("cobalt", mode="text") == []
    with pytest.raises(InvalidInputError, match="index_metadata"):
        Memory(store, embedder=None, index_metadata="label")


def test_issue15_index_metadata_reindex_existing_rows(store: Store) -> None:
    old = Memory(store, embedder=None, index_metadata=["ticket", "label"])
    record = old.remember("lunch with the design team", metadata={"ticket": "zx81qq"})
    assert [h.memory.id for h in old.recall("zx81qq", mode="text")] == [record.id]
    new = Memory(store, embedder=None)  # the default: no metadata indexed
    assert new.reindex() == 1
    assert new.recall("zx81qq", mode="text") == []
    assert new.recall("design", mode="text")[0].memory.id == record.id


def test_issue15_index_metadata_migration_clears_old_rows(backend: Backend) -> None:
    """A database written before the change held metadata values in its index: the
    migration rewrites them under the default (none)."""
    store = backend.open()
    mem = Memory(store, embedder=None, index_metadata=["ticket"])
    mem.remember("lunch with the design team", metadata={"ticket": "zx81qq"})
    assert len(mem.recall("zx81qq", mode="text")) == 1
    store.close()
    if backend.name == "sqlite":
        conn = sqlite3.connect(Path(backend.target) / "engram.db")
        conn.execute("PRAGMA user_version = 13")  # before migration 14 (what is indexed)
        # and the index of then: one table for all (before migration 16; a no-op while the
        # namespace is in the shared table)
        for (number,) in conn.execute("SELECT id FROM text_tables").fetchall():
            conn.execute(
                "INSERT INTO memories_fts (rowid, content, tags, meta, ctx) "
                f"SELECT rowid, content, tags, meta, ctx FROM fts_{number}"
            )
            conn.execute(f"DROP TABLE fts_{number}")
        conn.execute("DELETE FROM text_tables")
        conn.commit()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(backend.target, autocommit=True) as pg:
            pg.execute("UPDATE engramdb_schema SET version = 10")  # before migration 11
    store = backend.open()  # migrates
    try:
        mem = Memory(store, embedder=None)
        assert mem.recall("zx81qq", mode="text") == []
        assert len(mem.recall("design team", mode="text")) == 1
    finally:
        store.close()


# -- fusion settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"text_weight": -1},
        {"neighbor_weight": float("nan")},
        {"rrf_k": 0},
        {"fusion": "max"},
        {"session_decay": 1.5},
        {"session_cap": 0},
        {"session_cap": True},
    ],
)
def test_issue15_weights_bad_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        RecallSettings(**bad)  # type: ignore[arg-type]


def test_issue15_weights_lane_weights_change_the_ranking(store: Store) -> None:
    mem = Memory(store, embedder="hashing", index_neighbors=False)
    mem.remember_many(
        [
            {"content": "the quarterly budget review is on friday"},
            {"content": "budget"},
            {"content": "an unrelated note about ferns"},
        ]
    )
    both = mem.recall("budget", explain=True)
    assert "an unrelated note about ferns" in contents(both)  # the vector lane's candidate
    # weight 0 turns a lane off: it adds no candidates and no score
    text_only = mem.recall("budget", settings=RecallSettings(vector_weight=0.0), explain=True)
    assert sorted(contents(text_only)) == ["budget", "the quarterly budget review is on friday"]
    assert all(h.explain and set(h.explain["lanes"]) == {"text"} for h in text_only)
    rrf = mem.recall(
        "budget", settings=RecallSettings(fusion="rrf", rrf_k=1.0), explain=True, limit=1
    )
    lanes = rrf[0].explain["lanes"]  # type: ignore[index]
    assert lanes["text"]["contribution"] == pytest.approx(1.0 / (1.0 + lanes["text"]["rank"]))
