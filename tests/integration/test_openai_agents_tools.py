"""Memory tools and dynamic instructions for the OpenAI Agents SDK (issue 12, part 3), with
the real SDK and its ``ScriptedModel``, over a local Memory and over a live server."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, FunctionTool, Runner, set_tracing_disabled
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call

from engramdb import AsyncClient, AsyncMemory, Client, Memory
from engramdb.errors import InvalidInputError
from engramdb.integrations.openai_agents import (
    EngramSession,
    memory_instructions,
    memory_tools,
)
from tests.live_server import LiveServer

set_tracing_disabled(True)


def tool_outputs(call: ModelCall) -> list[str]:
    return [
        str(i["output"])
        for i in call.input
        if isinstance(i, dict) and i.get("type") == "function_call_output"
    ]


def recall_answer(call: ModelCall) -> ModelStep:
    """A scripted answer that repeats what the recall tool returned (so the run's output
    reflects the tool result, not a string fixed in the script)."""
    return ModelStep(output=[assistant_message(tool_outputs(call)[-1])])


def remember_then_recall(memory: Any, user_id: str) -> tuple[str, ScriptedModel]:
    model = ScriptedModel(
        [
            [
                function_call(
                    "remember", {"content": "Ada drinks green tea", "tags": ["pref"]}, call_id="r1"
                )
            ],
            [function_call("recall", {"query": "what does Ada drink", "limit": 3}, call_id="r2")],
            ModelStep.respond(recall_answer),
        ]
    )
    agent = Agent(name="a", model=model, tools=memory_tools(memory, user_id=user_id))
    result = Runner.run_sync(agent, "Remember that I drink green tea, then check.")
    return str(result.final_output), model


def test_issue12_tools_remember_and_recall_local(tmp_path: Path) -> None:
    memory = Memory(tmp_path, embedder="hashing")
    tools = memory_tools(memory, user_id="ada")
    assert [t.name for t in tools] == ["remember", "recall", "forget"]
    assert all(isinstance(t, FunctionTool) and t.description for t in tools)
    schema = tools[0].params_json_schema
    assert set(schema["properties"]) == {"content", "tags"}

    output, model = remember_then_recall(memory, "ada")
    assert "Ada drinks green tea" in output
    assert tool_outputs(model.calls[1])[0].startswith("Remembered [")
    stored = memory.list(filters={"user_id": "ada"}).items
    assert [(m.content, m.user_id, m.tags) for m in stored] == [
        ("Ada drinks green tea", "ada", ("pref",))
    ]
    # another user's tools recall nothing of Ada's
    other, _ = remember_then_recall(memory, "bob")
    assert len(memory.list(filters={"user_id": "bob"}).items) == 1
    assert other.count("[") == 1  # bob sees his own memory only


def test_issue12_tools_forget_is_scoped(tmp_path: Path) -> None:
    memory = Memory(tmp_path, embedder="hashing")
    ada = memory.remember("Ada lives in Paris", user_id="ada")
    bob = memory.remember("Bob lives in Rome", user_id="bob")
    model = ScriptedModel(
        [
            [function_call("forget", {"memory_id": bob.id}, call_id="c1")],
            [function_call("forget", {"memory_id": ada.id}, call_id="c2")],
            [assistant_message("done")],
        ]
    )
    agent = Agent(name="a", model=model, tools=memory_tools(memory, user_id="ada"))
    assert Runner.run_sync(agent, "forget").final_output == "done"
    first, second = tool_outputs(model.calls[1])[0], tool_outputs(model.calls[2])[-1]
    assert "nothing was deleted" in first
    assert second.startswith(f"Forgot [{ada.id}]")
    assert [m.id for m in memory.list().items] == [bob.id]  # Bob's memory untouched


def test_issue12_tools_bad_arguments_are_tool_errors(tmp_path: Path) -> None:
    memory = Memory(tmp_path, embedder="hashing")
    model = ScriptedModel(
        [
            [function_call("recall", {"query": "x", "limit": 5000}, call_id="c1")],
            [assistant_message("ok")],
        ]
    )
    agent = Agent(name="a", model=model, tools=memory_tools(memory, user_id="ada"))
    assert Runner.run_sync(agent, "go").final_output == "ok"
    assert "limit must be between 1 and 50" in tool_outputs(model.calls[1])[0]
    with pytest.raises(InvalidInputError, match="Memory, AsyncMemory, Client or AsyncClient"):
        memory_tools("not a memory")  # type: ignore[arg-type]


def test_issue12_tools_async_memory_and_remote(tmp_path: Path, live_server: LiveServer) -> None:
    amemory = AsyncMemory(tmp_path, embedder="hashing")
    output, _ = remember_then_recall(amemory, "ada")
    assert "Ada drinks green tea" in output
    key = live_server.register("agents-tools")
    with Client(live_server.url, key) as client:
        output, _ = remember_then_recall(client, "ada")
        assert "Ada drinks green tea" in output
        assert [m.user_id for m in client.list().items] == ["ada"]
    aclient = AsyncClient(live_server.url, key)
    output, _ = remember_then_recall(aclient, "ada")  # identical text: stored once
    assert "Ada drinks green tea" in output
    with Client(live_server.url, key) as client:
        assert len(client.list().items) == 1
        with pytest.raises(InvalidInputError, match="namespace"):
            memory_tools(client, namespace="elsewhere")


def test_issue12_instructions_carry_memories_across_sessions(tmp_path: Path) -> None:
    memory = Memory(tmp_path, embedder="hashing")
    memory.remember("Ada's favourite colour is teal", user_id="ada")
    memory.remember("Bob's favourite colour is red", user_id="bob")
    model = ScriptedModel([[assistant_message("Teal.")], [assistant_message("Hello.")]])
    agent = Agent(
        name="a",
        model=model,
        instructions=memory_instructions("Be brief.", memory, user_id="ada", budget_tokens=200),
    )
    assert Runner.run_sync(agent, "What is my favourite colour?").final_output == "Teal."
    seen = model.calls[0].system_instructions or ""
    assert seen.startswith("Be brief.")
    assert "Ada's favourite colour is teal" in seen
    assert "Bob" not in seen  # only the scope's memories
    # computed again on each run: a fact stored since shows up in the next run
    # (it must share something with the query: recall leaves out memories nothing matched)
    memory.remember("Ada now lives in Lisbon", user_id="ada")
    Runner.run_sync(agent, "Where do I live now?")
    assert "Ada now lives in Lisbon" in (model.calls[1].system_instructions or "")


def test_issue12_instructions_wrap_a_function_and_a_client(
    tmp_path: Path, live_server: LiveServer
) -> None:
    key = live_server.register("agents-instr")
    with Client(live_server.url, key) as client:
        client.remember("Ada is allergic to peanuts", user_id="ada")

    async def base(ctx: Any, agent: Agent[Any]) -> str:
        return f"You are {agent.name}."

    model = ScriptedModel([[assistant_message("Noted.")]])
    agent = Agent(
        name="chef",
        model=model,
        instructions=memory_instructions(base, AsyncClient(live_server.url, key), user_id="ada"),
    )
    asyncio.run(Runner.run(agent, "Any allergies I should know about? peanuts?"))
    seen = model.calls[0].system_instructions or ""
    assert seen.startswith("You are chef.") and "allergic to peanuts" in seen
    with pytest.raises(InvalidInputError, match="budget_tokens"):
        memory_instructions("x", Memory(tmp_path, embedder="hashing"), budget_tokens=0)


def test_issue12_tools_json_schema_is_strict(tmp_path: Path) -> None:
    tools = memory_tools(Memory(tmp_path, embedder="hashing"), agent_id="coder")
    for tool in tools:
        assert tool.params_json_schema.get("additionalProperties") is False, json.dumps(
            tool.params_json_schema
        )


ROOT = Path(__file__).resolve().parents[2]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def readme_section(heading: str, parent: str) -> str:
    text = (ROOT / "README.md").read_text()
    part = text[text.index(f"\n{parent}\n") :]
    part = part[part.index(f"\n{heading}\n") + len(heading) + 2 :]
    return re.split(r"\n#{2,3} ", part)[0]


def run_snippet_agent(agent: Agent[Any]) -> ScriptedModel:
    """Give the snippet's agent a scripted model, store a fact with its tools, then check a
    new run's instructions carry it."""
    model = ScriptedModel(
        [
            [function_call("remember", {"content": "Ada likes jazz"}, call_id="s1")],
            [assistant_message("Saved.")],
            [assistant_message("Jazz.")],
        ]
    )
    agent.model = model
    Runner.run_sync(agent, "I like jazz.")
    Runner.run_sync(agent, "What music do I like?")
    assert "Ada likes jazz" in (model.calls[2].system_instructions or "")
    return model


