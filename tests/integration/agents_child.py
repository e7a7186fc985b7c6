"""A second process that continues a conversation: prints what the model was shown."""

from __future__ import annotations

import json
import sys

from agents import Agent, Runner, set_tracing_disabled
from agents.testing import ScriptedModel, assistant_message

from engramdb.integrations.openai_agents import EngramSession


def main(data_dir: str, session_id: str) -> None:
    set_tracing_disabled(True)
    model = ScriptedModel([[assistant_message("Your name is Ada.")]])
    agent = Agent(name="assistant", instructions="Be brief.", model=model)
    session = EngramSession(session_id, data_dir)
    result = Runner.run_sync(agent, "What is my name?", session=session)
    print(json.dumps({"final": result.final_output, "seen": model.calls[0].input}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
