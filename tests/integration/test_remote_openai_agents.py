"""RemoteSession under the real OpenAI Agents SDK, over a live engramdb server (offline,
``ScriptedModel``)."""

from __future__ import annotations

import asyncio
from typing import Any

from agents import Runner, SessionSettings, set_tracing_disabled
from agents.memory import Session as SDKSession
from agents.testing import ScriptedModel, assistant_message, function_call

from engramdb import AsyncClient, Client, RemoteSession
from tests.integration.test_openai_agents import RESPONSES_ITEMS, make_agent, texts
from tests.live_server import LiveServer

set_tracing_disabled(True)


def test_remote_session_satisfies_the_sdk_protocol(live_server: LiveServer) -> None:
    session = RemoteSession("proto", live_server.url, api_key=live_server.register())
    assert isinstance(session, SDKSession)
    assert session.session_id == "proto"
    # the SDK's default, as its own sessions have it
    assert session.session_settings == SessionSettings()
    with_settings = RemoteSession("proto", session.client, session_settings={"limit": 3})
    assert isinstance(with_settings.session_settings, SessionSettings)


def test_multi_turn_run_persists_through_the_server(live_server: LiveServer) -> None:
    key = live_server.register("agents")
    session = RemoteSession("conv", live_server.url, api_key=key)
    model = ScriptedModel(
        [
            [assistant_message("Nice to meet you, Ada.")],
            [function_call("get_weather", {"city": "Paris"}, call_id="call-1")],
            [assistant_message("It is sunny in Paris.")],
            [assistant_message("You asked about Paris.")],
        ]
    )
    agent = make_agent(model)

    async def async_turns() -> None:
        r1 = await Runner.run(agent, "Hi, my name is Ada.", session=session)
        assert r1.final_output == "Nice to meet you, Ada."
        r2 = await Runner.run(agent, "Weather in Paris?", session=session)
        assert r2.final_output == "It is sunny in Paris."

    asyncio.run(async_turns())
    # run_sync drives its own event loop: the same session keeps working on it
    r3 = Runner.run_sync(agent, "Which city did I ask about?", session=session)
    assert r3.final_output == "You asked about Paris."

    seen_second = texts(model.calls[1].input)
    assert "Hi, my name is Ada." in seen_second and "Nice to meet you, Ada." in seen_second
    seen_after_tool = model.calls[2].input
    assert any(i.get("type") == "function_call_output" for i in seen_after_tool)
    assert "sunny in Paris" in texts(seen_after_tool)
    assert "It is sunny in Paris." in texts(model.calls[3].input)

    # a new session object, over a new client, sees the whole history the server kept
    fresh = RemoteSession("conv", AsyncClient(live_server.url, key))
    stored = asyncio.run(fresh.get_items())
    kinds = [i.get("type", i.get("role")) for i in stored]
    assert "function_call" in kinds and "function_call_output" in kinds
    assert texts(stored)[0] == "Hi, my name is Ada." and texts(stored)[-1] == (
        "You asked about Paris."
    )
    with Client(live_server.url, key) as plain:
        assert plain.get_items("conv") == stored

    model2 = ScriptedModel([[assistant_message("Your name is Ada.")]])
    result = Runner.run_sync(make_agent(model2), "What is my name?", session=fresh)
    assert result.final_output == "Your name is Ada."
    seen = texts(model2.calls[0].input)
    assert "Hi, my name is Ada." in seen and "You asked about Paris." in seen
    assert seen[-1] == "What is my name?"
    assert len(asyncio.run(session.get_items())) == len(stored) + 2


def test_streamed_runs_and_settings_limit(live_server: LiveServer) -> None:
    key = live_server.register("agents")
    session = RemoteSession("streamed", live_server.url, api_key=key)
    model = ScriptedModel(
        [[assistant_message("First answer.")], [assistant_message("Second answer.")]]
    )

    async def turns() -> None:
        for question in ("First question?", "Second question?"):
            result = Runner.run_streamed(make_agent(model), question, session=session)
            async for _ in result.stream_events():
                pass

    asyncio.run(turns())
    assert "First answer." in texts(model.calls[1].input)
    stored = texts(asyncio.run(session.get_items()))
    assert stored == ["First question?", "First answer.", "Second question?", "Second answer."]

    limited = RemoteSession("streamed", session.client, session_settings={"limit": 2})
    model2 = ScriptedModel([[assistant_message("ok")]])
    Runner.run_sync(make_agent(model2), "new", session=limited)
    assert texts(model2.calls[0].input) == ["Second question?", "Second answer.", "new"]


def test_every_responses_item_shape_round_trips_unchanged(live_server: LiveServer) -> None:
    session = RemoteSession("shapes", live_server.url, api_key=live_server.register())

    async def round_trip() -> tuple[list[Any], Any]:
        await session.add_items(RESPONSES_ITEMS)  # type: ignore[arg-type]
        got = await session.get_items()
        return got, await session.pop_item()

    got, popped = asyncio.run(round_trip())
    assert got == RESPONSES_ITEMS
    assert [list(g) for g in got] == [list(i) for i in RESPONSES_ITEMS]  # no fields added
    assert popped == RESPONSES_ITEMS[-1]
