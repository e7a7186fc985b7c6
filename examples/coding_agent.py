"""A coding agent that starts every session with what its past sessions taught it: the
project's consolidated ``MEMORY.md``.

1. Session ``app:1`` in the project: the user explains how the project is tested.
2. The session is over: ``consolidate()`` turns it into a trace memory and merges the
   project's traces into its ``MEMORY.md`` (file and database, with history).
3. Session ``app:2``, a fresh agent: ``memory_instructions(..., scope=PROJECT)`` puts
   ``MEMORY.md`` at the top of its instructions, so it knows the test command before anyone
   says it. Agents that read ``AGENTS.md``-style files can read the printed path instead.

Scripted models stand in for the LLMs so this runs offline. For real ones: the agent's
``model="gpt-4.1"``, and for consolidation
``OpenAICompatibleLLM("gpt-4.1-mini", base_url=..., api_key=...)``.

    python examples/coding_agent.py [DATA_DIR]
"""

from __future__ import annotations

import sys
import tempfile

from agents import Agent, Model, Runner, set_tracing_disabled
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message

from engramdb import Memory
from engramdb.consolidate import configure_scope, consolidate, memory_root, scope_paths
from engramdb.integrations.openai_agents import EngramSession, memory_instructions
from engramdb.llm.fake import ScriptedLLM

PROJECT = "/work/app"
TRACE = """## Task
Learn how the app is tested.

## Outcome
The user explained the test setup.

## Learnings
- tests run with `uv run pytest -q`, never bare `pytest`
- the database tests need `make db` first"""
MEMORY_MD = """# /work/app

## Testing
- run the tests with `uv run pytest -q` (bare `pytest` misses the venv)
- run `make db` before the database tests"""


def make_agent(memory: Memory, model: Model) -> Agent[None]:
    """A coding agent whose instructions start with the project's MEMORY.md."""
    return Agent(
        name="coder",
        model=model,
        instructions=memory_instructions("You are a careful coding agent.", memory, scope=PROJECT),
    )


def answer_from_memory(call: ModelCall) -> ModelStep:
    """The scripted agent in session 2: it reads the test command from its instructions."""
    knows = "uv run pytest -q" in (call.system_instructions or "")
    text = "Running `uv run pytest -q` first." if knows else "Which test command should I use?"
    return ModelStep(output=[assistant_message(text)])


def main(data_dir: str) -> list[str]:
    set_tracing_disabled(True)
    memory = Memory(data_dir)
    model = ScriptedModel(
        [[assistant_message("Noted.")], ModelStep.respond(answer_from_memory)]
    )
    said = []
    # this project's sessions are the ones named app:...
    configure_scope(memory, PROJECT, session_prefix="app:")
    first = Runner.run_sync(
        make_agent(memory, model),
        "Tests run with `uv run pytest -q`; run `make db` before the database tests.",
        session=EngramSession("app:1", data_dir),
    )
    said.append(f"[app:1] coder: {first.final_output}")

    # later (engramdb consolidate, or the server's schedule): sessions become MEMORY.md
    summarizer = ScriptedLLM(
        [{"trace_memory": TRACE, "summary": "how the app is tested"}, {"memory_md": MEMORY_MD}]
    )
    run = consolidate(memory, summarizer, scope=PROJECT, idle_seconds=0)
    assert run.memory_md is not None
    said.append(
        f"consolidated: {len(run.traces.summarized)} trace(s), "
        f"MEMORY.md {run.memory_md.status} (v{run.memory_md.memory_md_version})"
    )
    path = scope_paths(memory_root(memory), memory.namespace, PROJECT).memory_md
    said.append(f"MEMORY.md file: {path}")

    second = Runner.run_sync(
        make_agent(memory, model),
        "Please fix the failing test in tests/test_api.py.",
        session=EngramSession("app:2", data_dir),
    )
    said.append(f"[app:2] coder: {second.final_output}")
    return said


if __name__ == "__main__":
    where = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="engramdb-coder-")
    for line in main(where):
        print(line)
