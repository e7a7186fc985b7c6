"""The Strands Agents store (engramdb.integrations.strands) under the real ``strands-agents``
package: a scripted Strands model, engramdb embedded and behind a live server."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from strands import Agent
from strands.memory import AddMessagesContext, InvocationTrigger, MemoryManager

from engramdb import Client, Memory, Session
from engramdb.embed import HashingEmbedder
from engramdb.errors import InvalidInputError
from engramdb.integrations.strands import MARKER_KEY, EngramMemoryStore
from engramdb.llm.openai_compat import OpenAICompatibleLLM
from tests.fake_openai import FakeOpenAI
from tests.live_server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "strands_agent.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("strands_agent_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ScriptedModel: Any = _example().ScriptedModel


def _memory(tmp_path: Path, **kwargs: Any) -> Memory:
    return Memory(tmp_path / "data", embedder=HashingEmbedder(256), **kwargs)


def _agent(store: EngramMemoryStore, model: Any) -> Agent:
    return Agent(model=model, memory_manager=MemoryManager(stores=[store]), callback_handler=None)


def _store(memory: Memory | Client, **kwargs: Any) -> EngramMemoryStore:
    kwargs.setdefault("extraction", {"trigger": InvocationTrigger()})
    return EngramMemoryStore(memory, user_id="alice", **kwargs)


def _tool_results(model: Any) -> str:
    """Every toolResult the model was shown, as JSON text."""
    shown = [
        block["toolResult"]
        for call in model.calls
        for message in call["messages"]
        for block in message["content"]
        if "toolResult" in block
    ]
    return json.dumps(shown)


def _two_agents(memory: Memory | Client) -> tuple[Any, Any]:
    """A first agent told two facts (a synchronous call, then ``invoke_async``), then a fresh
    agent (a new store instance) asked about them; returns both scripted models."""
    first_model = ScriptedModel(["Noted, Alice.", "Tea it is."])
    first = _agent(_store(memory), first_model)
    first("My name is Alice and I am a marine biologist.")

    async def second_turn() -> None:
        await first.invoke_async("I drink green tea, never coffee.")
        assert first.memory_manager is not None
        await first.memory_manager.flush()

    asyncio.run(second_turn())
    assert len(first_model.calls) == 2  # no extra model call for extraction

    fresh_model = ScriptedModel(
        [{"tool": "search_memory", "input": {"query": "green tea coffee"}}, "Green tea."]
    )
    fresh = _agent(_store(memory), fresh_model)
    assert str(fresh("What do I drink?")).strip() == "Green tea."
    return first_model, fresh_model


def test_issue12_strands_agent_recalls_across_agents_embedded(tmp_path: Path) -> None:
    memory = _memory(tmp_path)
    _, fresh_model = _two_agents(memory)
    contents = [m.content for m in memory.list(limit=100).items]
    assert "user: I drink green tea, never coffee." in contents
    assert "user: My name is Alice and I am a marine biologist." in contents
    # injection: the fresh agent's first model call already carries the memory
    assert "green tea, never coffee" in json.dumps(fresh_model.calls[0]["messages"])
    # the search_memory tool answered from engramdb's recall, with the memory's id and score
    found = _tool_results(fresh_model)
    assert "green tea, never coffee" in found
    assert "score" in found and "id" in found
    # every stored memory is scoped to the store's user
    assert {m.user_id for m in memory.list(limit=100).items} == {"alice"}


def test_issue12_strands_search_is_scoped_and_hybrid(tmp_path: Path) -> None:
    memory = _memory(tmp_path)
    memory.remember("Bob drinks espresso every morning", user_id="bob")
    alice = _store(memory)
    record_id = asyncio.run(alice.add("Alice drinks green tea", {"source": "test"}))
    entries = asyncio.run(alice.search("what does she drink", {"max_search_results": 5}))
    assert [e.content for e in entries] == ["Alice drinks green tea"]
    meta = entries[0].metadata or {}
    assert meta["id"] == record_id and meta["user_id"] == "alice"
    assert meta["metadata"] == {"source": "test"}
    assert isinstance(meta["score"], float)
    # the limit is honoured
    asyncio.run(alice.add("Alice drinks oolong tea on Sundays"))
    assert len(asyncio.run(alice.search("tea", {"max_search_results": 1}))) == 1


def test_issue12_strands_resent_batch_stored_once(tmp_path: Path) -> None:
    memory = _memory(tmp_path)
    store = _store(memory)
    asyncio.run(store.initialize())
    batch = [
        {"role": "user", "content": [{"text": "ok"}]},
        {"role": "assistant", "content": [{"text": "ok"}]},
    ]
    assert asyncio.run(store.add_messages(batch, AddMessagesContext(sequence_numbers=[0, 1]))) == 2
    # the coordinator re-sends a failed batch with the same numbers, plus what came after
    more = [*batch, {"role": "user", "content": [{"text": "ok"}]}]
    context = AddMessagesContext(sequence_numbers=[0, 1, 2])
    assert asyncio.run(store.add_messages(more, context)) == 1
    assert asyncio.run(store.add_messages(more, context)) == 0
    items = Session(store.conversation_id, memory.store).get_items()
    assert [i[MARKER_KEY]["seq"] for i in items] == [0, 1, 2]
    # a new agent run numbers from 0 again: a new run id, so nothing is taken for a re-send
    first_run = store.run_id
    asyncio.run(store.initialize())
    assert store.run_id != first_run
    assert asyncio.run(store.add_messages(batch, AddMessagesContext(sequence_numbers=[0, 1]))) == 2


def test_issue12_strands_store_shared_by_two_agents_loses_nothing(tmp_path: Path) -> None:
    memory = _memory(tmp_path)
    store = _store(memory)
    first = _agent(store, ScriptedModel(["A heard you."]))
    second = _agent(store, ScriptedModel(["B heard you."]))  # one run id for both now
    first("I like sailing.")
    second("I like climbing.")  # numbered 0 and 1 again, like the first agent's turn
    contents = {m.content for m in memory.list(limit=100).items}
    said = {"user: I like sailing.", "assistant: A heard you."}
    said |= {"user: I like climbing.", "assistant: B heard you."}
    assert said <= contents


def test_issue12_strands_failed_extraction_is_retried_not_duplicated(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    llm = OpenAICompatibleLLM(
        "fake-model", base_url=fake_openai.base_url, api_key="test", backoff=0.0, max_retries=0
    )
    memory = _memory(tmp_path, llm=llm)
    fake_openai.error(400, message="model overloaded")
    fact = {
        "type": "preference",
        "content": "Alice drinks green tea, never coffee",
        "about": "user",
        "occurred_at": None,
        "source_seqs": [0],
        "importance": 0.8,
    }
    fake_openai.answer({"memories": [fact], "triples": []})
    store = _store(memory)
    model = ScriptedModel(["Tea it is."])
    agent = _agent(store, model)
    # after the turn, the trigger's save fails in engramdb's model (the messages stay stored);
    # the synchronous call's flush then re-sends the same batch, which extracts once
    agent("I drink green tea, never coffee.")
    assert len(fake_openai.completions) == 2
    items = Session(store.conversation_id, memory.store).get_items()
    assert [i[MARKER_KEY]["seq"] for i in items] == [0, 1]  # each message once
    assert [m.content for m in memory.list().items] == ["Alice drinks green tea, never coffee"]
    assert len(model.calls) == 1  # extraction never called the agent's model
    # the extraction prompt saw the conversation as text, each message once
    prompt = fake_openai.completions[-1].text
    assert prompt.count("I drink green tea, never coffee.") == 1


def test_issue12_strands_agent_recalls_across_agents_remote(live_server: LiveServer) -> None:
    client = Client(live_server.url, api_key=live_server.register("strands"))
    try:
        _, fresh_model = _two_agents(client)
        contents = [m.content for m in client.list(limit=100).items]
        # the server has no model: messages are stored as said
        assert "user: I drink green tea, never coffee." in contents
        assert "green tea, never coffee" in json.dumps(fresh_model.calls[0]["messages"])
        assert "green tea, never coffee" in _tool_results(fresh_model)

        store = _store(client)
        batch = [{"role": "user", "content": [{"text": "I live in Lisbon."}]}]
        ctx = AddMessagesContext(sequence_numbers=[4])
        assert asyncio.run(store.add_messages(batch, ctx)) == 1
        assert asyncio.run(store.add_messages(batch, ctx)) == 0
        assert len(client.get_items(store.conversation_id)) == 1
        lisbon = [m for m in client.list(limit=100).items if "Lisbon" in m.content]
        assert len(lisbon) == 1
    finally:
        client.close()


def test_issue12_strands_remote_infer_true_without_server_model_is_an_error(
    live_server: LiveServer,
) -> None:
    from engramdb.errors import ConflictError

    client = Client(live_server.url, api_key=live_server.register("strands-infer"))
    try:
        store = _store(client, infer=True)
        batch = [{"role": "user", "content": [{"text": "hello"}]}]
        with pytest.raises(ConflictError) as info:
            asyncio.run(store.add_messages(batch, AddMessagesContext(sequence_numbers=[0])))
        assert info.value.code == "llm_not_configured"
        assert client.get_items(store.conversation_id) == []  # nothing stored
    finally:
        client.close()


def test_issue12_strands_bad_input_is_typed(tmp_path: Path) -> None:
    memory = _memory(tmp_path)
    with pytest.raises(InvalidInputError, match="Memory or Client"):
        EngramMemoryStore("./data")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="LLM"):
        EngramMemoryStore(memory, infer=True)
    store = _store(memory)
    with pytest.raises(InvalidInputError, match="sequence numbers"):
        asyncio.run(
            store.add_messages(
                [{"role": "user", "content": [{"text": "a"}]}],
                AddMessagesContext(sequence_numbers=[0, 1]),
            )
        )


def test_issue12_strands_missing_extra_names_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "strands.memory", None)
    with pytest.raises(InvalidInputError) as info:
        EngramMemoryStore(_memory(tmp_path))
    assert "pip install 'engramdb[strands]'" in str(info.value)
    assert "\n" not in str(info.value)


def test_issue12_strands_example_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "the fresh agent saw tea in its memory: True" in done.stdout
    assert "answer: Tea for you." in done.stdout


def _snippet(path: Path, heading: str) -> str:
    text = path.read_text()
    section = text.split(heading, 1)[1]
    section = re.split(r"\n#{1,3} ", section, maxsplit=1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under {heading} in {path.name}"
    return match.group(1)


@pytest.mark.parametrize(
    ("doc", "heading"),
    [("README.md", "### Strands Agents"), ("docs/integrations/strands.md", "## Quick start")],
)
def test_issue12_strands_docs_snippet_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: str, heading: str
) -> None:
    code = _snippet(ROOT / doc, heading)
    monkeypatch.chdir(tmp_path)
    model = ScriptedModel(["Noted: dark mode.", "You prefer dark mode."])
    namespace: dict[str, Any] = {"model": model}
    exec(compile(code, doc, "exec"), namespace)
    assert [m.content for m in Memory(tmp_path / "agent-memory").list().items]
    assert "dark mode" in json.dumps(model.calls[-1]["messages"])
