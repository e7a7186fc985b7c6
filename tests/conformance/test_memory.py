"""The memory engine's behaviour, run on every backend."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engramdb import (
    ConflictError,
    InvalidInputError,
    Memory,
    NotFoundError,
)
from engramdb.embed import HashingEmbedder
from engramdb.store import Store


@pytest.fixture
def mem(store: Store) -> Memory:
    return Memory(store, embedder=HashingEmbedder(256))


@pytest.fixture
def text_mem(store: Store) -> Memory:
    return Memory(store, embedder=None)


def contents(hits: list[Any]) -> list[str]:
    return [h.memory.content for h in hits]


# -- remember / get / list / update ----------------------------------------------------------


def test_remember_get_and_fields(mem: Memory) -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    m = mem.remember(
        "Ada prefers green tea in the morning",
        user_id="ada",
        agent_id="assistant",
        session_id="s1",
        tags=["prefs", "drinks"],
        metadata={"source": "chat", "n": 3},
        importance=0.8,
        occurred_at=when,
    )
    assert m.id.startswith("mem_") and m.version == 1
    got = mem.get(m.id)
    assert got == m
    assert (got.user_id, got.agent_id, got.session_id) == ("ada", "assistant", "s1")
    assert got.tags == ("prefs", "drinks") and got.metadata == {"source": "chat", "n": 3}
    assert got.importance == 0.8 and got.occurred_at == when


def test_identical_content_in_one_scope_is_stored_once(mem: Memory) -> None:
    a = mem.remember("the sky is blue", user_id="u1")
    b = mem.remember("  the sky is blue  ", user_id="u1")
    c = mem.remember("the sky is blue", user_id="u2")
    assert a.id == b.id and a.id != c.id
    assert mem.stats().memories == 2


def test_remember_many_is_one_transaction(mem: Memory) -> None:
    good = [{"content": f"fact number {n}"} for n in range(5)]
    with pytest.raises(InvalidInputError, match="entry 5"):
        mem.remember_many([*good, {"content": "   "}])
    assert mem.stats().memories == 0
    stored = mem.remember_many(good)
    assert [m.content for m in stored] == [g["content"] for g in good]


def test_list_pages_with_a_stable_cursor(mem: Memory) -> None:
    ids = [mem.remember(f"memory {n}", user_id="u" if n % 2 else "v").id for n in range(25)]
    seen, cursor = [], None
    while True:
        page = mem.list(cursor=cursor, limit=10)
        seen += [m.id for m in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        mem.remember(f"inserted while paging {len(seen)}")  # lands after the cursor
    assert seen[:25] == ids
    only_u = mem.list({"user_id": "u"}, limit=100).items
    assert [m.id for m in only_u] == ids[1::2]
    with pytest.raises(InvalidInputError, match="cursor"):
        mem.list(cursor="garbage")


def test_update_keeps_history(mem: Memory) -> None:
    m = mem.remember("Ada lives in London", tags=["home"], importance=0.4)
    m2 = mem.update(m.id, content="Ada lives in Paris", importance=0.9)
    m3 = mem.update(m.id, tags=["home", "moved"])
    assert (m2.version, m3.version) == (2, 3)
    assert mem.get(m.id).content == "Ada lives in Paris" and m3.tags == ("home", "moved")
    history = mem.history(m.id)
    assert [(v.version, v.content) for v in history] == [
        (1, "Ada lives in London"),
        (2, "Ada lives in Paris"),
    ]
    assert contents(mem.recall("Paris", mode="text")) == ["Ada lives in Paris"]
    assert mem.recall("London", mode="text") == []
    with pytest.raises(NotFoundError):
        mem.update("mem_missing", content="x")
    with pytest.raises(InvalidInputError, match="nothing to update"):
        mem.update(m.id)


def test_update_to_content_that_already_exists_is_a_conflict(mem: Memory) -> None:
    a = mem.remember("first")
    mem.remember("second")
    with pytest.raises(ConflictError):
        mem.update(a.id, content="second")
    assert mem.get(a.id).content == "first"


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"content": ""}, "empty"),
        ({"content": " \n\t "}, "empty"),
        ({"content": "x" * 40_000}, "limit"),
        ({"content": 42}, "string"),
        ({"content": None}, "string"),
        ({"content": b"\xff\xfe"}, "UTF-8"),
        ({"content": "lone \ud800"}, "surrogate"),
        ({"content": "ok", "importance": math.nan}, "importance"),
        ({"content": "ok", "importance": math.inf}, "importance"),
        ({"content": "ok", "importance": 1.5}, "importance"),
        ({"content": "ok", "importance": True}, "importance"),
        ({"content": "ok", "importance": "high"}, "importance"),
        ({"content": "ok", "tags": "not-a-list"}, "tags"),
        ({"content": "ok", "tags": [1]}, "tag"),
        ({"content": "ok", "tags": [""]}, "tags"),
        ({"content": "ok", "metadata": ["x"]}, "metadata"),
        ({"content": "ok", "metadata": {"x": object()}}, "metadata"),
        ({"content": "ok", "metadata": {"x": math.nan}}, "metadata"),
        ({"content": "ok", "user_id": ""}, "user_id"),
        ({"content": "ok", "user_id": 7}, "user_id"),
        ({"content": "ok", "occurred_at": "yesterday"}, "occurred_at"),
    ],
)
def test_bad_remember_input_is_rejected_and_writes_nothing(
    mem: Memory, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        mem.remember(**kwargs)
    assert mem.stats().memories == 0


def test_bad_recall_input(mem: Memory) -> None:
    mem.remember("something")
    for limit in (-1, 10_001, True, "5", 2.5):
        with pytest.raises(InvalidInputError, match="limit"):
            mem.recall("something", limit=limit)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="unknown filter field"):
        mem.recall("something", filters={"colour": "red"})
    with pytest.raises(InvalidInputError, match="mode"):
        mem.recall("something", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="query"):
        mem.recall(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        mem.recall("x", filters={"tags": "single"})


def test_vector_mode_without_embedder_is_a_clear_error(text_mem: Memory) -> None:
    with pytest.raises(InvalidInputError, match="embedder"):
        text_mem.recall("x", mode="vector")


# -- recall ----------------------------------------------------------------------------------

FTS_TRAPS = [
    '"',
    '""',
    "'",
    'a"b',
    "NEAR(a b)",
    "a NEAR b",
    "*",
    "a*",
    "-",
    "-a",
    "a -b",
    ":",
    "a:b",
    "session:user-123",
    "(",
    ")",
    "(a OR b",
    "AND",
    "OR",
    "NOT",
    "a AND OR NOT b",
    "^a",
    "{a b}",
    "col:term",
    "🧠🔥",
    "\u202e",
    "\x00",
    "x" * 4_000,  # up to the query limit (4,096 characters; beyond is PayloadTooLargeError)
    "word " * 800,
    "\\",
    "%",
    "_",
    "SELECT * FROM memories; --",
    "' OR 1=1 --",
    "\u0000\u0001",
    "日本語のテキスト",
    "ü ß é",
]


@pytest.mark.parametrize("query", FTS_TRAPS)
def test_any_query_string_is_valid(mem: Memory, query: str) -> None:
    mem.remember("session user 123 has a word about memories")
    for mode in ("hybrid", "text", "vector"):
        hits = mem.recall(query, mode=mode)  # type: ignore[arg-type]
        assert isinstance(hits, list)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=st.text(max_size=200))
def test_random_query_strings_never_raise(text_mem: Memory, query: str) -> None:
    text_mem.remember("the quick brown fox jumps over the lazy dog")
    assert isinstance(text_mem.recall(query), list)


def test_text_recall_ranks_relevant_memories_first(text_mem: Memory) -> None:
    text_mem.remember_many(
        [
            {"content": "Caroline went to the LGBTQ support group on Tuesday"},
            {"content": "Melanie painted a sunrise over the lake"},
            {"content": "They talked about the weather"},
            {"content": "Melanie signed up for a pottery class"},
        ]
    )
    hits = text_mem.recall("When did Caroline go to the support group?")
    assert contents(hits)[0] == "Caroline went to the LGBTQ support group on Tuesday"
    hits = text_mem.recall("what did melanie paint?", limit=1)
    assert contents(hits) == ["Melanie painted a sunrise over the lake"]
    # stemming: "painting" finds "painted"
    assert "Melanie painted a sunrise over the lake" in contents(text_mem.recall("painting"))


def test_tags_and_named_metadata_values_are_searchable(text_mem: Memory) -> None:
    text_mem.remember("first note", tags=["session:user-123"])
    text_mem.remember("second note", tags=["session:user-123", "other"])
    text_mem.remember("third note mentions session user 123 in text")
    text_mem.remember("fifth note", metadata={"project": "airship"})  # not a named key
    text_mem.index_metadata = ("project",)  # issue 15: only named keys are indexed
    text_mem.remember("fourth note", metadata={"project": "zeppelin"})
    assert text_mem.recall("airship") == []
    for n in range(30):  # noise that matches the tag's words
        text_mem.remember(f"session {n} of user 123 notes")
    hits = text_mem.recall("session:user-123", limit=2)
    assert set(contents(hits)) == {"first note", "second note"}
    assert contents(text_mem.recall("zeppelin")) == ["fourth note"]


def test_filters_apply_inside_the_candidate_query(mem: Memory) -> None:
    mem.remember_many([{"content": f"coffee note {n}", "user_id": "busy"} for n in range(300)])
    mem.remember_many([{"content": f"coffee memo {n}", "user_id": "rare"} for n in range(3)])
    for mode in ("text", "vector", "hybrid"):
        hits = mem.recall("coffee", filters={"user_id": "rare"}, limit=5, mode=mode)  # type: ignore[arg-type]
        assert sorted(contents(hits)) == [f"coffee memo {n}" for n in range(3)], mode


def test_tag_metadata_and_time_filters(mem: Memory) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(6):
        mem.remember(
            f"trip report {n}",
            tags=["travel"] + (["work"] if n % 2 else []),
            metadata={"city": "Paris" if n < 3 else "Rome", "n": n},
            occurred_at=base + timedelta(days=n),
        )
    hits = mem.recall("trip report", filters={"tags": ["travel", "work"]}, limit=10)
    assert sorted(contents(hits)) == ["trip report 1", "trip report 3", "trip report 5"]
    hits = mem.recall("trip report", filters={"metadata": {"city": "Rome"}}, limit=10)
    assert sorted(contents(hits)) == ["trip report 3", "trip report 4", "trip report 5"]
    hits = mem.recall("trip", filters={"metadata": {"n": 2}}, limit=10)
    assert contents(hits) == ["trip report 2"]
    window = {"since": base + timedelta(days=2), "until": (base + timedelta(days=4)).isoformat()}
    hits = mem.recall("trip report", filters=window, limit=10)
    assert sorted(contents(hits)) == ["trip report 2", "trip report 3"]


def test_vector_lane_finds_what_text_misses(mem: Memory) -> None:
    mem.remember("photography is her hobby")
    mem.remember("unrelated line about taxes")
    # no shared word, shared character trigrams: only the vector lane can find it
    hits = mem.recall("photographs", mode="vector", limit=1)
    assert contents(hits) == ["photography is her hobby"]
    assert mem.recall("photographs", mode="text") == []
    assert contents(mem.recall("photographs", limit=1)) == ["photography is her hobby"]


def test_explain_shows_each_lane(mem: Memory) -> None:
    mem.remember("Ada drinks green tea")
    hit = mem.recall("green tea", explain=True)[0]
    assert hit.explain is not None
    assert set(hit.explain["lanes"]) == {"text", "vector"}
    assert hit.explain["lanes"]["text"]["rank"] == 1
    assert hit.explain["score"] == pytest.approx(hit.score)
    assert mem.recall("green tea")[0].explain is None


def test_importance_and_recency_boosts(mem: Memory) -> None:
    from engramdb import RecallSettings

    old = datetime.now(UTC) - timedelta(days=365)
    mem.remember("meeting notes alpha", importance=0.1, occurred_at=old)
    mem.remember("meeting notes beta", importance=1.0)
    plain = contents(mem.recall("meeting notes", mode="text"))
    boosted = RecallSettings(importance_weight=1.0, recency_weight=1.0)
    ranked = mem.recall("meeting notes", mode="text", settings=boosted, explain=True)
    assert contents(ranked)[0] == "meeting notes beta"
    assert set(ranked[0].explain["boosts"]) == {"importance", "recency"}  # type: ignore[index]
    assert sorted(plain) == sorted(contents(ranked))


# -- forget ----------------------------------------------------------------------------------


def test_forgotten_memory_is_gone_from_every_index(mem: Memory) -> None:
    keep = mem.remember("keep this zebra fact", user_id="u")
    gone = mem.remember("forget this zebra secret", user_id="u", tags=["secret-tag"])
    assert len(mem.recall("zebra", mode="vector")) == 2  # the vector index has both
    result = mem.forget(gone.id)
    assert result.ids == [gone.id] and not result.dry_run
    with pytest.raises(NotFoundError):
        mem.get(gone.id)
    for mode in ("text", "vector", "hybrid"):
        assert contents(mem.recall("zebra secret", mode=mode)) == [keep.content], mode  # type: ignore[arg-type]
    assert gone.id not in [h.memory.id for h in mem.recall("secret-tag")]
    assert mem.recall("secret-tag", mode="text") == []
    assert [m.id for m in mem.list(limit=100).items] == [keep.id]
    assert [e["id"] for e in mem.export() if e["type"] == "memory"] == [keep.id]
    assert mem.history(keep.id) == []
    with pytest.raises(NotFoundError):
        mem.forget(gone.id)
    fresh = Memory(mem.store, embedder=HashingEmbedder(256))  # a new index built from the store
    assert contents(fresh.recall("zebra secret", mode="vector")) == [keep.content]


def test_forget_by_filter_requires_a_scope_and_can_dry_run(mem: Memory) -> None:
    for n in range(4):
        mem.remember(f"user a note {n}", user_id="a")
    mem.remember("user b note", user_id="b")
    with pytest.raises(InvalidInputError, match="scope"):
        mem.forget(filters={})
    with pytest.raises(InvalidInputError):
        mem.forget()
    dry = mem.forget(filters={"user_id": "a"}, dry_run=True)
    assert dry.dry_run and dry.count == 4 and mem.stats().memories == 5
    done = mem.forget(filters={"user_id": "a"})
    assert sorted(done.ids) == sorted(dry.ids)
    assert contents(mem.recall("note", limit=10)) == ["user b note"]


# -- isolation ---------------------------------------------------------------------------------


def test_namespaces_cannot_see_or_touch_each_other(store: Store) -> None:
    a = Memory(store, namespace="tenant-a", embedder=HashingEmbedder(256))
    b = Memory(store, namespace="tenant-b", embedder=HashingEmbedder(256))
    secret = a.remember("tenant a secret launch code", user_id="u", tags=["t"])
    a.learn("tenant-a", "owns", "launch code")
    for mode in ("text", "vector", "hybrid"):
        assert b.recall("secret launch code", mode=mode) == []  # type: ignore[arg-type]
    assert b.recall("t") == []
    with pytest.raises(NotFoundError):
        b.get(secret.id)
    with pytest.raises(NotFoundError):
        b.update(secret.id, content="overwritten")
    with pytest.raises(NotFoundError):
        b.forget(secret.id)
    with pytest.raises(NotFoundError):
        b.history(secret.id)
    assert b.forget(filters={"user_id": "u"}).ids == []
    assert b.list().items == []
    assert [r["type"] for r in b.export()] == ["engramdb-export", "namespace", "end"]
    assert b.facts() == [] and b.neighbors("tenant-a") == []
    assert b.stats().memories == 0
    assert a.get(secret.id).content == "tenant a secret launch code"
    # explicit namespace overrides per call reach only that namespace
    assert b.recall("secret", namespace="tenant-a")[0].memory.id == secret.id


# -- triples -----------------------------------------------------------------------------------


def test_learn_and_query_facts(mem: Memory) -> None:
    t = mem.learn("Ada", "likes", "tea", confidence=0.9, source="chat-1")
    mem.learn("Ada", "likes", "chess")
    mem.learn("Bob", "likes", "tea")
    assert mem.learn("Ada", "likes", "tea").id == t.id  # idempotent while current
    assert {f.object for f in mem.facts("Ada")} == {"tea", "chess"}
    assert {f.subject for f in mem.facts(predicate="likes", object="tea")} == {"Ada", "Bob"}
    assert mem.facts("ada")[0].subject == "Ada"  # entity matching ignores case
    assert t.confidence == 0.9 and t.source == "chat-1" and t.current


def test_single_valued_fact_supersedes_and_keeps_history(mem: Memory) -> None:
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    t1 = datetime(2023, 6, 1, tzinfo=UTC)
    mem.learn("Ada", "lives_in", "London", valid_from=t0, single_valued=True)
    mem.learn("Ada", "lives_in", "Paris", valid_from=t1, single_valued=True)
    assert [f.object for f in mem.facts("Ada", "lives_in")] == ["Paris"]
    assert [
        f.object for f in mem.facts("Ada", "lives_in", as_of=datetime(2021, 1, 1, tzinfo=UTC))
    ] == ["London"]
    assert [f.object for f in mem.facts("Ada", "lives_in", as_of="2024-01-01T00:00:00Z")] == [
        "Paris"
    ]
    assert mem.facts("Ada", "lives_in", as_of=datetime(2019, 1, 1, tzinfo=UTC)) == []
    history = mem.facts("Ada", "lives_in", include_history=True)
    assert [(f.object, f.valid_to) for f in history] == [("London", t1), ("Paris", None)]
    # recall sees the current fact; the superseded one left the searchable memories
    found = contents(mem.recall("where does Ada live", mode="text", limit=5))
    assert "Ada lives_in Paris" in found and "Ada lives_in London" not in found


def test_neighbors_walk_the_graph(mem: Memory) -> None:
    mem.learn("Ada", "works_at", "Acme")
    mem.learn("Acme", "located_in", "Berlin")
    mem.learn("Berlin", "in", "Germany")
    one = {(f.subject, f.object) for f in mem.neighbors("Ada")}
    assert one == {("Ada", "Acme")}
    two = {(f.subject, f.object) for f in mem.neighbors("Ada", depth=2)}
    assert two == {("Ada", "Acme"), ("Acme", "Berlin")}
    assert len(mem.neighbors("acme", depth=3)) == 3
    with pytest.raises(InvalidInputError):
        mem.neighbors("Ada", depth=0)


@pytest.mark.parametrize(
    "args", [("", "p", "o"), ("s", "  ", "o"), ("s", "p", None), ("s", "p", 5)]
)
def test_bad_triples(mem: Memory, args: tuple[Any, ...]) -> None:
    with pytest.raises(InvalidInputError):
        mem.learn(*args)
    with pytest.raises(InvalidInputError, match="confidence"):
        mem.learn("s", "p", "o", confidence=2)
    assert mem.facts() == []


# -- stats, export / import ------------------------------------------------------------------


def test_stats(mem: Memory, store: Store) -> None:
    from engramdb import Session

    mem.remember("one")
    mem.remember("two")
    mem.learn("a", "b", "c")
    Session("s", store).add_items([{"x": 1}, {"x": 2}])
    s = mem.stats()
    assert (s.memories, s.embedded, s.triples, s.current_triples) == (3, 3, 1, 1)
    assert (s.sessions, s.session_items) == (1, 2)


def test_item_12_export_import_is_complete_and_idempotent(mem: Memory, store: Store) -> None:
    from engramdb import Session

    alpha = mem.remember(
        "alpha",
        tags=["x"],
        metadata={"k": "v"},
        importance=0.7,
        user_id="u",
        occurred_at=datetime(2022, 2, 2, tzinfo=UTC),
    )
    mem.update(alpha.id, content="alpha two", importance=0.2)
    mem.remember("beta", session_id="s")
    mem.learn("Ada", "lives_in", "London", single_valued=True)
    mem.learn("Ada", "lives_in", "Paris", single_valued=True, source="chat")
    Session("s", store).add_items([{"role": "user", "content": "hi"}, {"n": 1}])
    exported = list(mem.export(with_vectors=True))
    kinds = [r["type"] for r in exported]
    assert kinds[:2] == ["engramdb-export", "namespace"] and kinds[-1] == "end"
    assert kinds.count("memory") == 3 and kinds.count("triple") == 2
    assert kinds.count("session") == 1 and kinds.count("session_item") == 2
    memory = next(r for r in exported if r.get("id") == alpha.id)
    assert memory["version"] == 2 and [h["content"] for h in memory["history"]] == ["alpha"]
    assert memory["embedding_model"] == mem.embedder.model  # type: ignore[union-attr]
    portable = [r for r in mem.export() if r["type"] == "memory"]  # vectors only if asked
    assert [r["id"] for r in portable] == [r["id"] for r in exported if r["type"] == "memory"]
    assert all("embedding" not in r and r["embedding_model"] for r in portable)

    # importing what is already there changes nothing (it used to fail: "constraint failed")
    again = mem.import_records(exported)
    assert sum(again.created.values()) == 0 and again.skipped["memories"] == 3
    assert list(mem.export(with_vectors=True)) == exported

    # what was lost comes back exactly: the memory with its history, the session's items
    mem.forget(alpha.id)
    Session("s", store).clear_session()
    restored = mem.import_records(exported)
    assert restored.created["memories"] == 1 and restored.created["history"] == 1
    assert restored.created["session_items"] == 2
    # the same records; the restored memory is now the newest (insertion order)
    assert sorted(map(repr, mem.export(with_vectors=True))) == sorted(map(repr, exported))
    assert contents(mem.recall("alpha", limit=1)) == ["alpha two"]
    # the quota counters follow imported rows (they bypass memory_insert and triple_insert)
    assert store.usage_counts(mem.namespace) == store.usage_recount(mem.namespace)
    assert store.usage_counts(mem.namespace) == {"memories": 3, "facts": 2}

    # ids are kept, so the same memories cannot also live in another namespace
    with pytest.raises(ConflictError, match="another namespace"):
        mem.import_records(exported, namespace="copy")
    assert mem.stats(namespace="copy").memories == 0


def test_reembed_fills_missing_vectors(store: Store) -> None:
    Memory(store, embedder=None).remember("stored without a vector")
    mem = Memory(store, embedder=HashingEmbedder(256))
    assert mem.stats().embedded == 0
    assert mem.reembed() == 1
    assert mem.stats().embedded == 1
    assert contents(mem.recall("vector", mode="vector")) == ["stored without a vector"]


# -- conversation context --------------------------------------------------------------------


def _conversation(mem: Memory) -> list[Any]:
    turns = [
        ("ada", "Have you tried the new pottery studio downtown?"),
        ("bob", "Yes! I went there on Saturday."),
        ("ada", "How was it?"),
        ("bob", "Honestly the best class I have taken in years."),
        ("ada", "Anyway, what about the weather tomorrow?"),
    ]
    return mem.remember_many(
        [{"content": f"{u}: {t}", "user_id": u, "session_id": "chat-1"} for u, t in turns]
    )


def test_neighbouring_turns_are_searchable_context(text_mem: Memory) -> None:
    stored = _conversation(text_mem)
    text_mem.remember("bob: completely unrelated note", user_id="bob")
    # "pottery" appears only in turn 0; turns 1-2 are found through their context
    hits = text_mem.recall("pottery", limit=5)
    found = [h.memory.id for h in hits]
    assert found[0] == stored[0].id
    assert stored[1].id in found and stored[2].id in found
    assert stored[4].id not in found[:3] or len(found) <= 3


def test_forget_removes_text_from_neighbours_context(text_mem: Memory) -> None:
    stored = _conversation(text_mem)
    text_mem.forget(stored[0].id)
    assert text_mem.recall("pottery studio downtown", mode="text") == []
    text_mem.update(stored[3].id, content="bob: it was fine")
    assert text_mem.recall("honestly years", mode="text") == []


def test_query_naming_one_user_prefers_their_memories(text_mem: Memory) -> None:
    from engramdb import RecallSettings

    text_mem.remember("ada: I love hiking in the mountains", user_id="ada")
    text_mem.remember("bob: hiking is not for me, I prefer the beach", user_id="bob")
    hits = text_mem.recall("What does Bob think about hiking?", explain=True)
    assert hits[0].memory.user_id == "bob"
    assert hits[0].explain is not None and "speaker" in hits[0].explain["boosts"]
    plain = text_mem.recall(
        "What does Bob think about hiking?", settings=RecallSettings(speaker_weight=0.0)
    )
    assert all(h.explain is None for h in plain)


def test_rrf_fusion_is_available(mem: Memory) -> None:
    from engramdb import RecallSettings

    mem.remember("green tea in the morning")
    mem.remember("black coffee at night")
    hits = mem.recall("green tea", settings=RecallSettings(fusion="rrf"), explain=True, limit=1)
    assert hits[0].memory.content == "green tea in the morning"
    assert hits[0].explain["lanes"]["text"]["contribution"] == pytest.approx(1 / 61)  # type: ignore[index]


@pytest.mark.parametrize("mode", ["text", "hybrid"])
def test_boosts_lift_a_candidate_from_deep_in_the_pool(mem: Memory, mode: str) -> None:
    """Fusion keeps only candidates that can still reach the top k once boosted; the bound
    must count every boost: here the speaker's (x1.5) and the time window's (x2) lift a weak
    text match past forty stronger ones."""
    from engramdb import RecallSettings

    may = datetime(2023, 5, 10, tzinfo=UTC)
    strong = [
        {
            "content": f"ada: kayak kayak kayak trip {n}",
            "user_id": "ada",
            "occurred_at": datetime(2022, 1, 1, tzinfo=UTC) + timedelta(days=n),
        }
        for n in range(40)
    ]
    mem.remember_many(strong)
    weak = mem.remember(
        "bob: I rented a kayak once, among many other things I did that long and busy week",
        user_id="bob",
        occurred_at=may,
    )
    query = "Bob kayak in May 2023"
    settings = RecallSettings(speaker_weight=0.5, time_weight=1.0)
    top = mem.recall(query, limit=1, mode=mode, settings=settings, explain=False)
    explained = mem.recall(query, limit=1, mode=mode, settings=settings, explain=True)
    assert [h.memory.id for h in top] == [weak.id] == [h.memory.id for h in explained]
    assert top[0].score == pytest.approx(explained[0].score)
    assert explained[0].explain is not None
    assert set(explained[0].explain["boosts"]) >= {"speaker", "time"}
    # without the boosts the weak match is not first: the boosts are what lifted it
    plain = mem.recall(
        query, limit=1, mode=mode, settings=RecallSettings(speaker_weight=0.0, time_mode="off")
    )
    assert [h.memory.id for h in plain] != [weak.id]
