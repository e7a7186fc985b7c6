"""Recall under concurrency (issue 14): on SQLite, recalls that call no model take turns
(:data:`RECALL_THREADS` at a time in the process), and the hits are answered as the
records' own JSON, the same bytes the response model would write."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest

from engramdb.server.models import HitOut, RecallOut
from engramdb.server.tenant import RECALL_THREADS, Turns
from engramdb.store import Store
from tests.server.conftest import Api, MakeApi

CONCURRENT = 8
OVERLAP_WAIT = 0.3
"""Seconds a text search waits for more than :data:`RECALL_THREADS` to run beside it (with
turns, never: each search waits this long once)."""


@contextmanager
def overlapping_searches(store: Store) -> Iterator[list[int]]:
    """The most full-text searches the store ran at once meanwhile (one-item list, read after
    the block). A search waits a moment for more than :data:`RECALL_THREADS` to run at once,
    so searches the server lets run side by side do overlap."""
    seen = [0]
    inside = 0
    lock = threading.Lock()
    overlapped = threading.Event()
    search = store.memory_text_search

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal inside
        with lock:
            inside += 1
            seen[0] = max(seen[0], inside)
            if inside > RECALL_THREADS:
                overlapped.set()
        try:
            overlapped.wait(OVERLAP_WAIT)
            return search(*args, **kwargs)
        finally:
            with lock:
                inside -= 1

    with mock.patch.object(store, "memory_text_search", counted):
        yield seen


def recall_at_once(api: Api, key: str, body: dict[str, Any]) -> None:
    call = api.as_key(key)
    with ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(
            pool.map(lambda _: call("POST", "/v1/memories/recall", json=body), range(CONCURRENT))
        )
    assert [r.status_code for r in answers] == [200] * CONCURRENT, answers[0].text
    assert all(r.json()["hits"] for r in answers)


def stored(api: Api) -> str:
    key = api.key()
    call = api.as_key(key)
    for text in ("otters hold hands", "otters sleep afloat", "herons fish at dawn"):
        assert call("POST", "/v1/memories", json={"content": text}).status_code == 201
    return key


@pytest.mark.parametrize(
    ("backend", "mode", "turns"),
    [
        ("sqlite", "text", True),
        # a hybrid recall embeds its query (the test app's embedder): holding a turn meanwhile
        # would keep concurrent queries from sharing the model's batch
        ("sqlite", "hybrid", False),
        # every PostgreSQL read is a round trip: the database server runs them side by side
        ("postgres", "text", False),
    ],
    indirect=["backend"],
    ids=["sqlite-text-takes-turns", "sqlite-hybrid-side-by-side", "postgres-side-by-side"],
)
def test_issue14_recall_turns(make_api: MakeApi, store: Store, mode: str, turns: bool) -> None:
    api = make_api()
    key = stored(api)
    with overlapping_searches(store) as most:
        recall_at_once(api, key, {"query": "otters", "mode": mode})
    if turns:
        assert most[0] == RECALL_THREADS
    else:
        assert most[0] > RECALL_THREADS


def test_issue14_recall_answer_is_the_response_models_json(api: Api) -> None:
    key = api.key()
    call = api.as_key(key)
    metadata = {"big": 2**70, "small": 1e-7, "large": 1e20, "text": "é \u2028 😀", "zero": -0.0}
    for body in (
        {"content": "kingfishers dive", "metadata": metadata, "tags": ["kind:bird"]},
        {"content": "kingfishers nest in banks", "importance": 1},
    ):
        assert call("POST", "/v1/memories", json=body).status_code == 201
    namespace = call("GET", "/v1/stats").json()["namespace"]
    for query in (
        {"query": "kingfishers", "mode": "text"},
        {"query": "kingfishers nest", "explain": True, "limit": 1},
        {"query": "kind:bird", "min_score": None},
        {"query": "nothing matches this"},
    ):
        answer = call("POST", "/v1/memories/recall", json=query)
        assert answer.status_code == 200
        args = {k: v for k, v in query.items() if k != "query"}
        hits = api.memory.recall(query["query"], namespace=namespace, **args)
        # what FastAPI wrote for the route's response model before (issue 14)
        model = RecallOut(hits=[HitOut.of(h) for h in hits]).model_dump_json()
        assert answer.content == model.encode()
        assert answer.headers["content-type"] == "application/json"


def test_issue14_turns_go_to_the_longest_waiter() -> None:
    """A freed turn goes to the thread that waited longest, never to one that comes later
    (with a semaphore the releasing thread itself takes it back at once)."""
    turns = Turns(1)
    order: list[str] = []

    def take(name: str) -> None:
        with turns:
            order.append(name)

    turns.__enter__()
    waiters = []
    for name in ("first", "second", "third"):
        thread = threading.Thread(target=take, args=(name,))
        thread.start()
        waiters.append(thread)
        while turns.waiting < len(waiters):  # (queued in this order)
            time.sleep(0.001)
    turns.__exit__(None, None, None)
    take("came back")  # queues behind the three
    for thread in waiters:
        thread.join(10)
    assert order == ["first", "second", "third", "came back"]
    assert turns.waiting == 0
    with turns:  # the turn is free again
        assert turns.waiting == 0


def test_issue14_turns_hold_at_most_n() -> None:
    turns = Turns(2)
    turns.__enter__()
    second = threading.Thread(target=turns.__enter__)
    second.start()
    second.join(10)
    assert not second.is_alive() and turns.waiting == 0  # the second turn was free
    third = threading.Thread(target=lambda: (turns.__enter__(), turns.__exit__(None, None, None)))
    third.start()
    while turns.waiting < 1:  # both turns are held: the third waits
        time.sleep(0.001)
    assert third.is_alive()
    turns.__exit__(None, None, None)
    third.join(10)
    assert not third.is_alive() and turns.waiting == 0
    turns.__exit__(None, None, None)  # (the second's)
    with pytest.raises(ValueError, match="at least 1"):
        Turns(0)
