"""The recall pipeline (issue 14): what the Retriever asks the store, on every backend."""

from __future__ import annotations

from typing import Any
from unittest import mock

from engramdb import Memory, RecallSettings
from engramdb.search import fusion
from engramdb.store import Store
from engramdb.store.base import TextQuery


def conversation(mem: Memory, namespace: str = "chat") -> None:
    """Two speakers, every turn prefixed with its speaker's name (as LoCoMo stores turns)."""
    turns = [
        ("caroline", "I went hiking at the lake today"),
        ("melanie", "Nice! I finished a new painting of a sunset"),
        ("caroline", "I love your work, what colours did you use"),
        ("melanie", "Mostly orange and purple, it took a week"),
        ("caroline", "I am starting a pottery class next month"),
        ("melanie", "Pottery sounds relaxing, tell me how it goes"),
        ("caroline", "My dog chewed my shoes again"),
        ("melanie", "Ha, puppies do that, my cat ignores shoes"),
    ]
    chatter = [
        (who, f"the weather on day {n} was {weather}", "s2")
        for n, (who, weather) in enumerate(
            [("caroline", "sunny"), ("melanie", "rainy"), ("caroline", "windy")] * 8
        )
    ]
    mem.remember_many(
        [
            {"content": f"{who.title()}: {text}", "user_id": who, "session_id": session}
            for who, text, session in [(w, t, "s1") for w, t in turns] + chatter
        ],
        namespace=namespace,
    )


def test_issue14_speaker_name_query_does_not_return_every_turn(store: Store) -> None:
    mem = Memory(store, embedder=None)
    conversation(mem)
    hits = mem.recall(
        "What did Caroline say about pottery?",
        namespace="chat",
        mode="text",
        limit=50,
        settings=RecallSettings(neighbor_weight=0.0),  # no neighbours joining
    )
    # "Caroline" starts 12 of the 32 turns: searching it would return all of them. Only the
    # pottery turns (and, through the indexed neighbour text, the turns around them) match.
    assert hits and all(h.memory.session_id == "s1" for h in hits)
    assert len(hits) <= 6
    # the speaker boost still ranks the named user's pottery turn first
    assert hits[0].memory.content == "Caroline: I am starting a pottery class next month"
    assert "Melanie: Pottery sounds relaxing, tell me how it goes" in [
        h.memory.content for h in hits
    ]


def test_issue14_a_query_of_names_only_still_finds_them(store: Store) -> None:
    mem = Memory(store, embedder=None)
    conversation(mem)
    hits = mem.recall("Melanie", namespace="chat", mode="text", limit=50)
    assert hits and hits[0].memory.user_id == "melanie"
    assert {h.memory.user_id for h in hits[:4]} == {"melanie"}
    # a name plus words that match nothing: the name alone still answers
    mem.remember("Ada prefers tea over coffee", user_id="ada", namespace="solo")
    hits = mem.recall(
        "what does Ada drink?", namespace="solo", mode="text", filters={"user_id": "ada"}
    )
    assert [h.memory.content for h in hits] == ["Ada prefers tea over coffee"]


def test_issue14_store_receives_parsed_terms_not_match_syntax(store: Store) -> None:
    mem = Memory(store, embedder=None)
    mem.remember('she said "hello" near the river', namespace="n")
    calls: list[tuple[Any, ...]] = []
    real = store.memory_text_search

    def spy(namespace: str, query: Any, flt: Any, *, limit: int) -> list[tuple[int, float]]:
        calls.append((namespace, query, limit))
        return real(namespace, query, flt, limit=limit)

    with mock.patch.object(store, "memory_text_search", spy):
        hits = mem.recall('"hello" OR NEAR(river*)', namespace="n", mode="text", limit=5)
    assert [h.memory.content for h in hits] == ['she said "hello" near the river']
    assert len(calls) == 1
    namespace, query, limit = calls[0]
    assert namespace == "n"
    assert isinstance(query, TextQuery)
    assert query.terms == ("hello", "near", "river")  # words only: no quotes, OR, *, ( )
    assert len(query.stems) == len(query.terms)
    assert limit == mem.settings.candidates == 200  # a shallow pool by default


def test_issue14_explain_is_built_only_when_asked(store: Store) -> None:
    mem = Memory(store, embedder=None)
    conversation(mem)
    with mock.patch.object(fusion, "lane_detail", wraps=fusion.lane_detail) as detail:
        plain = mem.recall("pottery class painting", namespace="chat", limit=3)
        assert detail.call_count == 0
        explained = mem.recall("pottery class painting", namespace="chat", limit=3, explain=True)
        assert detail.call_count > 0
    assert all(h.explain is None for h in plain)
    assert all(h.explain and "text" in h.explain["lanes"] for h in explained)
    assert [h.memory.id for h in plain] == [h.memory.id for h in explained]


def test_issue14_adjacency_is_one_store_call_per_recall(store: Store) -> None:
    mem = Memory(store, embedder=None)
    conversation(mem)
    real = store.memory_adjacency
    with mock.patch.object(store, "memory_adjacency", wraps=real) as adjacency:
        hits = mem.recall(
            "painting sunset",
            namespace="chat",
            mode="text",
            limit=10,
            explain=True,
            settings=RecallSettings(neighbor_weight=0.2),  # the lane is off by default
        )
    assert hits[0].memory.content.startswith("Melanie: Nice! I finished a new painting")
    # neighbours of the candidates that no lane found joined through the neighbour lane...
    joined = [h for h in hits if h.explain and "text" not in h.explain["lanes"]]
    assert joined and all("neighbor" in h.explain["lanes"] for h in joined)  # type: ignore[index]
    # ...and the store was asked once: the candidates' neighbours and their users came along
    assert adjacency.call_count == 1
