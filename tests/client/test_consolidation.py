"""Issue 13 part 4: the consolidation calls of Client and AsyncClient against a live server
(which has no model: runs are dry, reads answer what exists)."""

from __future__ import annotations

import pytest

from engramdb import AsyncClient, Client, ConflictError, InvalidInputError

SCOPE = "/home/dev/app"


def test_issue13_client_consolidation_calls(client: Client) -> None:
    client.add_items("app:1", [{"role": "user", "content": "tests run with uv run pytest"}])
    client.remember("The CI runs on every push")
    dry = client.consolidate(SCOPE, dry_run=True, idle_seconds=0)
    assert list(dry["planned"]) == ["app:1"] and dry["estimated_input_tokens"] > 0
    with pytest.raises(ConflictError, match="no model"):
        client.consolidate(SCOPE)
    settings = client.configure_scope(SCOPE, enabled=False, session_prefix="app:")
    assert settings["enabled"] is False and settings["session_prefix"] == "app:"
    status = client.consolidation_status(SCOPE)
    assert [s["scope"] for s in status["scopes"]] == [SCOPE] and not status["scopes"][0]["enabled"]
    assert client.memory_md(SCOPE) is None
    assert "No memory traces yet" in client.memory_summary(SCOPE)
    assert client.traces(SCOPE) == []
    assert client.delete_trace(SCOPE, "app:1") is False
    assert client.reset_memory_md(SCOPE) is False
    block = client.context("CI push", scope=SCOPE)
    assert "The CI runs on every push" in block.text and len(block.ids) == 1
    with pytest.raises(InvalidInputError):
        client.memory_md("bad\nscope")


@pytest.mark.anyio
async def test_issue13_async_client_consolidation_calls(aclient: AsyncClient) -> None:
    await aclient.remember("Deploys go out on Tuesdays")
    block = await aclient.context("deploys", scope=SCOPE)
    assert "Tuesdays" in block.text
    assert await aclient.memory_md(SCOPE) is None
    status = await aclient.consolidation_status()
    assert status["spent_today"]["llm_calls"] == 0
