"""Issue 10 items 1 and 4 through the Python clients against the live server."""

from __future__ import annotations

import httpx
import pytest

from engramdb import AsyncClient, Client, InvalidInputError
from tests.live_server import LiveServer


def test_item_01_client_recall_takes_an_exact_tags_filter(client: Client) -> None:
    for session in ("a", "b"):
        for n in range(3):
            client.remember(f"{session} said thing {n}", tags=[f"session:{session}"])
    own = sorted(f"a said thing {n}" for n in range(3))
    assert sorted(h.memory.content for h in client.recall("session:a", limit=50)) == own
    assert sorted(h.memory.content for h in client.recall("", tags=["session:a"])) == own
    got = client.recall("said thing", tags=["session:b"], filters={"tags": []}, limit=50)
    assert got and {h.memory.content[0] for h in got} == {"b"}
    with pytest.raises(InvalidInputError):
        client.recall("x", tags="session:a")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_item_01_async_client_recall_takes_tags(aclient: AsyncClient) -> None:
    await aclient.remember("alpha item", tags=["session:a"])
    await aclient.remember("beta item", tags=["session:b"])
    hits = await aclient.recall("item", tags=["session:b"], mode="text")
    assert [h.memory.content for h in hits] == ["beta item"]


def test_item_04_live_server_rejects_another_namespaces_cursor(
    live_server: LiveServer, client: Client
) -> None:
    for n in range(3):
        client.remember(f"note {n}")
    cursor = client.list(limit=1).next_cursor
    assert cursor is not None and len(client.list(cursor=cursor, limit=5).items) == 2
    other = live_server.register("cursor-thief")
    r = httpx.get(
        f"{live_server.url}/v1/memories",
        params={"cursor": cursor},
        headers={"X-API-Key": other},
    )
    assert r.status_code == 422 and "cursor" in r.json()["error"]["message"]
