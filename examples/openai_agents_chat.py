"""Chat with memory across sessions, with the OpenAI Agents SDK.

Two separate conversations (two sessions, a fresh agent each): in the first the user says
what they drink and the agent saves it with the ``remember`` tool; in the second, days later,
the agent answers from memory, because ``memory_instructions`` put the recalled fact into its
instructions. A scripted model stands in for the LLM so this runs offline; swap
``model=`` for a real one (``"gpt-4.1"``) and it works the same way.

    python examples/openai_agents_chat.py [DATA_DIR]
"""

from __future__ import annotations

import sys
import tempfile

from agents import Agent, Model, Runner, set_tracing_disabled
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call

from engramdb import Memory
from engramdb.integrations.openai_agents import EngramSession, memory_instructions, memory_tools

USER_ID = "ada"


def make_agent(memory: Memory, model: Model) -> Agent[None]:
    """The agent: memories of this user in its instructions, and tools to manage them."""
    return Agent(
        name="assistant",
        model=model,
        instructions=memory_instructions("You are a friendly assistant.", memory, user_id=USER_ID),
        tools=memory_tools(memory, user_id=USER_ID),
    )


def answer_from_instructions(call: ModelCall) -> ModelStep:
    """The scripted model's second answer: it reads what the instructions say about tea."""
    remembered = "green tea" in (call.system_instructions or "")
    text = "You drink green tea, no sugar." if remembered else "I don't know yet."
    return ModelStep(output=[assistant_message(text)])


def scripted_model() -> ScriptedModel:
    """Stands in for an LLM: it saves the fact, confirms, then answers from its instructions."""
    return ScriptedModel(
        [
            [
                function_call(
                    "remember", {"content": "Ada drinks green tea, no sugar"}, call_id="m1"
                )
            ],
            [assistant_message("Noted: green tea, no sugar.")],
            ModelStep.respond(answer_from_instructions),
        ]
    )


def main(data_dir: str) -> list[str]:
    set_tracing_disabled(True)
    memory = Memory(data_dir)
    model = scripted_model()
    said = []
    # conversation 1
    first = Runner.run_sync(
        make_agent(memory, model),
        "Hi! I'm Ada. I only drink green tea, no sugar.",
        session=EngramSession("chat-1", data_dir),
    )
    said.append(f"[chat-1] assistant: {first.final_output}")
    # conversation 2: another session, another agent; only the memory carries over
    second = Runner.run_sync(
        make_agent(memory, model),
        "What should I order for my drink?",
        session=EngramSession("chat-2", data_dir),
    )
    said.append(f"[chat-2] assistant: {second.final_output}")
    return said


if __name__ == "__main__":
    where = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="engramdb-chat-")
    for line in main(where):
        print(line)