def test_issue12_readme_openai_agents_snippet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = python_blocks(readme_section("### OpenAI Agents SDK", "## Integrations"))
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {}
    exec(blocks[0], scope)
    run_snippet_agent(scope["agent"])
    assert (tmp_path / "agent-memory").is_dir()


def test_issue12_docs_openai_agents_snippets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live_server: LiveServer
) -> None:
    blocks = python_blocks((ROOT / "docs/integrations/openai-agents.md").read_text())
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    key = live_server.register("docs-snippets")
    scope: dict[str, Any] = {"api_key": key}
    for block in blocks:
        exec(block.replace("http://127.0.0.1:8765", live_server.url), scope)
    run_snippet_agent(scope["agent"])
    # the remote tools work against the live server
    remote = Agent(name="r", model=ScriptedModel([]), tools=scope["tools"])
    remote.model = ScriptedModel(
        [
            [function_call("remember", {"content": "Ada plays chess"}, call_id="r1")],
            [assistant_message("ok")],
        ]
    )
    Runner.run_sync(remote, "I play chess.")
    assert [m.content for m in scope["client"].list().items] == ["Ada plays chess"]
    # the compaction session wraps an engramdb session
    assert isinstance(scope["session"].underlying_session, EngramSession)


def test_issue12_example_openai_agents_chat(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples/openai_agents_chat.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "[chat-1] assistant: Noted: green tea, no sugar.",
        "[chat-2] assistant: You drink green tea, no sugar.",
    ]
    # the fact is a memory of the user, and each conversation its own session
    memory = Memory(tmp_path, embedder="hashing")
    assert [(m.content, m.user_id) for m in memory.list().items] == [
        ("Ada drinks green tea, no sugar", "ada")
    ]
    assert len(asyncio.run(EngramSession("chat-2", tmp_path).get_items())) == 2


