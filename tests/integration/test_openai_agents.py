"""engramdb sessions under the real OpenAI Agents SDK, offline with ``ScriptedModel``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from agents import Agent, Runner, SessionSettings, function_tool, set_tracing_disabled
from agents.memory import Session as SDKSession
from agents.testing import ScriptedModel, assistant_message, function_call

from engramdb.integrations.openai_agents import EngramSession

ROOT = Path(__file__).resolve().parents[2]
set_tracing_disabled(True)


def texts(model_input: Any) -> list[str]:
    """Every text the model was shown, from user and assistant messages alike."""
    out: list[str] = []
    for item in model_input if isinstance(model_input, list) else [model_input]:
        if isinstance(item, str):
            out.append(item)
            continue
        content = item.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out += [part.get("text", "") for part in content if isinstance(part, dict)]
        if item.get("type") == "function_call_output":
            out.append(str(item.get("output")))
    return out


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def make_agent(model: ScriptedModel) -> Agent[Any]:
    return Agent(name="assistant", instructions="Be brief.", model=model, tools=[get_weather])


def test_engram_session_satisfies_the_sdk_protocol(tmp_path: Path) -> None:
    session = EngramSession("proto", tmp_path)
    assert isinstance(session, SDKSession)
    assert isinstance(session.session_settings, SessionSettings)


def test_multi_turn_run_with_tool_call_and_new_process(tmp_path: Path) -> None:
    session = EngramSession("conv", tmp_path)
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
    # run_sync drives its own event loop: a third turn, outside any loop
    r3 = Runner.run_sync(agent, "Which city did I ask about?", session=session)
    assert r3.final_output == "You asked about Paris."

    seen_second = texts(model.calls[1].input)
    assert "Hi, my name is Ada." in seen_second and "Nice to meet you, Ada." in seen_second
    seen_after_tool = model.calls[2].input
    assert any(i.get("type") == "function_call_output" for i in seen_after_tool)
    assert "sunny in Paris" in texts(seen_after_tool)
    assert "It is sunny in Paris." in texts(model.calls[3].input)

    stored = asyncio.run(session.get_items())
    kinds = [i.get("type", i.get("role")) for i in stored]
    assert "function_call" in kinds and "function_call_output" in kinds

    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("agents_child.py")), str(tmp_path), "conv"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["final"] == "Your name is Ada."
    seen = texts(result["seen"])
    assert "Hi, my name is Ada." in seen and "You asked about Paris." in seen
    assert seen[-1] == "What is my name?"
    assert len(asyncio.run(session.get_items())) == len(stored) + 2


def test_run_streamed_persists_the_turn(tmp_path: Path) -> None:
    session = EngramSession("streamed", tmp_path)
    model = ScriptedModel(
        [[assistant_message("First answer.")], [assistant_message("Second answer.")]]
    )
    agent = make_agent(model)

    async def turns() -> None:
        for question in ("First question?", "Second question?"):
            result = Runner.run_streamed(agent, question, session=session)
            async for _ in result.stream_events():
                pass

    asyncio.run(turns())
    assert "First answer." in texts(model.calls[1].input)
    stored = texts(asyncio.run(session.get_items()))
    assert stored == ["First question?", "First answer.", "Second question?", "Second answer."]


def test_session_settings_limit_reaches_the_model(tmp_path: Path) -> None:
    session = EngramSession("limited", tmp_path, session_settings={"limit": 2})
    assert asyncio.run(session.get_items()) == []
    asyncio.run(session.add_items([{"role": "user", "content": f"m{n}"} for n in range(5)]))
    assert texts(asyncio.run(session.get_items())) == ["m3", "m4"]
    assert texts(asyncio.run(session.get_items(limit=3))) == ["m2", "m3", "m4"]
    assert asyncio.run(session.get_items(limit=0)) == []
    model = ScriptedModel([[assistant_message("ok")]])
    Runner.run_sync(make_agent(model), "new", session=session)
    assert texts(model.calls[0].input) == ["m3", "m4", "new"]


RESPONSES_ITEMS: list[dict[str, Any]] = [
    {"role": "user", "content": "plain string message"},
    {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "look at this"},
            {
                "type": "input_image",
                "image_url": "data:image/png;base64,iVBORw0KGgo=",
                "detail": "low",
            },
        ],
    },
    {"type": "message", "role": "system", "content": "system text"},
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [
            {
                "type": "output_text",
                "text": "answer",
                "annotations": [
                    {
                        "type": "url_citation",
                        "url": "https://example.com",
                        "title": "t",
                        "start_index": 0,
                        "end_index": 6,
                    }
                ],
                "logprobs": [],
            },
        ],
    },
    {
        "id": "fc_1",
        "type": "function_call",
        "call_id": "call_1",
        "name": "lookup",
        "arguments": '{"q": "ünï"}',
        "status": "completed",
    },
    {"type": "function_call_output", "call_id": "call_1", "output": '{"result": [1, 2]}'},
    {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "thinking"}],
        "encrypted_content": "gAAAAAB" + "Q" * 4096,
    },
    {"id": "cmp_1", "type": "compaction", "encrypted_content": "opaque-compacted-history"},
    {
        "type": "file_search_call",
        "id": "fs_1",
        "queries": ["x"],
        "status": "completed",
        "results": None,
    },
    {"type": "some_future_item", "unknown_key": {"nested": [None, True, 1.5]}, "x-extra": "kept"},
]


def test_every_responses_item_shape_round_trips_unchanged(tmp_path: Path) -> None:
    session = EngramSession("shapes", tmp_path)
    asyncio.run(session.add_items(RESPONSES_ITEMS))  # type: ignore[arg-type]
    got = asyncio.run(session.get_items())
    assert got == RESPONSES_ITEMS
    assert [list(g) for g in got] == [list(i) for i in RESPONSES_ITEMS]  # no fields added
    assert asyncio.run(session.pop_item()) == RESPONSES_ITEMS[-1]
