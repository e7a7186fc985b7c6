"""Issue 10 item 18: engramdb's sessions behave as the OpenAI Agents SDK's own sessions where
the SDK is explicit: the limit it passes (2**31 - 1), default and unknown session settings,
and items JSON cannot hold. Checked side by side with the SDK's ``SQLiteSession``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from agents import SQLiteSession
from agents.memory import SessionSettings

from engramdb import RemoteSession
from engramdb.integrations.openai_agents import EngramSession
from tests.live_server import LiveServer

SDK_LIMIT = 2**31 - 1
NOT_JSON: list[Any] = [{"a": {1, 2}}, {"when": object()}]


def test_item_18_remote_session_takes_the_sdk_limit(live_server: LiveServer) -> None:
    async def run() -> None:
        session = RemoteSession("sdk-limit", live_server.url, api_key=live_server.register())
        try:
            assert await session.get_items(SDK_LIMIT) == []  # a session never written to
            await session.add_items([{"n": n} for n in range(3)])
            assert await session.get_items(SDK_LIMIT) == [{"n": 0}, {"n": 1}, {"n": 2}]
            assert await session.get_items(10**30) == [{"n": 0}, {"n": 1}, {"n": 2}]
            assert await session.get_items(2) == [{"n": 1}, {"n": 2}]
        finally:
            await session.aclose()

    asyncio.run(run())


def test_item_18_settings_default_and_unknown_keys_like_the_sdk(
    live_server: LiveServer, tmp_path: Path
) -> None:
    sdk = SQLiteSession("x")
    remote = RemoteSession("x", live_server.url, api_key="egm_unused")
    local = EngramSession("x", tmp_path)
    for session in (remote, local):
        assert session.session_settings == sdk.session_settings == SessionSettings()
    bad = {"limit": 3, "colour": "red"}
    with pytest.raises(TypeError) as from_sdk:
        SQLiteSession("x", session_settings=bad)
    for make in (
        lambda: RemoteSession("x", live_server.url, api_key="egm_unused", session_settings=bad),
        lambda: EngramSession("x", tmp_path, session_settings=bad),
    ):
        with pytest.raises(TypeError) as ours:
            make()
        assert str(ours.value) == str(from_sdk.value)
    assert RemoteSession("x", remote.client, session_settings={"limit": 3}).session_settings == (
        SessionSettings(limit=3)
    )
    asyncio.run(remote.aclose())


def test_item_18_an_item_json_cannot_hold_raises_type_error_like_the_sdk(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async def run() -> None:
        sdk = SQLiteSession("types")
        remote = RemoteSession("types", live_server.url, api_key=live_server.register())
        local = EngramSession("types", tmp_path)
        try:
            for item in NOT_JSON:
                for session in (sdk, remote, local):
                    with pytest.raises(TypeError):
                        await session.add_items([{"ok": 1}, item])
            for session in (sdk, remote, local):
                assert await session.get_items() == [], session  # the batch was refused whole
        finally:
            await remote.aclose()

    asyncio.run(run())
