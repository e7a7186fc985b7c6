"""engramdb sessions under the Agents SDK's ``OpenAIResponsesCompactionSession`` (issue 12,
part 3): the SDK's atomic history-replacement hook on SQLite, PostgreSQL and
``RemoteSession``, with the compact API answered by the fake OpenAI server on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from agents import Agent, Runner, set_tracing_disabled
from agents.memory import OpenAIResponsesCompactionSession
from agents.testing import ModelStep, ScriptedModel, assistant_message
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from engramdb import Client, RemoteSession, Session
from engramdb.errors import NotJSONError, StoreError
from engramdb.integrations.openai_agents import EngramSession
from tests.conftest import Backend
from tests.fake_openai import FakeOpenAI
from tests.live_server import LiveServer

set_tracing_disabled(True)

USER = [{"role": "user", "content": f"q{i}"} for i in (1, 2, 3)]


class NoClearEngramSession(EngramSession):
    """Fails the test if compaction swaps the history as clear-then-add (two writes with an
    empty session between them) instead of through the atomic hook."""

    async def clear_session(self) -> None:
        raise AssertionError("compaction cleared the session instead of replacing it atomically")


class NoClearRemoteSession(RemoteSession):
    async def clear_session(self) -> None:
        raise AssertionError("compaction cleared the session instead of replacing it atomically")


def fake_client(fake: FakeOpenAI) -> AsyncOpenAI:
    """A client of the fake server. Its HTTP client is given: the SDK's default one closes
    itself when collected, in whatever loop then runs — a later test's, where that close of
    a connection of this test's finished loop fails and is reported as that test's error."""
    return AsyncOpenAI(
        base_url=fake.base_url, api_key="fake", max_retries=0, http_client=DefaultAsyncHttpxClient()
    )


def compacting(underlying: Any, fake: FakeOpenAI) -> OpenAIResponsesCompactionSession:
    return OpenAIResponsesCompactionSession(
        "conv",
        underlying,
        client=fake_client(fake),
        compaction_mode="input",
        # compact once two assistant answers are stored (after the second turn)
        should_trigger_compaction=lambda ctx: len(ctx["compaction_candidate_items"]) >= 2,
    )


def three_turns(session: OpenAIResponsesCompactionSession) -> list[str]:
    steps = [
        ModelStep(output=[assistant_message(text)], response_id=f"resp-{i}")
        for i, text in enumerate(("one", "two", "three"))
    ]
    agent = Agent(name="assistant", instructions="Be brief.", model=ScriptedModel(steps))

    async def run() -> list[str]:
        return [
            str((await Runner.run(agent, f"q{i}", session=session)).final_output) for i in (1, 2, 3)
        ]

    return asyncio.run(run())


def assert_compacted(stored: list[dict[str, Any]], fake: FakeOpenAI) -> None:
    # the compact API saw the two first turns, and its output replaced them in the store
    assert len(fake.compactions) == 1
    sent = fake.compactions[0].body["input"]
    assert [i.get("content") for i in sent if i.get("role") == "user"] == ["q1", "q2"]
    kinds = [(i.get("type"), i.get("role")) for i in stored]
    assert kinds == [
        ("message", "user"),
        ("message", "user"),
        ("compaction", None),
        (None, "user"),
        ("message", "assistant"),
    ]
    assert stored[2]["encrypted_content"] == "fake-compaction-of-4-items"
    assert stored[3] == USER[2]
    assert stored[4]["content"][0]["text"] == "three"


def test_issue12_compaction_replaces_history_atomically(
    backend: Backend, fake_openai: FakeOpenAI
) -> None:
    underlying = NoClearEngramSession("conv", backend.open())
    assert three_turns(compacting(underlying, fake_openai)) == ["one", "two", "three"]
    underlying.store.close()
    # a fresh session over a fresh store connection sees the compacted history
    fresh = EngramSession("conv", backend.open())
    stored = asyncio.run(fresh.get_items())
    fresh.store.close()
    assert_compacted(stored, fake_openai)


def test_issue12_compaction_replace_is_all_or_nothing(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = backend.open()
    session = Session("conv", store)
    session.add_items(USER)
    assert session.replace_items([{"role": "user", "content": "summary"}]) == 3
    assert session.get_items() == [{"role": "user", "content": "summary"}]

    # an item that is not JSON: refused before anything is touched
    with pytest.raises(NotJSONError):
        session.replace_items([{"role": "user", "content": {1, 2}}])

    # a store failure after the clear: the transaction rolls back, the old history stays
    def failing_add(*args: Any) -> None:
        raise StoreError("disk full")

    monkeypatch.setattr(store, "session_add", failing_add)
    with pytest.raises(StoreError):
        session.replace_items(USER)
    monkeypatch.undo()
    other = backend.open()
    assert Session("conv", other).get_items() == [{"role": "user", "content": "summary"}]
    other.close()
    # replacing with nothing empties the session, which keeps existing
    assert asyncio.run(EngramSession("conv", store).replace_items([])) == 1
    assert session.get_items() == [] and session.info() is not None
    store.close()


def test_issue12_compaction_remote_session(
    live_server: LiveServer, fake_openai: FakeOpenAI
) -> None:
    key = live_server.register("compaction")
    underlying = NoClearRemoteSession("conv", live_server.url, api_key=key)
    assert three_turns(compacting(underlying, fake_openai)) == ["one", "two", "three"]
    with Client(live_server.url, key) as client:
        assert_compacted(client.get_items("conv"), fake_openai)
        # the Client's own replace, and another namespace cannot see or touch the session
        assert client.replace_items("conv", USER[:1]) == 5
        assert client.get_items("conv") == USER[:1]
    with Client(live_server.url, live_server.register("other")) as other:
        assert other.get_items("conv") == []
        assert other.replace_items("conv", USER) == 0
    with Client(live_server.url, key) as client:
        assert client.get_items("conv") == USER[:1]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"items": "not a list"}, 422),
        ({"items": [1, 2]}, 422),
        ({}, 422),
        ({"items": [{"role": "user"}] * 10_001}, 422),
    ],
)
def test_issue12_compaction_put_items_rejects_bad_input(
    live_server: LiveServer, body: dict[str, Any], status: int
) -> None:
    key = live_server.register("put-items")
    with Client(live_server.url, key) as client:
        client.add_items("kept", USER)
        r = httpx.put(
            f"{live_server.url}/v1/sessions/kept/items",
            json=body,
            headers={"X-API-Key": key},
            timeout=30,
        )
        assert r.status_code == status, r.text
        assert set(r.json()["error"]) >= {"code", "message"}
        assert client.get_items("kept") == USER  # nothing lost


OLD = [
    {"role": "user", "content": "old-q"},
    {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "old-a", "annotations": []}],
    },
]


def test_issue12_compaction_bounded_suffix_keeps_older_history(
    backend: Backend, fake_openai: FakeOpenAI
) -> None:
    # the model sees only the newest two stored items: automatic compaction replaces the
    # suffix it saw, through the SDK's bounded snapshot hook, and keeps what came before
    store = backend.open()
    underlying = NoClearEngramSession("conv", store, session_settings={"limit": 2})
    asyncio.run(underlying.add_items(OLD * 2))
    session = OpenAIResponsesCompactionSession(
        "conv",
        underlying,
        client=fake_client(fake_openai),
        compaction_mode="input",
        should_trigger_compaction=lambda ctx: True,
    )
    model = ScriptedModel([ModelStep(output=[assistant_message("one")], response_id="r1")])
    agent = Agent(name="assistant", instructions="Be brief.", model=model)
    assert Runner.run_sync(agent, "q1", session=session).final_output == "one"
    assert len(fake_openai.compactions) == 1
    stored = asyncio.run(underlying.get_items(100))
    assert stored[:2] == OLD  # older history, never sent to the model, stays as it was
    assert [i.get("content") for i in stored[2:4]] == ["old-q", "q1"]
    assert stored[4]["type"] == "compaction" and len(stored) == 5
    store.close()


def test_issue12_compaction_suffix_replace_refuses_a_changed_session(backend: Backend) -> None:
    store = backend.open()
    session = Session("conv", store)
    session.add_items(OLD * 2)
    items, complete, version = session.tail_snapshot(2)
    assert (items, complete) == (OLD, False)
    session.add_items(USER[:1])  # a write after the snapshot
    assert not session.replace_tail(items, [{"role": "user", "content": "x"}], version=version)
    assert session.get_items() == OLD * 2 + USER[:1]
    items, complete, version = session.tail_snapshot(10)
    assert complete and len(items) == 5
    assert session.replace_tail(items[3:], [{"role": "user", "content": "x"}], version=version)
    assert session.get_items() == [*OLD, OLD[0], {"role": "user", "content": "x"}]
    store.close()