def test_issue12_tools_server_down_is_a_tool_error() -> None:
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", "key", retries=0) as client:
        model = ScriptedModel(
            [
                [function_call("recall", {"query": "tea"}, call_id="d1")],
                [assistant_message("Memory is unavailable.")],
            ]
        )
        agent = Agent(name="a", model=model, tools=memory_tools(client, user_id="ada"))
        assert Runner.run_sync(agent, "tea?").final_output == "Memory is unavailable."
        assert tool_outputs(model.calls[1])[0].startswith("The memory tool failed:")


def test_issue12_tools_missing_extra_names_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "agents", None)  # import agents -> ImportError
    memory = Memory(tmp_path, embedder="hashing")
    for call in (
        lambda: memory_tools(memory),
        lambda: memory_instructions("x", memory),
        lambda: EngramSession("s", tmp_path),
    ):
        with pytest.raises(InvalidInputError, match=r"pip install 'engramdb\[agents\]'"):
            call()


def test_issue12_example_coding_agent_reads_memory_md_at_start(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples/coding_agent.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "[app:1] coder: Noted."
    assert lines[1] == "consolidated: 1 trace(s), MEMORY.md consolidated (v1)"
    assert lines[2].startswith("MEMORY.md file: ")
    path = Path(lines[2].removeprefix("MEMORY.md file: "))
    assert path.is_relative_to(tmp_path) and "uv run pytest -q" in path.read_text()
    # the second session's agent knew the command only through MEMORY.md
    assert lines[3] == "[app:2] coder: Running `uv run pytest -q` first."
    memory = Memory(tmp_path, embedder="hashing")
    traces = memory.list({"tags": ["trace"]}).items
    assert [t.metadata["session_id"] for t in traces] == ["app:1"]
