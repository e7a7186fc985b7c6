"""What a recall reads from the store beyond its lanes (issue 14): the users alone for the
speaker boost, the times alone for the time boosts, whole records for the hits only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from unittest import mock

from engramdb import Memory
from engramdb.filters import Filter
from engramdb.search.query import query_terms, text_query
from engramdb.store import Store
from tests.conformance.test_recall_pipeline import conversation


def test_issue14_speaker_boost_reads_users_without_neighbours(store: Store) -> None:
    mem = Memory(store, embedder=None)
    conversation(mem)
    real = store.memory_adjacency
    with mock.patch.object(store, "memory_adjacency", wraps=real) as adjacency:
        hits = mem.recall(
            "what did Caroline say about pottery", namespace="chat", mode="text", explain=True
        )
    assert adjacency.call_count == 1
    assert adjacency.call_args.kwargs == {"neighbors": False}  # the neighbour lane is off
    assert hits[0].memory.content == "Caroline: I am starting a pottery class next month"
    assert hits[0].explain and "speaker" in hits[0].explain["boosts"]
    # the users-only answer: each candidate's user, no neighbours
    rowids = [r for r, _ in store.memory_text_search("chat", _query("pottery"), Filter(), limit=9)]
    users = store.memory_adjacency("chat", rowids, neighbors=False)
    full = store.memory_adjacency("chat", rowids)
    assert {k: v[0] for k, v in users.items()} == {k: v[0] for k, v in full.items()}
    assert all(v[1:] == (None, None, None, None) for v in users.values())


def test_issue14_time_boost_reads_times_not_records(store: Store) -> None:
    mem = Memory(store, embedder=None)
    conversation(mem)
    reads: list[int] = []
    real = store.memory_records

    def spy(namespace: str, rowids: Any) -> Any:
        reads.append(len(rowids))
        return real(namespace, rowids)

    with mock.patch.object(store, "memory_records", spy):
        hits = mem.recall(
            "the latest weather", namespace="chat", mode="text", limit=3, explain=True
        )
    assert len(hits) == 3 and all(h.explain and "order" in h.explain["boosts"] for h in hits)
    # 24 weather turns were boosted by time; records were read for the 3 hits only
    assert sum(reads) == 3
    # "latest": the newest weather turn first
    assert hits[0].memory.content == "Caroline: the weather on day 23 was windy"


def test_issue14_memory_times(store: Store) -> None:
    mem = Memory(store, embedder=None)
    when = datetime(2023, 5, 7, 12, 30, 15, 250, tzinfo=UTC)
    dated = mem.remember("alpha dated", occurred_at=when, namespace="t")
    plain = mem.remember("alpha plain", namespace="t")
    gone = mem.remember("alpha gone", namespace="t")
    mem.remember("alpha elsewhere", namespace="other")
    found = {r for r, _ in store.memory_text_search("t", _query("alpha"), Filter(), limit=9)}
    other = [r for r, _ in store.memory_text_search("other", _query("alpha"), Filter(), limit=9)]
    mem.invalidate(gone.id, namespace="t")
    times = store.memory_times("t", [*found, *other])
    records = store.memory_records("t", [*found, *other])
    assert set(times) == set(records) and len(times) == 2  # live, this namespace's only
    by_content = {records[r].content: t for r, t in times.items()}
    assert by_content == {"alpha dated": when, "alpha plain": plain.created_at}
    assert dated.occurred_at == when
    assert store.memory_times("t", []) == {}


def _query(text: str) -> Any:
    return text_query(query_terms(text))
