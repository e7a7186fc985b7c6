"""Issue 15 item 2 through the client: ``Client.recall(as_of=...)`` against the live server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engramdb import AsyncClient, Client
from engramdb.errors import InvalidInputError


def test_issue15_temporal_client_recall_as_of(client: Client) -> None:
    client.remember("went to Paris with Ada", occurred_at="2021-03-01T00:00:00Z")
    client.remember("went to Paris for work", occurred_at="2026-05-01T00:00:00Z")
    hits = client.recall(
        "went to Paris last year", mode="text", explain=True, as_of=datetime(2022, 6, 1, tzinfo=UTC)
    )
    assert hits[0].memory.content == "went to Paris with Ada"
    assert hits[0].explain is not None
    assert hits[0].explain["time"]["since"] == "2021-01-01T00:00:00Z"
    hits = client.recall("went to Paris last year", mode="text", as_of="2027-02-01T00:00:00Z")
    assert hits[0].memory.content == "went to Paris for work"
    with pytest.raises(InvalidInputError, match="as_of"):
        client.recall("anything", as_of="last Tuesday")


@pytest.mark.anyio
async def test_issue15_temporal_async_client_recall_as_of(aclient: AsyncClient) -> None:
    await aclient.remember("went to Paris with Ada", occurred_at="2021-03-01T00:00:00Z")
    await aclient.remember("went to Paris for work", occurred_at="2026-05-01T00:00:00Z")
    hits = await aclient.recall("went to Paris last year", mode="text", as_of="2022-06-01")
    assert hits[0].memory.content == "went to Paris with Ada"
