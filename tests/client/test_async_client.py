"""engramdb.AsyncClient and RemoteSession end to end against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from engramdb import (
    AsyncClient,
    AuthenticationError,
    ForgetResult,
    Hit,
    InvalidInputError,
    MemoryRecord,
    NotFoundError,
    RateLimitError,
    RemoteSession,
    SessionInfo,
    SessionSettings,
    Triple,
)
from engramdb.client import CreatedKey, Registration
from engramdb.memory import content_hash
from tests.live_server import LiveServer

pytestmark = pytest.mark.anyio


async def test_memories_round_trip(aclient: AsyncClient) -> None:
    m = await aclient.remember(
        "Grace wrote the first compiler",
        user_id="grace",
        tags=["history"],
        metadata={"year": 1952},
        occurred_at="1952-05-01T00:00:00Z",
    )
    assert isinstance(m, MemoryRecord) and m.content_hash == content_hash(m.content)
    assert m.occurred_at == datetime(1952, 5, 1, tzinfo=UTC)
    assert await aclient.get(m.id) == m
    more = await aclient.remember_many(
        [{"content": "Grace worked on COBOL", "user_id": "grace"}, {"content": "unrelated"}]
    )
    assert len(more) == 2
    hits = await aclient.recall("compiler", filters={"user_id": "grace"}, explain=True)
    assert isinstance(hits[0], Hit) and hits[0].memory.id == m.id and hits[0].explain
    page = await aclient.list({"user_id": "grace"}, limit=1)
    assert [r.id for r in page.items] == [m.id] and page.next_cursor
    updated = await aclient.update(m.id, tags=["history", "computing"])
    assert updated.version == 2 and updated.tags == ("history", "computing")
    assert [v.version for v in await aclient.history(m.id)] == [1]
    assert await aclient.forget(m.id) == ForgetResult([m.id], False)
    with pytest.raises(NotFoundError):
        await aclient.get(m.id)
    stats = await aclient.stats()
    assert stats["memories"] == 2 and stats["usage"]["recalls_today"] == 1


async def test_triples_sessions_and_keys(live_server: LiveServer, aclient: AsyncClient) -> None:
    fact = await aclient.learn("Grace", "born in", "New York", valid_from="1906-12-09")
    assert isinstance(fact, Triple) and fact.namespace == (await aclient.stats())["namespace"]
    assert [t.id for t in await aclient.facts("Grace")] == [fact.id]
    assert [t.id for t in await aclient.neighbors("New York")] == [fact.id]

    assert await aclient.add_items("chat", [{"role": "user", "content": "hi"}]) == 1
    assert await aclient.get_items("chat") == [{"role": "user", "content": "hi"}]
    info = await aclient.session_info("chat")
    assert isinstance(info, SessionInfo) and info.item_count == 1
    assert [s.session_id for s in (await aclient.list_sessions()).items] == ["chat"]
    assert await aclient.pop_item("chat") == {"role": "user", "content": "hi"}
    assert await aclient.clear_session("chat") == 0
    assert await aclient.delete_session("chat") is True

    made = await aclient.create_key("second")
    assert isinstance(made, CreatedKey)
    assert made.key.id in {k.id for k in await aclient.list_keys()}
    assert (await aclient.revoke_key(made.key.id)).revoked_at is not None
    async with AsyncClient(live_server.url, made.api_key) as revoked:
        with pytest.raises(AuthenticationError):
            await revoked.stats()
    assert (await aclient.health())["status"] == "healthy"

    reg = await AsyncClient.register(live_server.url, "async-agent")
    assert isinstance(reg, Registration) and reg.namespace != fact.namespace


async def test_concurrent_calls_share_one_client(aclient: AsyncClient) -> None:
    async def writer(w: int) -> None:
        for n in range(10):
            await aclient.add_items("busy", [{"w": w, "n": n}])

    await asyncio.gather(*(writer(w) for w in range(8)))
    got = await aclient.get_items("busy")
    assert len(got) == 80
    for w in range(8):
        assert [i["n"] for i in got if i["w"] == w] == list(range(10))


async def test_async_errors(live_server: LiveServer, admin_key_client: AsyncClient) -> None:
    made = await admin_key_client.create_key("quota", limits={"recalls_per_day": 0})
    async with AsyncClient(live_server.url, made.api_key) as c:
        with pytest.raises(RateLimitError) as caught:
            await c.recall("anything")
        assert caught.value.code == "quota_exceeded" and caught.value.retry_after
        with pytest.raises(InvalidInputError, match="importance"):
            await c.remember("x", importance=7)
        with pytest.raises(NotFoundError):
            await c.history("mem_nope")


@pytest.fixture
async def admin_key_client(live_server: LiveServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(live_server.url, live_server.admin_key) as c:
        yield c


def test_one_async_client_serves_several_event_loops(live_server: LiveServer, key: str) -> None:
    """``asyncio.run`` per call (as sync code driving an async API does): each loop gets its
    own connection pool, closed when that loop shuts down."""
    client = AsyncClient(live_server.url, key)
    opened: list[httpx.AsyncClient] = []
    new_pool = client._new_pool
    client._new_pool = lambda: opened.append(new_pool()) or opened[-1]  # type: ignore[method-assign]
    session = RemoteSession("loops", client)
    for n in range(3):
        asyncio.run(session.add_items([{"n": n}]))
    assert asyncio.run(session.get_items()) == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert len(opened) == 4 and all(pool.is_closed for pool in opened)
    assert client._pools == {}  # every loop's pool was closed with its loop

    loop = asyncio.new_event_loop()
    try:  # a loop kept open (Runner.run_sync does that) keeps its pool between calls
        assert loop.run_until_complete(session.pop_item()) == {"n": 2}
        pool = next(iter(client._pools.values()))[0]
        assert loop.run_until_complete(session.get_items(limit=1)) == [{"n": 1}]
        assert next(iter(client._pools.values()))[0] is pool and not pool.is_closed
        loop.run_until_complete(client.aclose())
        assert pool.is_closed
    finally:
        loop.close()


def test_remote_session_options(live_server: LiveServer, key: str) -> None:
    from agents.memory import SessionSettings as SDKSessionSettings

    by_url = RemoteSession("opts", live_server.url, api_key=key, session_settings={"limit": 2})
    assert isinstance(by_url.session_settings, SDKSessionSettings)
    assert by_url.session_settings.limit == 2

    async def use() -> None:
        await by_url.add_items([{"n": n} for n in range(4)])
        assert await by_url.get_items() == [{"n": 2}, {"n": 3}]
        assert await by_url.get_items(limit=3) == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert await by_url.get_items(limit=0) == []
        info = await by_url.info()
        assert info is not None and info.item_count == 4
        await by_url.aclose()

    asyncio.run(use())
    local = RemoteSession("opts", AsyncClient(live_server.url, key), session_settings=None)
    assert local.session_settings.limit is None  # the default SessionSettings()
    assert asyncio.run(local.get_items()) == [{"n": n} for n in range(4)]
    ours = RemoteSession(
        "x", AsyncClient(live_server.url, key), session_settings=SessionSettings(1)
    )
    assert ours.session_settings == SessionSettings(1)
    with pytest.raises(InvalidInputError, match="AsyncClient"):
        RemoteSession("x", object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="api_key"):
        RemoteSession("x", AsyncClient(live_server.url, key), api_key=key)
    with pytest.raises(InvalidInputError, match="session_id"):
        RemoteSession("", live_server.url)
