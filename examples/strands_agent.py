"""A Strands agent with long-term memory in engramdb (runs offline: a scripted model).

    pip install 'engramdb[strands]'
    python examples/strands_agent.py [DATA_DIR]

The first agent hears a few facts; Strands hands the conversation to the engramdb store
(`add_messages`), where engramdb's memory manager keeps it (extracted by the Memory's LLM when
one is configured, as said otherwise). A second, fresh agent then gets those memories injected
into its prompt and finds them with the `search_memory` tool. Replace `ScriptedModel` with any
Strands model (Bedrock, OpenAI, Ollama...) for a real conversation.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import AsyncGenerator
from typing import Any

from strands import Agent
from strands.memory import InvocationTrigger, MemoryManager
from strands.models import Model

from engramdb import Memory
from engramdb.integrations.strands import EngramMemoryStore


class ScriptedModel(Model):
    """A Strands model that answers from a script: each reply is a text, or a tool call
    ``{"tool": name, "input": {...}}``. It records what each call was shown in ``calls``."""

    def __init__(self, replies: list[str | dict[str, Any]]) -> None:
        self.replies = list(replies)
        self.calls: list[dict[str, Any]] = []

    def update_config(self, **model_config: Any) -> None:
        pass

    def get_config(self) -> dict[str, Any]:
        return {"model_id": "scripted"}

    def structured_output(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the scripted model has no structured output")

    async def stream(
        self,
        messages: Any,
        tool_specs: Any = None,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[Any, None]:
        self.calls.append({"messages": json.loads(json.dumps(messages, default=str))})
        reply = self.replies.pop(0)
        yield {"messageStart": {"role": "assistant"}}
        if isinstance(reply, dict):
            use = {"toolUseId": f"call-{len(self.calls)}", "name": reply["tool"]}
            yield {"contentBlockStart": {"start": {"toolUse": use}}}
            yield {
                "contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps(reply["input"])}}}
            }
            yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "tool_use"}}
        else:
            yield {"contentBlockStart": {"start": {}}}
            yield {"contentBlockDelta": {"delta": {"text": reply}}}
            yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "end_turn"}}


def make_agent(memory: Memory, model: Model) -> Agent:
    """An agent whose long-term memory is engramdb, saved after every invocation."""
    store = EngramMemoryStore(
        memory,
        user_id="alice",
        extraction={"trigger": InvocationTrigger()},
    )
    return Agent(
        model=model,
        memory_manager=MemoryManager(stores=[store]),
        callback_handler=None,
    )


def main(data_dir: str) -> str:
    memory = Memory(data_dir)  # add llm="openai:MODEL" to extract facts instead of keeping turns
    first = make_agent(
        memory,
        ScriptedModel(["Noted: you are Alice, a marine biologist.", "Got it: tea, never coffee."]),
    )
    first("Hi, I'm Alice and I work as a marine biologist.")

    async def second_turn() -> None:
        await first.invoke_async("I drink tea, never coffee.")
        # invoke_async saves in a background task of this event loop: flush before the loop
        # closes (asyncio.run cancels tasks still pending when it returns)
        await first.memory_manager.flush()

    asyncio.run(second_turn())

    second_model = ScriptedModel(
        [{"tool": "search_memory", "input": {"query": "what does Alice drink"}}, "Tea for you."]
    )
    second = make_agent(memory, second_model)
    answer = str(second("What should I get Alice to drink?")).strip()
    shown = json.dumps(second_model.calls)
    print("stored:", [m.content for m in memory.list().items])
    print("the fresh agent saw tea in its memory:", "tea, never coffee" in shown)
    print("answer:", answer)
    memory.close()
    return answer


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="engramdb-strands-"))
