"""PostgreSQL hybrid recall (issue 14): the vector lane runs on a second pooled connection
while the text lane runs, with the same results as the lanes in turn."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.store.postgres import PostgresStore
from tests.pg_server import PgServer


@pytest.fixture
def store(pg_server: PgServer) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_server.new_schema(), timeout=10)
    yield s
    s.close()


def _threads(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> dict[str, set[int]]:
    """The threads each lane's store call ran on (recorded on every call)."""
    seen: dict[str, set[int]] = {"memory_text_search": set(), "memory_vector_search": set()}
    for name in seen:
        original: Callable[..., Any] = getattr(store, name)

        def call(
            *args: Any, _name: str = name, _original: Callable[..., Any] = original, **kwargs: Any
        ) -> Any:
            seen[_name].add(threading.get_ident())
            return _original(*args, **kwargs)

        monkeypatch.setattr(store, name, call)
    return seen


QUERIES = ["topic 3 notes", "entry on apples", "u1 talked about topic 5", "nothing matches zzz"]


def test_issue14_pg_hybrid_lanes_overlap_with_the_results_of_lanes_in_turn(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    mem = Memory(store, embedder=HashingEmbedder(64))
    mem.remember_many(
        [
            {"content": f"entry {i} on topic {i % 7} and apples {i % 3}", "user_id": f"u{i % 2}"}
            for i in range(300)
        ]
    )
    seen = _threads(store, monkeypatch)
    overlapped = [mem.recall(q, limit=10, explain=True) for q in QUERIES]
    here = threading.get_ident()
    # the text lane on the caller's thread, the vector lane on another
    assert seen["memory_text_search"] == {here}
    assert seen["memory_vector_search"] and here not in seen["memory_vector_search"]

    monkeypatch.setattr(store, "inline_reads", True)  # as SQLite: every lane in turn
    in_turn = [mem.recall(q, limit=10, explain=True) for q in QUERIES]
    assert here in seen["memory_vector_search"]
    assert [[(h.memory.id, h.score, h.explain) for h in hits] for hits in overlapped] == [
        [(h.memory.id, h.score, h.explain) for h in hits] for hits in in_turn
    ]
    assert any(overlapped)


def test_issue14_pg_single_lane_recalls_stay_on_the_callers_thread(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a hybrid recall has two lanes to overlap: a vector recall needs no second
    connection."""
    mem = Memory(store, embedder=HashingEmbedder(64))
    mem.remember_many([{"content": f"entry {i} on topic {i % 7}"} for i in range(40)])
    seen = _threads(store, monkeypatch)
    assert mem.recall("topic 3", mode="vector", limit=5)
    assert mem.recall("topic 3", mode="text", limit=5)
    assert seen["memory_vector_search"] == {threading.get_ident()}
    assert seen["memory_text_search"] == {threading.get_ident()}


def test_issue14_pg_hybrid_recall_inside_atomic_sees_the_blocks_own_writes(
    store: PostgresStore,
) -> None:
    """Inside ``store.atomic()`` both lanes stay on the block's connection: a lane on another
    connection would not see the block's uncommitted memories."""
    mem = Memory(store, embedder=HashingEmbedder(64))
    mem.remember_many([{"content": f"entry {i} on topic {i % 7}"} for i in range(20)])
    with store.atomic():
        assert store.in_atomic()
        written = mem.remember("zebra crossing near the quarry")
        hits = mem.recall("zebra crossing quarry", limit=3, explain=True)
        assert hits and hits[0].memory.id == written.id
        assert hits[0].explain is not None and "vector" in hits[0].explain["lanes"]
    assert not store.in_atomic()
