"""A LangGraph agent with engramdb as its long-term store.

One node remembers what the user says (through the store LangGraph injects); another searches
the store with engramdb's hybrid recall and puts what it finds into the model's prompt. A
second run, with a fresh store over the same data directory, still knows what the first one
stored. The model is any OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp, OpenAI...);
without ``--base-url`` the agent answers with the best memory itself.

    pip install 'engramdb[langgraph,openai]'
    python examples/langgraph_store.py DATA_DIR \
        [--base-url http://localhost:11434/v1 --model qwen2.5:7b]
"""

from __future__ import annotations

import argparse
import os
import uuid
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from engramdb.integrations.langgraph import EngramStore


class State(TypedDict, total=False):
    user: str
    message: str
    answer: str


def remember(state: State, runtime: Runtime) -> State:
    """Store a statement ("remember: ...") under the user's namespace."""
    assert runtime.store is not None
    text = state["message"]
    if text.lower().startswith("remember:"):
        fact = text.split(":", 1)[1].strip()
        runtime.store.put(("memories", state["user"]), uuid.uuid4().hex, {"text": fact})
    return {}


def make_answer(base_url: str | None, model: str) -> Any:
    def answer(state: State, runtime: Runtime) -> State:
        """Answer from the user's memories: recalled by engramdb, phrased by the model."""
        assert runtime.store is not None
        if state["message"].lower().startswith("remember:"):
            return {"answer": "Noted."}
        hits = runtime.store.search(("memories", state["user"]), query=state["message"], limit=3)
        if base_url is None:
            return {"answer": hits[0].value["text"] if hits else "I don't know yet."}
        from openai import OpenAI

        client = OpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "none"))
        known = "\n".join(f"- {hit.value['text']}" for hit in hits) or "- (nothing yet)"
        reply = client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": f"What you know about the user:\n{known}"},
                {"role": "user", "content": state["message"]},
            ],
        )
        return {"answer": reply.choices[0].message.content or ""}

    return answer


def build(store: EngramStore, base_url: str | None = None, model: str = "qwen2.5:7b") -> Any:
    graph = StateGraph(State)
    graph.add_node("remember", remember)
    graph.add_node("answer", make_answer(base_url, model))
    graph.add_edge(START, "remember")
    graph.add_edge("remember", "answer")
    graph.add_edge("answer", END)
    return graph.compile(store=store)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", default="langgraph-memories")
    parser.add_argument("--base-url", default=None, help="an OpenAI-compatible /v1 endpoint")
    parser.add_argument("--model", default="qwen2.5:7b")
    args = parser.parse_args()

    store = EngramStore(args.data_dir)
    build(store).invoke({"user": "alice", "message": "remember: my favourite tea is oolong"})
    store.close()

    # a new process (here: a new store object) over the same data
    store = EngramStore(args.data_dir)
    graph = build(store, args.base_url, args.model)
    result = graph.invoke({"user": "alice", "message": "which tea is my favourite?"})
    print(result["answer"])
    store.close()


if __name__ == "__main__":
    main()
