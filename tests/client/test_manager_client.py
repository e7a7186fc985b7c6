"""Issue 11 part 4 in the clients: ``add_messages`` / ``extract`` / ``events`` /
``invalidate`` / ``restore`` / ``list(include_invalidated=)`` on :class:`Client` and
:class:`AsyncClient` against live servers: the shared one of the test run (no model) and one
started here whose model is the fake OpenAI-compatible server."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb import AsyncClient, Client, Memory
from engramdb.client import ExtractResult
from engramdb.errors import ConflictError, LLMUnavailableError, NotFoundError
from engramdb.manager.decide import DecisionEvent
from engramdb.types import MemoryEvent
from tests.fake_openai import FakeOpenAI
from tests.live_server import LiveServer, start_live_server


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory, fake: FakeOpenAI) -> Iterator[LiveServer]:
    """``engramdb serve`` with ``ENGRAMDB_LLM=openai:fake-model`` pointed at the fake."""
    where = tmp_path_factory.mktemp("llm-server")
    server = start_live_server(
        str(where / "data"),
        log_path=where / "server.log",
        embedder="hashing",
        llm="openai:fake-model",
        llm_base_url=fake.base_url,
        llm_api_key="test",
    )
    yield server
    server.stop()


@pytest.fixture
def llm_client(llm_server: LiveServer, fake: FakeOpenAI) -> Iterator[Client]:
    assert fake.pending == 0  # the previous test used every scripted answer
    with Client(llm_server.url, llm_server.register("manager"), backoff=0.01) as c:
        yield c


def _fact(content: str, seq: int = 0) -> dict[str, object]:
    return {
        "type": "preference",
        "content": content,
        "about": "user",
        "occurred_at": None,
        "source_seqs": [seq],
        "importance": 0.7,
    }


def _say(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_issue11_client_add_messages_add_then_update(llm_client: Client, fake: FakeOpenAI) -> None:
    fake.answer({"memories": [_fact("Ada prefers green tea")], "triples": []})
    first = llm_client.add_messages(_say("I prefer green tea"), session_id="chat", user_id="ada")
    assert isinstance(first, ExtractResult)
    assert first.stored == 1 and first.tokens > 0 and not first.dry_run
    assert [d.action for d in first.decisions] == ["add"]
    assert first.decisions[0].candidate.content == "Ada prefers green tea"
    (added,) = first.applied
    assert isinstance(added, DecisionEvent) and added.memory_id is not None

    fake.answer({"memories": [_fact("Ada now prefers black tea", 1)], "triples": []})
    fake.answer(
        {"action": "update", "handle": 1, "content": "Ada prefers black tea", "reason": "changed"}
    )
    second = llm_client.add_messages(_say("Black tea now"), session_id="chat", user_id="ada")
    (updated,) = second.applied
    assert updated.action == "update" and updated.memory_id == added.memory_id
    assert updated.previous_content == "Ada prefers green tea"
    events = llm_client.events(added.memory_id)
    assert all(isinstance(e, MemoryEvent) for e in events)
    assert [e.action for e in events] == ["add", "update"]
    assert events[1].model == "fake-model" and events[1].item_seqs == (1,)
    assert llm_client.get(added.memory_id).content == "Ada prefers black tea"


def test_issue11_client_llm_down_raises_once_and_keeps_the_messages(
    llm_client: Client, fake: FakeOpenAI
) -> None:
    """The server stored the messages before its model failed: the client must not repeat
    the call (a retry would store them again)."""
    fake.error(401, message="bad key")  # the server's model gives up at once
    with pytest.raises(LLMUnavailableError) as caught:
        llm_client.add_messages(_say("I live in Lyon"), session_id="s")
    assert caught.value.status == 503 and caught.value.code == "llm_unavailable"
    assert len(llm_client.get_items("s")) == 1  # stored once
    fake.answer({"memories": [_fact("Ada lives in Lyon")], "triples": []})
    result = llm_client.extract("s")
    assert [a.content for a in result.applied] == ["Ada lives in Lyon"]
    with pytest.raises(NotFoundError):
        llm_client.extract("never-used")


def test_issue11_client_without_server_llm_and_invalidation(client: Client) -> None:
    with pytest.raises(ConflictError) as caught:
        client.add_messages(_say("I live in Lyon"), session_id="s")
    assert caught.value.code == "llm_not_configured"
    assert client.session_info("s") is None  # nothing stored
    result = client.add_messages(_say("I live in Lyon"), session_id="s", infer=False)
    (applied,) = result.applied
    assert applied.action == "add" and applied.memory_id is not None
    mid = applied.memory_id

    gone = client.invalidate(mid, reason="moved away")
    assert gone.invalidated and gone.invalidated_reason == "moved away"
    assert client.get(mid).invalidated_at is not None  # parse_memory reads it
    assert client.list().items == []
    assert [m.id for m in client.list(include_invalidated=True).items] == [mid]
    back = client.restore(mid)
    assert not back.invalidated
    assert [m.id for m in client.list().items] == [mid]
    assert [e.action for e in client.events(mid)][-2:] == ["invalidate", "restore"]
    with pytest.raises(NotFoundError):
        client.events("no-such-memory")


@pytest.mark.anyio
async def test_issue11_async_client_manager_calls(llm_server: LiveServer, fake: FakeOpenAI) -> None:
    fake.answer({"memories": [_fact("Ada plays the cello")], "triples": []})
    async with AsyncClient(llm_server.url, llm_server.register("async")) as c:
        result = await c.add_messages(_say("I play the cello"), session_id="a", user_id="ada")
        (applied,) = result.applied
        assert applied.content == "Ada plays the cello" and applied.memory_id is not None
        mid = applied.memory_id
        assert (await c.invalidate(mid, "wrong")).invalidated
        assert (await c.list()).items == []
        assert [m.id for m in (await c.list(include_invalidated=True)).items] == [mid]
        assert not (await c.restore(mid)).invalidated
        events = await c.events(mid)
        assert [e.action for e in events] == ["add", "invalidate", "restore"]
        dry = await c.extract("a", dry_run=True)
        assert dry.dry_run and dry.decisions == [] and dry.applied == []


def test_issue11_served_manager_extracts_remote_sessions_and_flushes_on_shutdown(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    """``engramdb serve`` with ``ENGRAMDB_EXTRACT_SESSIONS``: items a remote client appends
    are extracted by the server; a graceful shutdown flushes what no trigger reached yet."""
    fake.answer({"memories": [_fact("Ada plays the cello")], "triples": []})
    server = start_live_server(
        str(tmp_path / "data"),
        log_path=tmp_path / "server.log",
        embedder="hashing",
        llm="openai:fake-model",
        llm_base_url=fake.base_url,
        extract_sessions="true",
        extract_every_turns=100,  # only the shutdown flush extracts
        extract_idle_seconds=3600,
    )
    try:
        with Client(server.url, server.register("served")) as c:
            c.add_items("chat", _say("I play the cello"))
            namespace = c.stats()["namespace"]
    finally:
        # uvicorn re-raises the signal after its graceful shutdown: -SIGTERM is a clean exit
        assert server.stop() in (0, -signal.SIGTERM), server.log()
    with Memory(tmp_path / "data", embedder="hashing") as mem:
        (found,) = mem.list(namespace=namespace).items
        assert found.content == "Ada plays the cello" and found.session_id == "chat"
        assert [e.action for e in mem.events(found.id, namespace=namespace)] == ["add"]
