"""Client and AsyncClient forget faces (issue 10, items 9 and 11), against a live server."""

from __future__ import annotations

import pytest

from engramdb import AsyncClient, Client, InvalidInputError, NotFoundError
from engramdb.memory import ForgetResult


def test_item_09_client_forgets_facts(client: Client) -> None:
    tea = client.learn("ann", "likes", "tea")
    chess = client.learn("ann", "likes", "chess")
    client.learn("bob", "likes", "tea")
    assert client.forget_fact(tea.id) == ForgetResult([tea.id], False)
    with pytest.raises(NotFoundError):
        client.forget_fact(tea.id)
    assert [f.id for f in client.facts("ann")] == [chess.id]
    with pytest.raises(InvalidInputError, match="pattern"):
        client.forget_facts()
    dry = client.forget_facts(object="tea", dry_run=True)
    assert dry.dry_run and dry.count == 1
    assert client.forget_facts("ann").ids == [chess.id]
    assert client.forget_facts(object="tea").count == 1
    assert client.facts(include_history=True) == []
    assert client.list({"tags": ["fact"]}).items == []


def test_item_11_client_time_range_is_not_a_scope(client: Client) -> None:
    client.remember_many(
        [{"content": f"note {n}", "occurred_at": f"2024-01-0{n + 1}T00:00:00Z"} for n in range(3)]
    )
    with pytest.raises(InvalidInputError, match="scope"):
        client.forget(filters={"since": "2000-01-01T00:00:00Z"})
    with pytest.raises(InvalidInputError):
        client.forget()
    with pytest.raises(InvalidInputError):
        client.forget("mem_x", all=True)
    assert client.stats()["memories"] == 3
    window = {"until": "2024-01-02T12:00:00Z"}
    assert client.forget(filters=window, all=True, dry_run=True).count == 2
    assert client.forget(filters=window, all=True).count == 2
    assert client.forget(all=True).count == 1
    assert client.stats()["memories"] == 0


@pytest.mark.anyio
async def test_item_09_async_client_forgets_facts(aclient: AsyncClient) -> None:
    fact = await aclient.learn("ann", "likes", "tea")
    await aclient.learn("ann", "likes", "chess")
    assert (await aclient.forget_fact(fact.id)).ids == [fact.id]
    assert (await aclient.forget_facts("ann", dry_run=True)).count == 1
    assert (await aclient.forget_facts("ann")).count == 1
    with pytest.raises(InvalidInputError, match="scope"):
        await aclient.forget(filters={"until": "2100-01-01T00:00:00Z"})
    assert (await aclient.forget(all=True)).dry_run is False
